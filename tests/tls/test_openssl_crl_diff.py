"""Differential test of CRL handling against `openssl verify -crl_check_all`.

Owns: CRL scenarios (fresh, stale, delta, IDP-scoped, intermediate revoked, wrong signer,
not yet valid, certificateHold lifted, revocation omitted later) on root -> int -> leaf,
each run through our validator (both stale-CRL policies where they differ) and

    openssl verify -purpose sslclient -attime T -partial_chain -auth_level 2 \\
        -crl_check_all -CRLfile crls.pem -CAfile trusted.pem -untrusted chain.pem leaf.pem

Mapping: OpenSSL's `certificate revoked` is our (verified, revoked) — in Cloudflare's
model a revoked certificate still verifies and `cert_revoked` is set (Cloudflare's
revocation page); OK is (verified, not revoked); any other error is (not verified, that reason).
Every scenario supplies a CRL for both issuers (root and int), because
`-crl_check_all` requires one per level while we check only issuers that have CRLs.
Deliberate differences are listed in `CRL_DIFFERENCES`, each asserted exactly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from edgerules.tls import ClientCertValidator

from . import chains

NOW = chains.NOW
DAY = dt.timedelta(days=1)


def _crl(issuer: chains.Issued, serials=(), *, number: int | None = 1, hold=(),
         last=NOW - DAY, next_=NOW + 7 * DAY, signer=None, extensions=()) -> bytes:
    b = (x509.CertificateRevocationListBuilder().issuer_name(issuer.cert.subject)
         .last_update(last).next_update(next_))
    if number is not None:
        b = b.add_extension(x509.CRLNumber(number), critical=False)
    b = b.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False)
    for ext, critical in extensions:
        b = b.add_extension(ext, critical=critical)
    for s in serials:
        rb = x509.RevokedCertificateBuilder().serial_number(s).revocation_date(last)
        if s in hold:
            rb = rb.add_extension(x509.CRLReason(x509.ReasonFlags.certificate_hold), False)
        b = b.add_revoked_certificate(rb.build())
    return b.sign(signer or issuer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class CRLScenario:
    id: str
    description: str
    crls: tuple[bytes, ...]
    openssl: str  # expected first OpenSSL error ("" = OK)


def _scenarios() -> list[tuple[CRLScenario, chains.Scenario]]:
    p = chains.Pki()
    root, inter, leaf = p.root, p.int, p.leaf
    s_leaf, s_int = leaf.cert.serial_number, inter.cert.serial_number
    root_ok = _crl(root)
    idp_ca_only = x509.IssuingDistributionPoint(
        full_name=None, relative_name=None, only_contains_user_certs=False,
        only_contains_ca_certs=True, only_some_reasons=None, indirect_crl=False,
        only_contains_attribute_certs=False)
    rows = [
        ("fresh-not-listed", "fresh CRLs at both levels, nothing revoked",
         (_crl(inter), root_ok), ""),
        ("fresh-leaf-revoked", "the int's fresh CRL lists the leaf",
         (_crl(inter, [s_leaf]), root_ok), "certificate revoked"),
        ("stale-leaf-revoked", "the int's CRL lists the leaf and is past nextUpdate",
         (_crl(inter, [s_leaf], last=NOW - 10 * DAY, next_=NOW - DAY), root_ok),
         "CRL has expired"),
        ("stale-not-listed", "the int's CRL is past nextUpdate, the leaf is not on it",
         (_crl(inter, [], last=NOW - 10 * DAY, next_=NOW - DAY), root_ok), "CRL has expired"),
        ("delta-crl-only", "the int only has a delta CRL (deltaCRLIndicator) listing the leaf",
         (_crl(inter, [s_leaf], number=5, extensions=[(x509.DeltaCRLIndicator(4), True)]),
          root_ok), "certificate revoked"),
        ("idp-scoped-ca-only", "the int's CRL is scoped to CA certificates (IDP)",
         (_crl(inter, [s_leaf], extensions=[(idp_ca_only, True)]), root_ok),
         "different CRL scope"),
        ("intermediate-revoked", "the root's CRL lists the intermediate",
         (_crl(inter), _crl(root, [s_int])), "certificate revoked"),
        ("wrong-signer", "the int's CRL (right name) is signed by another key",
         (_crl(inter, [s_leaf], signer=chains.key("crl-forger")), root_ok),
         "CRL signature failure"),
        ("not-yet-valid", "the int's CRL has thisUpdate in the future",
         (_crl(inter, [s_leaf], last=NOW + DAY, next_=NOW + 8 * DAY), root_ok),
         "CRL is not yet valid"),
        ("hold-lifted", "an older CRL puts the leaf on hold, a newer one no longer lists it",
         (_crl(inter, [s_leaf], number=1, hold={s_leaf}, last=NOW - 3 * DAY),
          _crl(inter, [], number=2), root_ok), ""),
        ("hold-current", "the newest CRL lists the leaf on hold",
         (_crl(inter, [s_leaf], number=2, hold={s_leaf}), root_ok), "certificate revoked"),
        ("revocation-omitted-later", "an older CRL revokes the leaf, a newer one omits it",
         (_crl(inter, [s_leaf], number=1, last=NOW - 3 * DAY), _crl(inter, [], number=2),
          root_ok), ""),
    ]
    out = []
    for sid, desc, crls, expect in rows:
        sc = chains.Scenario(sid, desc, (root.der,), (leaf.der, inter.der), expect)
        out.append((CRLScenario(sid, desc, crls, expect), sc))
    return out


_STALE = (
    "Issue 9 point 5: an entry from a correctly signed CRL never disappears because the "
    "CRL went stale; OpenSSL reports the staleness first."
)
_DELTA = (
    "Issue 10 point 4: a delta CRL is refused with a reason, never applied as a full CRL "
    "(plain `openssl verify` applies it as one and says revoked); without its base CRL "
    "the issuer has no CRL, and edgerules checks only issuers with CRLs."
)
_NOT_APPLIED = (
    "A CRL we refuse to apply as a full CRL (a scoped one) is reported and skipped: the "
    "issuer then has no CRL, and edgerules checks only issuers with CRLs (CRLs are opt-in "
    "per CA; Cloudflare checks none), where -crl_check_all demands one per level."
)
_UNKNOWN_OPEN = (
    "The issuer's CRL cannot answer (bad signature, not yet valid): the status is unknown, "
    "and fail-open (the default per-CA choice) admits; crl_stale='closed' gives exactly "
    "OpenSSL's answer (the closed row agrees)."
)

# (scenario, stale policy) -> (our (verified, revoked, reason), why)
CRL_DIFFERENCES: dict[tuple[str, str], tuple[tuple[bool, bool, str], str]] = {
    ("stale-leaf-revoked", "open"): ((True, True, ""), _STALE),
    ("stale-leaf-revoked", "closed"): ((True, True, ""), _STALE),
    ("stale-not-listed", "open"): (
        (True, False, ""),
        "Fail-open is the default per-CA choice for an unknown status after nextUpdate "
        "(crl_stale='closed' gives exactly OpenSSL's answer, see the closed row).",
    ),
    ("delta-crl-only", "open"): ((True, False, ""), _DELTA),
    ("delta-crl-only", "closed"): ((True, False, ""), _DELTA),
    ("idp-scoped-ca-only", "open"): ((True, False, ""), _NOT_APPLIED),
    ("idp-scoped-ca-only", "closed"): ((True, False, ""), _NOT_APPLIED),
    ("wrong-signer", "open"): ((True, False, ""), _UNKNOWN_OPEN),
    ("not-yet-valid", "open"): ((True, False, ""), _UNKNOWN_OPEN),
    ("revocation-omitted-later", "open"): (
        (True, True, ""),
        "Revoked stays revoked: only certificateHold may be lifted by a newer CRL (RFC 5280 "
        "§5.3.1 lets a CA drop an entry only after the certificate expired); OpenSSL "
        "consults only the newest CRL.",
    ),
    ("revocation-omitted-later", "closed"): ((True, True, ""), "as above"),
}

CASES = _scenarios()


@pytest.fixture(scope="module")
def openssl_answers(tmp_path_factory):
    base = tmp_path_factory.mktemp("crl")
    return {
        crl_sc.id: chains.openssl_verify(sc, base / crl_sc.id, crls=crl_sc.crls,
                                         crl_check="crl_check_all")
        for crl_sc, sc in CASES
    }


def _ours(crl_sc: CRLScenario, sc: chains.Scenario, policy: str) -> tuple[bool, bool, str]:
    v = ClientCertValidator(list(sc.trusted), crls=list(crl_sc.crls), crl_stale=policy)
    auth = v.validate(list(sc.chain), now=sc.now)
    return auth.verified, auth.revoked, auth.failure_reason


def _as_openssl(ours: tuple[bool, bool, str]) -> tuple[bool, str]:
    verified, revoked, reason = ours
    if verified and revoked:
        return False, "certificate revoked"
    return verified, reason


@pytest.mark.parametrize("policy", ["open", "closed"])
@pytest.mark.parametrize("case", CASES, ids=[c[0].id for c in CASES])
def test_crl_scenario_agrees_with_openssl(case, policy, openssl_answers) -> None:
    crl_sc, sc = case
    theirs = openssl_answers[crl_sc.id]
    assert theirs.reason == crl_sc.openssl, (
        f"scenario bug: {crl_sc.id} meant to give OpenSSL {crl_sc.openssl or 'OK'!r}, "
        f"got:\n{theirs.output}"
    )
    ours = _ours(crl_sc, sc, policy)
    listed = CRL_DIFFERENCES.get((crl_sc.id, policy))
    if listed is not None:
        assert ours == listed[0], f"{crl_sc.id} [{policy}]: listed {listed[0]}, got {ours}"
        assert _as_openssl(ours) != (theirs.ok, theirs.reason)
        return
    assert _as_openssl(ours) == (theirs.ok, theirs.reason), (
        f"{crl_sc.id} [{policy}] ({crl_sc.description}): ours {ours}, openssl "
        f"{'OK' if theirs.ok else theirs.reason!r} {theirs.errors}"
    )


def test_crl_agreement_figures(openssl_answers) -> None:
    total = agree = 0
    for crl_sc, sc in CASES:
        for policy in ("open", "closed"):
            total += 1
            ours = _ours(crl_sc, sc, policy)
            theirs = openssl_answers[crl_sc.id]
            agree += _as_openssl(ours) == (theirs.ok, theirs.reason)
    print(f"\nCRL differential vs openssl verify -crl_check_all: {len(CASES)} scenarios x 2 "
          f"stale policies = {total}; same answer {agree}/{total}; listed differences "
          f"{len(CRL_DIFFERENCES)}")
    assert total - agree == len(CRL_DIFFERENCES)
