"""Path validation: the only module that calls ``cryptography.x509.verification``.

Owns: :func:`verify_path` — the fast path (cryptography's ``ClientVerifier`` with the
WebPKI-derived policies edgerules has always used) and, when it refuses or is not
applicable, the OpenSSL-order engine (:mod:`edgerules.tls.walk`) whose verdict the
anchor's profile then qualifies (:mod:`edgerules.tls.strict` for ``strict``).

Invariants:

* One path engine decides (the walk); cryptography's verifier is a faster way to the
  same "yes" for the common chain: everything it accepts, both profiles accept, except
  what the post-checks catch (names OpenSSL derives from the subject for name
  constraints, a weak leaf key, a CA whose only EKU is anyExtendedKeyUsage).
* Bounded (issue 9 point 2): certificates with keys :mod:`edgerules.tls.keycheck`
  refuses never reach cryptography or a signature check; cryptography is called only
  when the most its path builder can spend (at most ``MAX_CHAIN_DEPTH + 1`` levels, each
  trying every same-name candidate) fits in the validation's signature budget, which is
  then charged for it; the walk draws on what is left.
* Reasons are OpenSSL's words (or precise ones for our own rules); cryptography's
  message is kept only as ``detail`` (logs). ``certificate rejected`` appears only with
  a cause, for the strict profile's fail-closed safety net.
* Nothing here raises for any input certificate.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder

from edgerules.tls import keycheck, nameconstraints
from edgerules.tls.certs import Anchor, Cert, TrustAnchors
from edgerules.tls.profiles import Profile
from edgerules.tls.reasons import Reason, rejected
from edgerules.tls.sigcheck import Signatures
from edgerules.tls.strict import strict_reason
from edgerules.tls.walk import MAX_CHAIN_DEPTH, find_issuer, self_issued, walk

__all__ = [
    "MAX_CHAIN_DEPTH",
    "PathResult",
    "Reason",
    "TrustAnchors",
    "find_issuer",
    "valid_at",
    "verify_path",
]


# WebPKI defaults, relaxed where client-certificate practice (and OpenSSL) differs:
# * end entity: no SAN required (managed-CA client certificates carry none); a
#   basicConstraints CA:TRUE leaf is accepted as OpenSSL does; keyUsage may be present
#   (when it is, it must allow digitalSignature or keyAgreement: OpenSSL's sslclient
#   purpose, checked in _post_checks from the raw DER — a Python callback inside the
#   verifier would cost ~10 µs per validation); the Authority Key Identifier may be
#   absent (self-signed client certificates pinned as their own CA, old CAs).
# * CA: keyUsage may be absent; when present it must include keyCertSign (post-check).
_EE_POLICY = (
    ExtensionPolicy.webpki_defaults_ee()
    .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
    .may_be_present(x509.BasicConstraints, Criticality.AGNOSTIC, None)
    .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, None)
    .may_be_present(x509.AuthorityKeyIdentifier, Criticality.NON_CRITICAL, None)
)
_CA_POLICY = ExtensionPolicy.webpki_defaults_ca().may_be_present(
    x509.KeyUsage, Criticality.AGNOSTIC, None
)
_KU_DIGITAL_SIGNATURE, _KU_KEY_AGREEMENT, _KU_KEY_CERT_SIGN = 0x8000, 0x0800, 0x0400
# Raw-DER pre-filters, so the common path never builds Python extension objects:
_NC_OID_DER = bytes.fromhex("0603551d1e")  # the NameConstraints extension OID
_ANY_EKU_DER = bytes.fromhex("0604551d2500")  # anyExtendedKeyUsage


@dataclass(frozen=True, slots=True)
class PathResult:
    """Outcome of one path validation.

    ``chain`` is the validated path (leaf first, anchor last) when ``verified``; after a
    failure it is the chain the engine built (possibly partial), used to find the direct
    issuer. ``detail`` is cryptography's message, for logs only. ``anchor`` is the trust
    anchor reached (its profile applied), when one was."""

    verified: bool
    chain: tuple[Cert, ...]
    reason: str = ""
    detail: str = ""
    anchor: Anchor | None = None


def valid_at(cert: x509.Certificate | Cert, now: _dt.datetime) -> bool:
    """``cert``'s validity window contains ``now`` (an aware datetime); False when its
    dates cannot be read."""
    c = cert.x509 if isinstance(cert, Cert) else cert
    try:
        return c.not_valid_before_utc <= now <= c.not_valid_after_utc
    except Exception:
        return False


def _naive_utc(now: _dt.datetime) -> _dt.datetime:
    if now.tzinfo is not None:
        now = now.astimezone(_dt.UTC).replace(tzinfo=None)
    return now


def builder_bound(leaf: Cert, pool: Sequence[Cert], anchors: TrustAnchors) -> int:
    """The most (in P-256 units) cryptography's path builder can spend on signatures:
    it visits at most ``MAX_CHAIN_DEPTH + 1`` certificates along one path (at most one
    candidate per name and key can verify, and same-name-same-key duplicates are
    removed), trying at each every candidate whose subject equals the issuer name. (A
    quick bound — every presented certificate plus the costliest same-name anchors — is
    used when it is small.)"""
    pool_cost = sum(c.cost for c in pool)
    quick = (MAX_CHAIN_DEPTH + 1) * (pool_cost + anchors.max_subject_cost)
    if quick <= 2 * (MAX_CHAIN_DEPTH + 1):  # the common case: nothing to look at closer
        return quick
    by_subject: dict[bytes, int] = dict(anchors.cost_by_subject)
    for c in pool:
        by_subject[c.subject] = by_subject.get(c.subject, 0) + c.cost
    worst = max(by_subject.get(c.issuer, 0) for c in (leaf, *pool))
    return (MAX_CHAIN_DEPTH + 1) * worst


def _fast(
    leaf: Cert, pool: Sequence[Cert], anchors: TrustAnchors, now: _dt.datetime
) -> tuple[tuple[Cert, ...] | None, str]:
    """cryptography's verdict: (path as Certs, "") or (None, its message)."""
    try:
        # cryptography's verification time has one-second precision: the verifier built
        # for this second serves every validation in it (one cached per anchor set)
        second = _naive_utc(now).replace(microsecond=0)
        cached = anchors.verifier
        if cached is not None and cached[0] == second:
            verifier = cached[1]
        else:
            verifier = (
                PolicyBuilder()
                .store(anchors.store)  # type: ignore[arg-type]
                .time(second)
                .max_chain_depth(MAX_CHAIN_DEPTH)
                .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
                .build_client_verifier()
            )
            anchors.verifier = (second, verifier)
        verified = verifier.verify(leaf.x509, [c.x509 for c in pool])
    except Exception as exc:  # VerificationError, or anything odd in unusual input
        return None, str(exc) or type(exc).__name__
    by_id = {id(c.x509): c for c in (leaf, *pool)}
    out = []
    for cert in verified.chain:
        view = by_id.get(id(cert))
        if view is None:
            view = anchors.by_x509_id.get(id(cert))
        if view is None:  # not one of our objects: find it by its bytes
            from cryptography.hazmat.primitives.serialization import Encoding

            der = cert.public_bytes(Encoding.DER)
            view = next((c for c in (leaf, *pool) if c.der == der), None)
            if view is None:
                anchor = anchors.by_der.get(der)
                view = anchor.cert if anchor is not None else None
        if view is None:
            return None, "verified path holds an unknown certificate"
        out.append(view)
    return tuple(out), ""


def _post_checks(path: tuple[Cert, ...], anchors: TrustAnchors, prof: Profile,
                 intermediate_ders: Sequence[bytes]) -> str:
    """What OpenSSL refuses and cryptography's verifier accepted (or was not asked)."""
    weak = keycheck.key_weakness(path[0].key_info)
    if weak and not prof.allows(weak):
        return Reason.EE_KEY_TOO_WEAK
    ku = path[0].key_usage_bits
    if ku != -1 and not ku & (_KU_DIGITAL_SIGNATURE | _KU_KEY_AGREEMENT):
        return Reason.UNSUPPORTED_PURPOSE
    for ca in path[1:]:
        reason = ca.memo.get("ca-post")
        if reason is None:
            reason = ca.memo["ca-post"] = _ca_post_check(ca)
        if reason:
            return reason  # type: ignore[return-value]
    if anchors.name_constraints or any(_NC_OID_DER in d for d in intermediate_ders):
        try:
            return nameconstraints.check_chain(path, self_issued)
        except Exception:
            return Reason.INVALID_EXTENSION
    return ""


def _ca_post_check(ca: Cert) -> str:
    """A CA's part of the post-checks (it does not depend on the chain: memoised)."""
    ku = ca.key_usage_bits
    if ku != -1 and not ku & _KU_KEY_CERT_SIGN:
        return Reason.INVALID_CA
    if _ANY_EKU_DER in ca.der:
        eku = ca.ext(x509.ExtendedKeyUsage)
        if isinstance(eku, x509.ExtendedKeyUsage) and ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
            return Reason.UNSUPPORTED_PURPOSE
    return ""


def verify_path(
    leaf: Cert,
    pool: Sequence[Cert],
    anchors: TrustAnchors,
    now: _dt.datetime,
    sigs: Signatures,
    default: Profile,
    *,
    intermediate_ders: Sequence[bytes] = (),
) -> PathResult:
    """Validate ``leaf`` through ``pool`` (presented intermediates, capped and
    de-duplicated, keys already screened) to one of ``anchors`` at ``now`` (aware)."""
    detail = ""
    tried_fast = False
    # cryptography never sees a key the DoS caps refuse: if such a certificate is needed
    # the fast path fails and the walk says why
    fast_pool = [c for c in pool if not c.key_refusal]
    if (
        anchors.store is not None
        and not leaf.copy
        and not any(c.copy for c in fast_pool)
        and sigs.spend(builder_bound(leaf, fast_pool, anchors))
    ):
        tried_fast = True
        path, detail = _fast(leaf, fast_pool, anchors, now)
        if path is not None:
            anchor = anchors.by_der.get(path[-1].der)
            prof = anchor.profile if anchor is not None else default
            reason = _post_checks(path, anchors, prof, intermediate_ders)
            if not reason and prof.strict:
                # the fast path's policies predate some of the strict profile's rules
                # (serial sign and length, v3, PrintableString alphabet, …)
                reason = strict_reason(path, prof)
            if reason:
                return PathResult(False, path, reason, "refused after cryptography's checks", anchor)
            return PathResult(True, path, anchor=anchor)
    elif anchors.store is None and not anchors.anchors:
        detail = "no trusted CA"
    else:
        detail = "checked by the OpenSSL-order engine only"
    result = walk(leaf, pool, anchors, now, sigs, default)
    if result.reason:
        return PathResult(False, result.chain, result.reason, detail, result.anchor)
    anchor = result.anchor
    assert anchor is not None  # a walk without a reason reached an anchor
    if anchor.profile.strict:
        reason = strict_reason(result.chain, anchor.profile)
        if not reason and tried_fast and not anchor.profile.allow:
            # Safety net: cryptography refused, and neither OpenSSL's checks nor the
            # strict profile's list explain why. Fail closed, naming the cause.
            reason = rejected(f"strict profile: {detail}")
        if reason:
            return PathResult(False, result.chain, reason, detail, anchor)
    return PathResult(True, result.chain, anchor=anchor)
