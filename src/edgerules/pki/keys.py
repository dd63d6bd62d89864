"""Private keys: generation and PKCS#8 (de)serialisation, encrypted when a passphrase is set.

Invariants: keys leave this module only as PKCS#8 PEM (never the "traditional" OpenSSL
format — anti-pattern 11); an encrypted key is never silently written in clear; every
library error becomes a :class:`PKIError`.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    PrivateKeyTypes,
)

from edgerules.pki.errors import PKIError

KEY_TYPES = ("ecdsa", "rsa")


def generate_key(key_type: str = "ecdsa") -> CertificateIssuerPrivateKeyTypes:
    """A fresh key: ``"ecdsa"`` → P-256 (the default), ``"rsa"`` → RSA 2048, e=65537."""
    if key_type == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise PKIError(f"unsupported key type {key_type!r}: choose one of {', '.join(KEY_TYPES)}")


def key_to_pem(key: PrivateKeyTypes, passphrase: bytes | None = None) -> str:
    """PKCS#8 PEM; ``ENCRYPTED PRIVATE KEY`` (PBES2/AES-256) when ``passphrase`` is given."""
    encryption: serialization.KeySerializationEncryption
    if passphrase:
        encryption = serialization.BestAvailableEncryption(passphrase)
    else:
        encryption = serialization.NoEncryption()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode("ascii")


def key_from_pem(
    pem: str | bytes,
    passphrase: bytes | None = None,
    *,
    if_encrypted: str = "pass its passphrase",
) -> PrivateKeyTypes:
    """Load a PEM private key; a missing or wrong passphrase is a clear :class:`PKIError`.

    ``if_encrypted`` tells the user what to do about an encrypted key given without a
    passphrase (whose passphrase it is depends on where the key comes from)."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    encrypted = b"ENCRYPTED PRIVATE KEY" in data
    if encrypted and not passphrase:
        raise PKIError(f"the private key is encrypted: {if_encrypted}")
    try:
        return serialization.load_pem_private_key(data, password=passphrase if encrypted else None)
    except (ValueError, TypeError) as exc:
        if encrypted:
            raise PKIError("cannot decrypt the private key: wrong passphrase") from None
        raise PKIError(f"malformed private key: {exc}") from None
    except Exception as exc:  # cryptography's UnsupportedAlgorithm and friends
        raise PKIError(f"unsupported private key: {exc}") from None
