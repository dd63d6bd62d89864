"""The path engine: OpenSSL 3's ``X509_verify_cert``, check for check, in its order.

Owns: :func:`walk` — build a chain from the leaf to a trust anchor (trusted issuers
first, any trusted certificate is an anchor as with ``-partial_chain``, issuers matched
by OpenSSL's canonical names and key identifiers, preferring one whose signature verifies
and that is valid now), then check it as ``openssl verify -purpose sslclient`` at
security level 2 does: critical extensions, CA flags (``X509_check_ca``: a v1 root or a
keyCertSign-only certificate may be the anchor, an intermediate needs basicConstraints
CA:TRUE — critical or not), purposes, path lengths, key sizes and digests (with the
anchor's profile's allowances), signatures and validity windows top-down, name
constraints last. The first problem found is the answer, worded as OpenSSL words it.

This is the verdict of the ``compatible`` profile for every chain cryptography's
verifier (the fast path) refuses, and the explanation of every failure.

Invariants:

* Bounded: the chain never repeats a certificate and is at most ``MAX_CHAIN_DEPTH`` + 2
  long; every signature check goes through :class:`~edgerules.tls.sigcheck.Signatures`
  (memoised, budgeted): when the budget runs out the answer is
  :data:`Reason.BUDGET`, never more work.
* Never raises for any certificate content (callers pass decoded certificates).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from edgerules.tls import keycheck, nameconstraints
from edgerules.tls.certinfo import aki_keyid, ski_bytes
from edgerules.tls.certs import Anchor, Cert, TrustAnchors
from edgerules.tls.der import DERError
from edgerules.tls.profiles import Profile
from edgerules.tls.reasons import Reason
from edgerules.tls.sigcheck import Signatures

__all__ = [
    "MAX_CHAIN_DEPTH",
    "WalkResult",
    "check_ca",
    "find_issuer",
    "self_issued",
    "unhandled_critical",
    "walk",
]

# Intermediates allowed between the leaf and the anchor (cryptography's default is 8 too;
# stated here because the DoS guard depends on it).
MAX_CHAIN_DEPTH = 8


@dataclass(frozen=True, slots=True)
class WalkResult:
    """``reason`` is ``""`` when every check passed; ``chain`` is what was built (leaf
    first; ends at ``anchor`` when one was reached)."""

    chain: tuple[Cert, ...]
    reason: str
    anchor: Anchor | None


# Extensions OpenSSL handles when critical (X509_supported_extension), as OID bodies.
_SUPPORTED_CRITICAL = frozenset(
    bytes.fromhex(h)
    for h in (
        "6086480186f8420101",  # netscape-cert-type
        "551d0f",  # keyUsage
        "551d11",  # subjectAltName
        "551d13",  # basicConstraints
        "551d20",  # certificatePolicies
        "551d1f",  # cRLDistributionPoints
        "551d25",  # extendedKeyUsage
        "2b06010505070107",  # sbgp-ipAddrBlock
        "2b06010505070108",  # sbgp-autonomousSysNum
        "2b06010505073001 05".replace(" ", ""),  # id-pkix-ocsp-nocheck
        "551d24",  # policyConstraints
        "2b0601050507010e",  # proxyCertInfo
        "551d1e",  # nameConstraints
        "551d21",  # policyMappings
        "551d36",  # inhibitAnyPolicy
    )
)
_NS_CERT_TYPE = bytes.fromhex("6086480186f8420101")


def unhandled_critical(cert: Cert) -> bool:
    try:
        exts = cert.raw.extensions
    except DERError:
        return True
    return any(critical and oid not in _SUPPORTED_CRITICAL for oid, critical, _v in exts)


def _ns_cert_type(cert: Cert) -> int | None:
    """The first byte of a Netscape cert type extension's bits, or None."""
    try:
        found = cert.raw.extension(_NS_CERT_TYPE)
    except DERError:
        return None
    if found is None:
        return None
    value = found[1]
    return value[3] if len(value) >= 4 and value[0] == 0x03 else 0


def _may_issue(cand: Cert, child: Cert) -> bool:
    """OpenSSL's ``check_issued`` without the signature: names match canonically and,
    when both key identifiers are present, they match too."""
    try:
        if cand.canon_subject != child.canon_issuer:
            return False
    except DERError:
        return False
    aki = aki_keyid(child.x509)
    if aki is None:
        return True
    ski = ski_bytes(cand.x509)
    return ski is None or ski == aki


def self_issued(cert: Cert) -> bool:
    return _may_issue(cert, cert)


def _pick(
    cands: Sequence[Cert], child: Cert, now: _dt.datetime, sigs: Signatures
) -> Cert | None:
    """Among possible issuers prefer one whose signature verifies and that is valid now,
    then one whose signature verifies, then one valid now, then the first (OpenSSL's
    get_issuer prefers a time-valid match; checking the signature as well finds the right
    key among same-name CAs). Signature checks are memoised and budgeted."""
    matches = [c for c in cands if _may_issue(c, child)]
    if not matches:
        return None
    if len(matches) == 1:
        return matches[0]
    for c in matches:
        if sigs.signed_by(child, c) and c.valid_at(now):
            return c
    for c in matches:
        if sigs.signed_by(child, c):
            return c
    for c in matches:
        if c.valid_at(now):
            return c
    return matches[0]


def find_issuer(leaf: Cert, candidates: Sequence[Cert], sigs: Signatures) -> Cert | None:
    """The direct issuer among ``candidates``: its subject is the leaf's issuer and the
    leaf's signature verifies with its key (used for unverified leaves)."""
    for cand in candidates:
        try:
            if cand.canon_subject == leaf.canon_issuer and sigs.signed_by(leaf, cand):
                return cand
        except DERError:
            continue
    return None


def check_ca(cert: Cert) -> int:
    """OpenSSL's ``X509_check_ca``: 1 basicConstraints CA:TRUE, 3 v1 self-signed root,
    4 keyUsage keyCertSign without basicConstraints, 5 Netscape CA type, 0 not a CA."""
    ku = cert.ext(x509.KeyUsage)
    if isinstance(ku, x509.KeyUsage) and not ku.key_cert_sign:
        return 0
    bc = cert.ext(x509.BasicConstraints)
    if isinstance(bc, x509.BasicConstraints):
        return 1 if bc.ca else 0
    if cert.raw.version == 0 and self_issued(cert):
        return 3
    if isinstance(ku, x509.KeyUsage):
        return 4
    ns = _ns_cert_type(cert)
    if ns is not None and ns & 0x07:
        return 5
    return 0


def leaf_purpose(cert: Cert) -> str:
    """OpenSSL's ``sslclient`` purpose for the end entity: an EKU without clientAuth, a
    key usage without digitalSignature/keyAgreement, or a Netscape cert type without SSL
    client is refused."""
    eku = cert.ext(x509.ExtendedKeyUsage)
    if isinstance(eku, x509.ExtendedKeyUsage) and ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        return Reason.UNSUPPORTED_PURPOSE
    ku = cert.ext(x509.KeyUsage)
    if isinstance(ku, x509.KeyUsage) and not (ku.digital_signature or ku.key_agreement):
        return Reason.UNSUPPORTED_PURPOSE
    ns = _ns_cert_type(cert)
    if ns is not None and not ns & 0x80:
        return Reason.UNSUPPORTED_PURPOSE
    return ""


def _extensions_ok(cert: Cert) -> bool:
    """cryptography can parse every extension (duplicates and malformed values are
    OpenSSL's ``invalid or inconsistent certificate extension``)."""
    try:
        cert.x509.extensions  # noqa: B018
    except Exception:
        return False
    return True


def walk(
    leaf: Cert,
    pool: Sequence[Cert],
    anchors: TrustAnchors,
    now: _dt.datetime,
    sigs: Signatures,
    default: Profile,
) -> WalkResult:
    """Build and check a path for ``leaf`` (see the module docstring)."""
    profiles = anchors.profiles or frozenset({default})
    # 0. OpenSSL checks the peer's key before building anything.
    leaf_weak = keycheck.key_weakness(leaf.key_info)
    if leaf_weak and (
        leaf_weak == keycheck.HARD or not any(p.allows(leaf_weak) for p in profiles)
    ):
        return WalkResult((leaf,), Reason.EE_KEY_TOO_WEAK, None)
    # 1. build (trusted first; a trusted certificate ends the chain, as -partial_chain)
    chain: list[Cert] = [leaf]
    anchor = anchors.by_der.get(leaf.der)
    used = {leaf.der}
    while anchor is None:
        cur = chain[-1]
        try:
            want = cur.canon_issuer
        except DERError:
            return WalkResult(tuple(chain), Reason.UNDECODABLE, None)
        trusted = anchors.by_canon.get(want, ())
        found = _pick([a.cert for a in trusted], cur, now, sigs)
        if found is not None:
            anchor = next(a for a in trusted if a.cert is found)
            chain.append(found)
            break
        if self_issued(cur):
            reason = Reason.SELF_SIGNED if len(chain) == 1 else Reason.SELF_SIGNED_IN_CHAIN
            return WalkResult(tuple(chain), reason, None)
        cands = []
        for c in pool:
            if c.der in used:
                continue
            try:
                if c.canon_subject == want:
                    cands.append(c)
            except DERError:
                continue
        issuer = _pick(cands, cur, now, sigs)
        if issuer is None:
            # OpenSSL: a lone leaf -> "unable to get local issuer certificate" when the
            # issuer is simply unknown (what `openssl verify` prints for a wrong CA).
            reason = Reason.BUDGET if sigs.exhausted else Reason.NO_LOCAL_ISSUER
            return WalkResult(tuple(chain), reason, None)
        chain.append(issuer)
        used.add(issuer.der)
        if len(chain) > MAX_CHAIN_DEPTH + 2:
            return WalkResult(tuple(chain), Reason.CHAIN_TOO_LONG, None)
    out = tuple(chain)
    n = len(out)
    if n - 2 > MAX_CHAIN_DEPTH:
        return WalkResult(out, Reason.CHAIN_TOO_LONG, anchor)
    prof = anchor.profile

    def fail(reason: str) -> WalkResult:
        return WalkResult(out, reason, anchor)

    # 2. extensions: critical ones, CA flags, purposes (bottom-up), path length
    plen = 0
    for i, cert in enumerate(out):
        if unhandled_critical(cert):
            return fail(Reason.UNHANDLED_CRITICAL)
        if not _extensions_ok(cert):
            return fail(Reason.INVALID_EXTENSION)
        if i == 0:
            reason = leaf_purpose(cert)
            if reason:
                return fail(reason)
        else:
            ca = check_ca(cert)
            # X509_V_FLAG_X509_STRICT is implicit for intermediates: only a real CA
            # (basicConstraints CA:TRUE) may sit between the leaf and the anchor.
            if ca == 0 or (i + 1 < n and ca != 1):
                return fail(Reason.INVALID_CA)
            eku = cert.ext(x509.ExtendedKeyUsage)
            if (
                isinstance(eku, x509.ExtendedKeyUsage)
                and ExtendedKeyUsageOID.CLIENT_AUTH not in eku
            ):
                return fail(Reason.UNSUPPORTED_PURPOSE)
            bc = cert.ext(x509.BasicConstraints)
            if (
                i > 1
                and isinstance(bc, x509.BasicConstraints)
                and bc.path_length is not None
                and plen > bc.path_length
            ):
                return fail(Reason.PATH_LENGTH)
            if not self_issued(cert):
                plen += 1
    # 3. key sizes and digests (OpenSSL security level 2, as a TLS server applies)
    for i, cert in enumerate(out):
        if i > 0 and not cert.key_refusal:
            weak = keycheck.key_weakness(cert.key_info)
            if weak and (weak == keycheck.HARD or not prof.allows(weak)):
                return fail(Reason.CA_KEY_TOO_WEAK)
        if i == 0 and leaf_weak and not prof.allows(leaf_weak):
            return fail(Reason.EE_KEY_TOO_WEAK)
        if i < n - 1:
            digest = keycheck.digest_weakness(cert.x509.signature_algorithm_oid.dotted_string)
            if digest and (digest == keycheck.HARD or not prof.allows(digest)):
                return fail(Reason.CA_MD_TOO_WEAK)
    # 4. signatures and validity windows, top-down (OpenSSL internal_verify); the top
    # certificate's own signature is not checked (self-signed, or a partial-chain anchor)
    for i in range(n - 1, -1, -1):
        cert = out[i]
        if i < n - 1:
            issuer = out[i + 1]
            if issuer.key_refusal or issuer.public_key() is None:
                return fail(Reason.ISSUER_KEY_UNUSABLE)
            if not sigs.signed_by(cert, issuer):
                return fail(Reason.BUDGET if sigs.exhausted else Reason.SIGNATURE_FAILURE)
        if now < cert.x509.not_valid_before_utc:
            return fail(Reason.NOT_YET_VALID)
        if now > cert.x509.not_valid_after_utc:
            return fail(Reason.EXPIRED)
    # 5. name constraints (after internal_verify, as OpenSSL's verify_chain)
    return fail(nameconstraints.check_chain(out, self_issued))
