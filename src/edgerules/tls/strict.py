"""The ``strict`` profile's rules beyond OpenSSL's: RFC 5280 / CA/B Forum certificate
profile checks, as pyca/cryptography's WebPKI verifier enforces them (with the client-
certificate relaxations edgerules has always made: no SAN or AKI required on the leaf,
keyUsage optional on CAs, a CA:TRUE leaf accepted).

Owns: :func:`strict_reason` — the first rule a chain already accepted by the OpenSSL
engine (:mod:`edgerules.tls.walk`) breaks, worded with OpenSSL's ``-x509_strict`` text
where OpenSSL has one (``Basic Constraints of CA cert not marked critical``), in precise
words otherwise (``X.509 v1 certificate (the strict profile requires v3)``).

Invariants: pure; checks the leaf first, then each CA up to the anchor; weak
cryptography is not judged here (the profile's allowances apply in the walk).
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509

from edgerules.tls import der
from edgerules.tls.certs import Cert
from edgerules.tls.der import DERError
from edgerules.tls.profiles import Profile
from edgerules.tls.reasons import Reason

__all__ = ["ca_strict_reason", "strict_reason"]

_STRICT = "(refused by the strict profile)"

# Extensions cryptography's WebPKI policies account for; any other critical extension
# is refused by the strict profile.
_KNOWN = {
    bytes.fromhex("2b06010505070101"): "authorityInfoAccess",
    bytes.fromhex("551d23"): "authorityKeyIdentifier",
    bytes.fromhex("551d0e"): "subjectKeyIdentifier",
    bytes.fromhex("551d0f"): "keyUsage",
    bytes.fromhex("551d11"): "subjectAltName",
    bytes.fromhex("551d13"): "basicConstraints",
    bytes.fromhex("551d1e"): "nameConstraints",
    bytes.fromhex("551d25"): "extendedKeyUsage",
}
_NAMES = {
    bytes.fromhex("551d20"): "certificatePolicies",
    bytes.fromhex("551d24"): "policyConstraints",
    bytes.fromhex("551d21"): "policyMappings",
    bytes.fromhex("551d36"): "inhibitAnyPolicy",
    bytes.fromhex("551d1f"): "cRLDistributionPoints",
    bytes.fromhex("6086480186f8420101"): "netscape-cert-type",
}
_AIA, _AKI, _SKI = (bytes.fromhex(h) for h in ("2b06010505070101", "551d23", "551d0e"))
_NC, _EKU = bytes.fromhex("551d1e"), bytes.fromhex("551d25")

# CA key algorithms (SPKI) and signature algorithms (CA/B 7.1.3), raw DER.
_CA_CURVES = {bytes.fromhex(h) for h in ("2a8648ce3d030107", "2b81040022", "2b81040023")}
_SIG_ALGS = {
    bytes.fromhex(h)
    for h in (
        "300d06092a864886f70d01010b0500",  # sha256WithRSAEncryption
        "300d06092a864886f70d01010c0500",  # sha384WithRSAEncryption
        "300d06092a864886f70d01010d0500",  # sha512WithRSAEncryption
        "300a06082a8648ce3d040302",  # ecdsa-with-SHA256
        "300a06082a8648ce3d040303",  # ecdsa-with-SHA384
        "300a06082a8648ce3d040304",  # ecdsa-with-SHA512
        # RSASSA-PSS, SHA-256/384/512 with MGF1 of the same hash and matching salt
        "304106092a864886f70d01010a3034a00f300d0609608648016503040201050"
        "0a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120",
        "304106092a864886f70d01010a3034a00f300d0609608648016503040202050"
        "0a11c301a06092a864886f70d010108300d06096086480165030402020500a203020130",
        "304106092a864886f70d01010a3034a00f300d0609608648016503040203050"
        "0a11c301a06092a864886f70d010108300d06096086480165030402030500a203020140",
    )
}
_WEAK_SIG_ALGS = {
    "sha1": {
        bytes.fromhex("300d06092a864886f70d0101050500"),
        bytes.fromhex("300906072a8648ce3d0401"),
    },
    "md5": {bytes.fromhex("300d06092a864886f70d0101040500")},
}
_GN_NAMES = {
    "DirectoryName": "directoryName",
    "UniformResourceIdentifier": "URI",
    "OtherName": "otherName",
    "RegisteredID": "registeredID",
}
_PRINTABLE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")


def _generalized_before_2050(validity: bytes) -> bool:
    try:
        _tag, cs, ce = der.read(validity, 0, len(validity))
        for ttag, _p, tcs, _tce in der.children(validity, cs, ce):
            if ttag == 0x18 and int(validity[tcs : tcs + 4]) < 2050:
                return True
    except (DERError, ValueError):
        return True
    return False


def _printable_ok(cert: Cert) -> bool:
    if not cert.copy:
        return True  # cryptography loaded it: its PrintableStrings are in the alphabet
    for entries in (cert.raw.subject_entries, cert.raw.issuer_entries):
        for _i, _oid, tag, data, _tlv in entries:
            if tag == 19 and not _PRINTABLE.issuperset(data):
                return False
    return True


def _cert_reason(cert: Cert, is_ca: bool) -> str:
    raw = cert.raw
    if raw.version != 2:
        return f"X.509 v{raw.version + 1} certificate (the strict profile requires v3)"
    if raw.serial < 0:
        return f"negative serial number {_STRICT}"
    if len(raw.serial_bytes) > 21:
        return f"serial number longer than 20 octets {_STRICT}"
    if raw.issuer == b"\x30\x00":
        return Reason.ISSUER_EMPTY
    if _generalized_before_2050(raw.validity):
        return f"validity date before 2050 encoded as GeneralizedTime {_STRICT}"
    if not _printable_ok(cert):
        return f"PrintableString with characters outside its alphabet {_STRICT}"
    for oid, critical, _value in raw.extensions:
        if not critical:
            continue
        if oid == _AKI:
            return Reason.AKI_CRITICAL
        if oid == _EKU:
            return f"extendedKeyUsage marked critical {_STRICT}"
        if oid == _AIA:
            return f"authorityInfoAccess marked critical {_STRICT}"
        if oid == _SKI and is_ca:
            return Reason.SKI_CRITICAL
        if oid not in _KNOWN:
            name = _NAMES.get(oid) or der.oid_dotted(oid)
            return f"critical {name} extension {_STRICT}"
    if not is_ca and raw.extension(_NC) is not None:
        return f"nameConstraints on an end-entity certificate {_STRICT}"
    return ""


def _ca_reason(cert: Cert, depth: int) -> str:
    found = cert.raw.extension(bytes.fromhex("551d13"))
    if found is None:
        return Reason.INVALID_CA
    if not found[0]:
        return Reason.CA_BC_NOT_CRITICAL
    bc = cert.ext(x509.BasicConstraints)
    # cryptography counts every intermediate, self-issued ones included
    if (
        isinstance(bc, x509.BasicConstraints)
        and bc.path_length is not None
        and depth > bc.path_length
    ):
        return Reason.PATH_LENGTH
    kind, params = cert.key_info
    if not (kind == "rsa" or (kind == "ec" and params in _CA_CURVES)):
        shown = f"EC curve {der.oid_dotted(params)}" if kind == "ec" and params else kind  # type: ignore[arg-type]
        return f"CA key algorithm {shown} {_STRICT}"
    nc = cert.ext(x509.NameConstraints)
    if isinstance(nc, x509.NameConstraints):
        for sub in (*(nc.permitted_subtrees or ()), *(nc.excluded_subtrees or ())):
            if not isinstance(sub, (x509.DNSName, x509.IPAddress, x509.RFC822Name)):
                kind_name = _GN_NAMES.get(type(sub).__name__, type(sub).__name__)
                return f"{kind_name} name constraints are not supported by the strict profile"
    return ""


def _memo_reason(cert: Cert, is_ca: bool, depth: int) -> str:
    """``_cert_reason`` (+ ``_ca_reason`` for a CA), memoised on the certificate: a CA's
    answer does not depend on the chain it is in (only on its depth below the leaf)."""
    key = ("strict", is_ca, depth)
    hit = cert.memo.get(key)
    if hit is None:
        try:
            hit = _cert_reason(cert, is_ca=is_ca)
            if not hit and is_ca:
                hit = _ca_reason(cert, depth)
        except DERError:
            hit = Reason.UNDECODABLE
        cert.memo[key] = hit
    return hit  # type: ignore[return-value]


def ca_strict_reason(cert: Cert) -> str:
    """The strict profile's first objection to ``cert`` as a trust anchor (``""``)."""
    return _memo_reason(cert, True, 0)


def strict_reason(chain: Sequence[Cert], prof: Profile) -> str:
    """The first strict-profile rule ``chain`` (leaf first, anchor last) breaks."""
    n = len(chain)
    for i, cert in enumerate(chain):
        try:
            reason = _memo_reason(cert, i > 0, max(i - 1, 0))
            if not reason and i < n - 1:
                alg = cert.raw.sig_alg
                allowed = any(alg in _WEAK_SIG_ALGS[w] for w in prof.allow if w in _WEAK_SIG_ALGS)
                if alg not in _SIG_ALGS and not allowed:
                    name = cert.x509.signature_algorithm_oid
                    shown = getattr(name, "_name", None) or name.dotted_string
                    reason = f"signature algorithm {shown} {_STRICT}"
                elif cert.raw.issuer != chain[i + 1].raw.subject:
                    reason = (
                        "issuer name matches its CA's subject only after case and space "
                        f"folding {_STRICT}"
                    )
        except DERError:
            reason = Reason.UNDECODABLE
        if reason:
            return reason
    return ""
