"""Public keys and signature algorithms: DoS caps, verification cost, weakness.

Owns three judgements, all made from the raw SubjectPublicKeyInfo / algorithm OIDs
(:attr:`RawCert.key_info`) without loading a key or checking a signature:

* :func:`refusal` — keys too expensive (or too odd) to verify a signature with (issue 9
  point 2): RSA moduli over 8192 bits, RSA public exponents over 2^32-1 (or even, or
  below 3), EC keys with explicit parameters or an unsupported curve, DSA moduli over
  3072 bits, any other algorithm. Such a key is never used to check a signature.
* :func:`cost` — what one signature check with the key costs, in units of one ECDSA
  P-256 verification (measured on the reference machine, rounded up); the validator's
  signature budget is counted in these units.
* :func:`key_weakness` / :func:`digest_weakness` — OpenSSL security level 2 (what a TLS
  server applies by default; 112-bit security) plus "DSA is weak": the weakness name an
  operator must allow (``rsa1024``, ``dsa``, ``sha1``, ``md5``; see
  :mod:`edgerules.tls.profiles`), or ``HARD`` for what no allowance covers (RSA under
  1024 bits, curves under 224 bits, MD2/MD4).

Invariants: pure functions; every function takes whatever ``key_info`` returned.
"""

from __future__ import annotations

import math

from edgerules.tls.der import DERError
from edgerules.tls.rawcert import RawCert

__all__ = [
    "HARD",
    "MAX_RSA_BITS",
    "MAX_RSA_EXPONENT",
    "certificate_refusal",
    "cost",
    "digest_weakness",
    "key_weakness",
    "refusal",
]

MAX_RSA_BITS = 8192
MAX_RSA_EXPONENT = 2**32 - 1
MAX_DSA_BITS = 3072
HARD = "hard"  # a weakness no allowance covers

# curve OID body -> (bits, cost in P-256 units)
_CURVES: dict[bytes, tuple[int, int]] = {
    bytes.fromhex("2a8648ce3d030101"): (192, 3),  # P-192
    bytes.fromhex("2b81040021"): (224, 3),  # P-224
    bytes.fromhex("2a8648ce3d030107"): (256, 1),  # P-256
    bytes.fromhex("2b81040022"): (384, 5),  # P-384
    bytes.fromhex("2b81040023"): (521, 7),  # P-521
    bytes.fromhex("2b8104000a"): (256, 4),  # secp256k1
    bytes.fromhex("2b2403030208010107"): (256, 4),  # brainpoolP256r1
    bytes.fromhex("2b240303020801010b"): (384, 8),  # brainpoolP384r1
    bytes.fromhex("2b240303020801010d"): (512, 13),  # brainpoolP512r1
}

_MD5 = {"1.2.840.113549.1.1.4"}
_SHA1 = {
    "1.2.840.113549.1.1.5",  # sha1WithRSAEncryption
    "1.3.14.3.2.29",  # sha1WithRSA (OIW)
    "1.2.840.10045.4.1",  # ecdsa-with-SHA1
    "1.2.840.10040.4.3",  # dsa-with-sha1
}
_BROKEN = {"1.2.840.113549.1.1.2", "1.2.840.113549.1.1.3"}  # md2/md4WithRSAEncryption


def refusal(info: tuple[str, object]) -> str:
    """Why a key must not be used to verify signatures (``""`` when it may)."""
    kind, params = info
    if kind == "rsa":
        bits, e = params  # type: ignore[misc]
        if bits > MAX_RSA_BITS:
            return f"RSA modulus of {bits} bits (limit {MAX_RSA_BITS})"
        if e > MAX_RSA_EXPONENT:
            return f"RSA public exponent of {e.bit_length()} bits (limit 2^32-1)"
        if e < 3 or e % 2 == 0:
            return "invalid RSA public exponent"
        return ""
    if kind == "ec":
        if params is None:
            return "EC key with explicit curve parameters"
        if params not in _CURVES:
            return "EC key on an unsupported curve"
        return ""
    if kind == "dsa":
        if not params or params > MAX_DSA_BITS:  # type: ignore[operator]
            return f"DSA modulus of {params} bits (limit {MAX_DSA_BITS})"
        return ""
    if kind in ("ed25519", "ed448"):
        return ""
    return f"unsupported public key algorithm {kind}"


def cost(info: tuple[str, object]) -> int:
    """Signature-check cost of a key that :func:`refusal` accepts, in P-256 units."""
    kind, params = info
    if kind == "rsa":
        bits, e = params  # type: ignore[misc]
        work = (bits / 4096) ** 2 * (e.bit_length() + bin(e).count("1")) / 19
        return max(1, math.ceil(work))
    if kind == "ec":
        return _CURVES.get(params, (0, 13))[1]  # type: ignore[arg-type]
    if kind == "dsa":
        return max(5, math.ceil(5 * ((params or 0) / 2048) ** 2))  # type: ignore[operator]
    if kind == "ed25519":
        return 2
    if kind == "ed448":
        return 3
    return 13


def key_weakness(info: tuple[str, object]) -> str:
    """``""`` for a key of at least 112-bit security; else the weakness name to allow
    (``rsa1024``, ``dsa``) or :data:`HARD`."""
    kind, params = info
    if kind == "rsa":
        bits = params[0]  # type: ignore[index]
        if bits >= 2048:
            return ""
        return "rsa1024" if bits >= 1024 else HARD
    if kind == "dsa":
        return "dsa" if (params or 0) >= 2048 else HARD  # type: ignore[operator]
    if kind == "ec":
        curve = _CURVES.get(params)  # type: ignore[arg-type]
        return "" if curve is None or curve[0] >= 224 else HARD
    return ""


def digest_weakness(sig_alg_dotted: str) -> str:
    """The weakness of a signature algorithm: ``sha1``, ``md5``, :data:`HARD` or ``""``."""
    if sig_alg_dotted in _SHA1:
        return "sha1"
    if sig_alg_dotted in _MD5:
        return "md5"
    if sig_alg_dotted in _BROKEN:
        return HARD
    return ""


def certificate_refusal(certificate_der: bytes) -> str:
    """:func:`refusal` of a DER certificate's public key; ``""`` when the key may be used
    or the certificate cannot be read (decoding errors are the validator's to report).

    For the TLS layer, which sees certificates before the validator does: OpenSSL checks
    a signature with a presented key inside the handshake (the client's CertificateVerify
    with the leaf's key; the leaf's signature with the first intermediate's key), so a
    key too costly to verify with must be refused before that."""
    try:
        return refusal(RawCert.parse(certificate_der).key_info)
    except (DERError, ValueError, IndexError):
        return ""
