"""PKCS#12 bundles for devices (iOS apps ship key + certificate as PKCS#12:
https://developers.cloudflare.com/ssl/client-certificates/configure-your-mobile-app-or-iot-device/).

The store never holds client private keys, so the key comes from the caller: at issue time
for a generated key, or from a file later. Without a key the bundle holds only the
certificate and the CA (a trust bundle). With a password the bundle uses PBES2/AES-256 and
an HMAC-SHA256 MAC; ``legacy=True`` uses 3DES/SHA-1 for older Android/iOS/macOS importers.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from edgerules.pki.errors import PKIError


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def export_pkcs12(
    cert: x509.Certificate,
    ca: x509.Certificate,
    key: PrivateKeyTypes | None = None,
    *,
    password: bytes | None = None,
    friendly_name: str | None = None,
    legacy: bool = False,
) -> bytes:
    """Serialise ``cert`` (+ ``key`` if given) + ``ca`` as PKCS#12 DER."""
    if key is not None and _spki(key.public_key()) != _spki(cert.public_key()):
        raise PKIError("the private key does not match the certificate's public key")
    encryption: serialization.KeySerializationEncryption
    if not password:
        encryption = serialization.NoEncryption()
    elif legacy:
        encryption = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(2048)
            .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
            .hmac_hash(hashes.SHA1())
            .build(password)
        )
    else:
        encryption = serialization.BestAvailableEncryption(password)
    name = friendly_name.encode("utf-8") if friendly_name else None
    try:
        return pkcs12.serialize_key_and_certificates(name, key, cert, [ca], encryption)  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise PKIError(f"cannot build the PKCS#12 bundle: {exc}") from None
