"""Path validation: the only module that calls ``cryptography.x509.verification``.

Owns: the extension policies, building a ``ClientVerifier`` per verification (the
verification time is fixed when a verifier is built, building costs about 1 µs), and the
classification of failures into OpenSSL's verify error strings (spec mtls.md §3.3).

Invariants:

* The verdict is cryptography's: ``verified`` is true exactly when
  ``ClientVerifier.verify`` returned a path.
* Reasons never come from the library's message text (kept only as ``detail``): after a
  failure, :func:`classify` re-walks the chain the way OpenSSL's ``X509_verify_cert``
  does (build the chain by subject / key identifier, trusted issuers first; check CA
  flags, purpose and path length bottom-up; key sizes and digests; signatures and
  validity windows top-down; name constraints last) and reports the first problem
  OpenSSL would report.
* Nothing here raises for any input certificate; callers pass already-decoded,
  de-duplicated, capped chains (the DoS guard lives in the validator).
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import (
    ExtendedKeyUsageOID,
    ExtensionOID,
    NameOID,
    SignatureAlgorithmOID,
)
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
)

from edgerules.tls.certinfo import aki_keyid, ski_bytes

__all__ = [
    "MAX_CHAIN_DEPTH",
    "PathResult",
    "Reason",
    "TrustAnchors",
    "classify",
    "find_issuer",
    "valid_at",
    "verify_path",
]

# Intermediates allowed between the leaf and the anchor (cryptography's default is 8 too;
# stated here because the DoS guard depends on it).
MAX_CHAIN_DEPTH = 8


class Reason:
    """OpenSSL ``X509_verify_cert_error_string`` texts used as ``failure_reason``.

    The wording is OpenSSL 1.1's string table, which is what the spec and Cloudflare's
    Workers output show (``self signed certificate``). OpenSSL 3 renamed three of them:
    ``self-signed certificate``, ``self-signed certificate in certificate chain`` and
    ``unsuitable certificate purpose`` (for our ``unsupported certificate purpose``)."""

    EXPIRED = "certificate has expired"
    NOT_YET_VALID = "certificate is not yet valid"
    SELF_SIGNED = "self signed certificate"
    SELF_SIGNED_IN_CHAIN = "self signed certificate in certificate chain"
    NO_LOCAL_ISSUER = "unable to get local issuer certificate"
    NO_ISSUER = "unable to get issuer certificate"
    UNABLE_TO_VERIFY_FIRST = "unable to verify the first certificate"
    SIGNATURE_FAILURE = "certificate signature failure"
    UNSUPPORTED_PURPOSE = "unsupported certificate purpose"
    INVALID_CA = "invalid CA certificate"
    PATH_LENGTH = "path length constraint exceeded"
    PERMITTED_SUBTREE = "permitted subtree violation"
    EXCLUDED_SUBTREE = "excluded subtree violation"
    CHAIN_TOO_LONG = "certificate chain too long"
    UNHANDLED_CRITICAL = "unhandled critical extension"
    EE_KEY_TOO_WEAK = "EE certificate key too weak"
    CA_KEY_TOO_WEAK = "CA certificate key too weak"
    CA_MD_TOO_WEAK = "CA signature digest algorithm too weak"
    # Not X509 verify errors: chosen for inputs a TLS stack would reject earlier.
    UNDECODABLE = "unable to decode certificate"
    TOO_LARGE = "excessive message size"  # OpenSSL's TLS error for an oversized cert list
    # Fallback for a rejection none of our checks explains (cryptography's WebPKI policy
    # is stricter than OpenSSL in places); OpenSSL's X509_V_ERR_CERT_REJECTED text.
    REJECTED = "certificate rejected"


class PolicyViolation(ValueError):
    """Raised by our extension validators inside cryptography's verifier."""


def _ee_key_usage(_policy: object, _cert: x509.Certificate, ku: x509.KeyUsage | None) -> None:
    # OpenSSL's sslclient purpose: a client key must be able to sign the handshake.
    if ku is not None and not (ku.digital_signature or ku.key_agreement):
        raise PolicyViolation("client certificate key usage lacks digitalSignature")


def _ca_key_usage(_policy: object, _cert: x509.Certificate, ku: x509.KeyUsage | None) -> None:
    # RFC 5280 wants keyUsage on CAs, but OpenSSL (and Cloudflare's edge) accept a CA
    # without it; when present it must allow certificate signing.
    if ku is not None and not ku.key_cert_sign:
        raise PolicyViolation("CA key usage lacks keyCertSign")


# WebPKI defaults, relaxed where client-certificate practice (and OpenSSL, the reference
# of the differential tests) differs:
# * end entity: no SAN required (managed-CA client certificates carry none); a
#   basicConstraints CA:TRUE leaf is accepted as OpenSSL does; keyUsage, when present,
#   must allow digitalSignature or keyAgreement (OpenSSL's sslclient purpose); the
#   Authority Key Identifier may be absent (self-signed client certificates pinned as
#   their own CA, old CAs).
# * CA: keyUsage may be absent; when present it must include keyCertSign.
_EE_POLICY = (
    ExtensionPolicy.webpki_defaults_ee()
    .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
    .may_be_present(x509.BasicConstraints, Criticality.AGNOSTIC, None)
    .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _ee_key_usage)
    .may_be_present(x509.AuthorityKeyIdentifier, Criticality.NON_CRITICAL, None)
)
_CA_POLICY = ExtensionPolicy.webpki_defaults_ca().may_be_present(
    x509.KeyUsage, Criticality.AGNOSTIC, _ca_key_usage
)
_DER = Encoding.DER
# DER of the NameConstraints extension OID: a cheap pre-filter on raw certificate bytes,
# so the common path never builds Python extension objects.
_NC_OID_DER = bytes.fromhex("0603551d1e")

_WEAK_DIGESTS = frozenset(
    {
        SignatureAlgorithmOID.RSA_WITH_MD5,
        SignatureAlgorithmOID.RSA_WITH_SHA1,
        SignatureAlgorithmOID._RSA_WITH_SHA1,
        SignatureAlgorithmOID.ECDSA_WITH_SHA1,
        SignatureAlgorithmOID.DSA_WITH_SHA1,
    }
)


@dataclass(frozen=True, slots=True)
class PathResult:
    """Outcome of one path validation.

    ``chain`` is the validated path (leaf first, anchor last) when ``verified``; after a
    failure it is the chain our classifier built (possibly partial), used to find the
    direct issuer. ``detail`` is the library's message, for logs only."""

    verified: bool
    chain: tuple[x509.Certificate, ...]
    reason: str = ""
    detail: str = ""


class TrustAnchors:
    """The trusted CA certificates, indexed once (a ``Store`` and a subject index)."""

    __slots__ = ("by_subject", "certs", "ders", "name_constraints", "store")

    def __init__(self, certs: Iterable[x509.Certificate]) -> None:
        unique: dict[bytes, x509.Certificate] = {}
        for cert in certs:
            unique.setdefault(cert.public_bytes(_DER), cert)
        self.certs: tuple[x509.Certificate, ...] = tuple(unique.values())
        self.ders = frozenset(unique)
        # Whether any anchor may carry NameConstraints (raw DER pre-filter).
        self.name_constraints = any(_NC_OID_DER in der for der in unique)
        self.store = Store(list(self.certs)) if self.certs else None
        self.by_subject: dict[x509.Name, list[x509.Certificate]] = {}
        for cert in self.certs:
            self.by_subject.setdefault(cert.subject, []).append(cert)


def _naive_utc(now: _dt.datetime) -> _dt.datetime:
    if now.tzinfo is not None:
        now = now.astimezone(_dt.UTC).replace(tzinfo=None)
    return now


def verify_path(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: TrustAnchors,
    now: _dt.datetime,
    *,
    intermediate_ders: Sequence[bytes] | None = None,
) -> PathResult:
    """Validate ``leaf`` through ``intermediates`` to one of ``anchors`` at ``now`` with
    the client (``clientAuth``) policy; classify a failure with :func:`classify`.

    ``intermediate_ders`` (the presented DER, when the caller has it) lets the
    subject-name-constraint check skip re-encoding certificates."""
    if anchors.store is None:
        chain, reason = classify(leaf, intermediates, anchors, now)
        return PathResult(False, chain, reason, "no trusted CA")
    try:
        verifier = (
            PolicyBuilder()
            .store(anchors.store)
            .time(_naive_utc(now))
            .max_chain_depth(MAX_CHAIN_DEPTH)
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
            .build_client_verifier()
        )
        verified = verifier.verify(leaf, list(intermediates))
    except Exception as exc:  # VerificationError, or anything odd in unusual input
        chain, reason = classify(leaf, intermediates, anchors, now)
        return PathResult(False, chain, reason, str(exc) or type(exc).__name__)
    path = tuple(verified.chain)
    if intermediate_ders is None:
        maybe_nc = any(_NC_OID_DER in ca.tbs_certificate_bytes for ca in path[1:])
    else:
        maybe_nc = anchors.name_constraints or any(_NC_OID_DER in d for d in intermediate_ders)
    reason = ""
    if maybe_nc:
        try:
            reason = _subject_constraints(path)
        except Exception:
            reason = ""
    if reason:
        return PathResult(False, path, reason, "name constraints violated by a subject name")
    return PathResult(True, path)


# --- classification -------------------------------------------------------------------


def _ext(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> x509.ExtensionType | None:
    try:
        return cert.extensions.get_extension_for_oid(oid).value
    except Exception:
        return None


def _may_issue(cand: x509.Certificate, child: x509.Certificate) -> bool:
    """OpenSSL's ``check_issued`` without purpose: names match and, when both key
    identifiers are present, they match too (no signature check)."""
    try:
        if cand.subject != child.issuer:
            return False
    except Exception:
        return False
    aki = aki_keyid(child)
    if aki is None:
        return True
    ski = ski_bytes(cand)
    return ski is None or ski == aki


def _signed_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(issuer)
    except Exception:
        return False
    return True


def valid_at(cert: x509.Certificate, now: _dt.datetime) -> bool:
    """``cert``'s validity window contains ``now`` (an aware datetime); False when its
    dates cannot be read."""
    try:
        return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc
    except Exception:
        return False


def _pick(cands: Iterable[x509.Certificate], child: x509.Certificate, now: _dt.datetime):
    """Among possible issuers prefer one whose signature verifies and that is valid now,
    then one whose signature verifies, then the first (OpenSSL's get_issuer prefers a
    time-valid match)."""
    matches = [c for c in cands if _may_issue(c, child)]
    if not matches:
        return None
    for c in matches:
        if _signed_by(child, c) and valid_at(c, now):
            return c
    for c in matches:
        if _signed_by(child, c):
            return c
    for c in matches:
        if valid_at(c, now):
            return c
    return matches[0]


def _self_issued(cert: x509.Certificate) -> bool:
    return _may_issue(cert, cert)


def find_issuer(
    leaf: x509.Certificate,
    candidates: Iterable[x509.Certificate],
) -> x509.Certificate | None:
    """The direct issuer among ``candidates``: subject equals the leaf's issuer and the
    leaf's signature verifies with its key (used for unverified leaves)."""
    for cand in candidates:
        try:
            if cand.subject == leaf.issuer and _signed_by(leaf, cand):
                return cand
        except Exception:
            continue
    return None


def _now_aware(now: _dt.datetime) -> _dt.datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=_dt.UTC)


def classify(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: TrustAnchors,
    now: _dt.datetime,
) -> tuple[tuple[x509.Certificate, ...], str]:
    """Explain a failed validation the way OpenSSL would: ``(chain built, reason)``."""
    now = _now_aware(now)
    try:
        return _classify(leaf, intermediates, anchors, now)
    except Exception:  # a certificate too odd for one of our checks
        return (leaf,), Reason.REJECTED


def _classify(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: TrustAnchors,
    now: _dt.datetime,
) -> tuple[tuple[x509.Certificate, ...], str]:
    chain: list[x509.Certificate] = [leaf]
    anchored = leaf.public_bytes(_DER) in anchors.ders
    pool = list(intermediates)
    # 1. chain building (OpenSSL build_chain with trusted-first and partial chains)
    while not anchored:
        cur = chain[-1]
        issuer = _pick(anchors.by_subject.get(cur.issuer, ()), cur, now)
        if issuer is not None:
            chain.append(issuer)
            anchored = True
            break
        if _self_issued(cur):
            reason = Reason.SELF_SIGNED if len(chain) == 1 else Reason.SELF_SIGNED_IN_CHAIN
            return tuple(chain), reason
        issuer = _pick([c for c in pool if c not in chain], cur, now)
        if issuer is None:
            # OpenSSL: a lone leaf -> "unable to get local issuer certificate" when the
            # issuer is simply unknown (what `openssl verify` prints for a wrong CA).
            return tuple(chain), Reason.NO_LOCAL_ISSUER
        chain.append(issuer)
        if len(chain) > MAX_CHAIN_DEPTH + 2:
            return tuple(chain), Reason.CHAIN_TOO_LONG
    n = len(chain)
    if n - 2 > MAX_CHAIN_DEPTH:  # intermediates between the leaf and the anchor
        return tuple(chain), Reason.CHAIN_TOO_LONG
    # 2. extensions: critical extensions, CA flag and purpose (bottom-up), path length
    plen = 0
    for i, cert in enumerate(chain):
        if _unhandled_critical(cert):  # every certificate, the trust anchor included
            return tuple(chain), Reason.UNHANDLED_CRITICAL
        if i == 0:
            if n > 1 or not anchored:
                reason = _leaf_purpose(cert)
                if reason:
                    return tuple(chain), reason
        else:
            bc = _ext(cert, ExtensionOID.BASIC_CONSTRAINTS)
            if not isinstance(bc, x509.BasicConstraints) or not bc.ca:
                return tuple(chain), Reason.INVALID_CA
            ku = _ext(cert, ExtensionOID.KEY_USAGE)
            if isinstance(ku, x509.KeyUsage) and not ku.key_cert_sign:
                return tuple(chain), Reason.INVALID_CA
            # a CA's EKU, the anchor's included, must allow clientAuth (OpenSSL's
            # check_purpose runs on every certificate of the chain)
            eku = _ext(cert, ExtensionOID.EXTENDED_KEY_USAGE)
            if (
                isinstance(eku, x509.ExtendedKeyUsage)
                and ExtendedKeyUsageOID.CLIENT_AUTH not in eku
            ):
                return tuple(chain), Reason.UNSUPPORTED_PURPOSE
            if bc.path_length is not None and plen > bc.path_length + 1:
                return tuple(chain), Reason.PATH_LENGTH
        if i == 0 or not _self_issued(cert):
            plen += 1
    # 3. key sizes and digests (OpenSSL security level 2, as a TLS server applies)
    for i, cert in enumerate(chain):
        try:
            key = cert.public_key()
        except Exception:
            return tuple(chain), Reason.REJECTED
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
            return tuple(chain), Reason.EE_KEY_TOO_WEAK if i == 0 else Reason.CA_KEY_TOO_WEAK
        if i < n - 1 and cert.signature_algorithm_oid in _WEAK_DIGESTS:
            return tuple(chain), Reason.CA_MD_TOO_WEAK
    # 4. signatures and validity windows, top-down (OpenSSL internal_verify)
    for i in range(n - 1, -1, -1):
        cert = chain[i]
        if i < n - 1 and not _signed_by(cert, chain[i + 1]):
            return tuple(chain), Reason.SIGNATURE_FAILURE
        if now < cert.not_valid_before_utc:
            return tuple(chain), Reason.NOT_YET_VALID
        if now > cert.not_valid_after_utc:
            return tuple(chain), Reason.EXPIRED
    # 5. name constraints (only the forms client certificates use); OpenSSL's
    # verify_chain runs check_name_constraints after internal_verify
    reason = _name_constraints(chain)
    return tuple(chain), reason or Reason.REJECTED


# Extensions OpenSSL handles when critical (X509_supported_extension).
_HANDLED_CRITICAL = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.NAME_CONSTRAINTS,
        ExtensionOID.POLICY_CONSTRAINTS,
        ExtensionOID.CERTIFICATE_POLICIES,
        ExtensionOID.POLICY_MAPPINGS,
        ExtensionOID.INHIBIT_ANY_POLICY,
        x509.ObjectIdentifier("2.16.840.1.113730.1.1"),  # netscape-cert-type
        x509.ObjectIdentifier("1.3.6.1.5.5.7.1.14"),  # proxyCertInfo
        x509.ObjectIdentifier("1.3.6.1.5.5.7.1.7"),  # sbgp-ipAddrBlock
        x509.ObjectIdentifier("1.3.6.1.5.5.7.1.8"),  # sbgp-autonomousSysNum
    }
)


def _unhandled_critical(cert: x509.Certificate) -> bool:
    try:
        exts = cert.extensions
    except Exception:
        return False  # unparsable extensions are reported as a rejection later
    return any(ext.critical and ext.oid not in _HANDLED_CRITICAL for ext in exts)


def _leaf_purpose(cert: x509.Certificate) -> str:
    """OpenSSL's ``sslclient`` purpose for the end entity: an EKU without clientAuth, or a
    key usage without digitalSignature/keyAgreement, is rejected."""
    eku = _ext(cert, ExtensionOID.EXTENDED_KEY_USAGE)
    if isinstance(eku, x509.ExtendedKeyUsage) and ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        return Reason.UNSUPPORTED_PURPOSE
    ku = _ext(cert, ExtensionOID.KEY_USAGE)
    if isinstance(ku, x509.KeyUsage) and not (ku.digital_signature or ku.key_agreement):
        return Reason.UNSUPPORTED_PURPOSE
    return ""


def _dns_match(name: str, base: str) -> bool:
    name, base = name.lower().rstrip("."), base.lower().rstrip(".")
    if not base:
        return True
    if base.startswith("."):
        return name.endswith(base)
    return name == base or name.endswith("." + base)


def _email_match(addr: str, base: str) -> bool:
    addr, base = addr.lower(), base.lower()
    if "@" in base:
        return addr == base
    domain = addr.rpartition("@")[2]
    if base.startswith("."):
        return domain.endswith(base)
    return domain == base


def _subject_names(leaf: x509.Certificate, sans: list[x509.GeneralName]) -> list[x509.GeneralName]:
    """Names OpenSSL derives from the subject for name constraints: emailAddress
    attributes (RFC 5280 §4.2.1.10) and, when the leaf has no DNS SAN, a CN that looks
    like a host name (OpenSSL's ``NAME_CONSTRAINTS_check_CN``)."""
    out: list[x509.GeneralName] = []
    for attr in leaf.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS):
        if isinstance(attr.value, str):
            out.append(x509.RFC822Name(attr.value))
    if not any(isinstance(gn, x509.DNSName) for gn in sans):
        for attr in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            cn = attr.value
            if isinstance(cn, str) and _HOSTNAME.fullmatch(cn):
                out.append(x509.DNSName(cn))
    return out


_HOSTNAME = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.?"
)


def _general_names(leaf: x509.Certificate) -> list[x509.GeneralName]:
    san = _ext(leaf, ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    names: list[x509.GeneralName] = (
        list(san) if isinstance(san, x509.SubjectAlternativeName) else []
    )
    names.extend(_subject_names(leaf, names))
    names.append(x509.DirectoryName(leaf.subject))
    return names


def _subtree_match(gn: x509.GeneralName, base: x509.GeneralName) -> bool | None:
    """True/False when ``gn`` and ``base`` are of one kind; None when not comparable."""
    if isinstance(gn, x509.DNSName) and isinstance(base, x509.DNSName):
        return _dns_match(gn.value, base.value)
    if isinstance(gn, x509.RFC822Name) and isinstance(base, x509.RFC822Name):
        return _email_match(gn.value, base.value)
    if isinstance(gn, x509.IPAddress) and isinstance(base, x509.IPAddress):
        net = base.value
        return hasattr(net, "network_address") and gn.value in net  # type: ignore[operator]
    if isinstance(gn, x509.DirectoryName) and isinstance(base, x509.DirectoryName):
        rdns, prefix = list(gn.value.rdns), list(base.value.rdns)
        return rdns[: len(prefix)] == prefix
    return None


def _name_constraints(
    chain: Sequence[x509.Certificate], names: list[x509.GeneralName] | None = None
) -> str:
    leaf_names = _general_names(chain[0]) if names is None else names
    for cert in chain[1:]:
        nc = _ext(cert, ExtensionOID.NAME_CONSTRAINTS)
        if not isinstance(nc, x509.NameConstraints):
            continue
        for gn in leaf_names:
            if isinstance(gn, x509.DirectoryName) and not gn.value.rdns:
                continue
            for base in nc.excluded_subtrees or ():
                if _subtree_match(gn, base):
                    return Reason.EXCLUDED_SUBTREE
            permitted = [
                b for b in (nc.permitted_subtrees or ()) if _subtree_match(gn, b) is not None
            ]
            if permitted and not any(_subtree_match(gn, b) for b in permitted):
                return Reason.PERMITTED_SUBTREE
    return ""


def _subject_constraints(chain: Sequence[x509.Certificate]) -> str:
    """Name constraints on subject-derived names, which cryptography does not check
    (it checks SANs only). Stricter than cryptography, as OpenSSL and RFC 5280 are."""
    leaf = chain[0]
    san = _ext(leaf, ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    sans = list(san) if isinstance(san, x509.SubjectAlternativeName) else []
    extra = _subject_names(leaf, sans)
    return _name_constraints(chain, extra) if extra else ""
