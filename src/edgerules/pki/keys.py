"""Private keys: generation and PKCS#8 (de)serialisation, encrypted when a passphrase is set.

Invariants: keys leave this module only as PKCS#8 PEM (never the "traditional" OpenSSL
format — anti-pattern 11); an encrypted key is never silently written in clear; an empty
passphrase is an error, never "unencrypted"; every library error becomes a
:class:`PKIError`.

Encryption at rest (issue 9.9): standard PKCS#8 ``EncryptedPrivateKeyInfo`` with PBES2 —
PBKDF2-HMAC-SHA256 at :data:`KDF_ITERATIONS` (600,000, OWASP's figure for
PBKDF2-SHA256) and AES-256-CBC — so ``openssl pkey`` and every PKCS#8 reader decrypt it.
cryptography's ``BestAvailableEncryption`` uses 2,048 iterations and offers no knob for
PKCS#8, so the DER is assembled here (:func:`_pbes2_der`); decryption is cryptography's.
:func:`kdf_iterations` reads the count back, so weaker keys (written by older versions)
are recognised and re-encrypted.
"""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    PrivateKeyTypes,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from edgerules.pki.errors import PKIError

KEY_TYPES = ("ecdsa", "rsa")
#: PBKDF2-HMAC-SHA256 iterations for keys encrypted at rest (OWASP 2023: 600,000).
KDF_ITERATIONS = 600_000

# DER object identifiers (content octets) of the PBES2 structure.
_OID_PBES2 = bytes.fromhex("2a864886f70d01050d")  # 1.2.840.113549.1.5.13
_OID_PBKDF2 = bytes.fromhex("2a864886f70d01050c")  # 1.2.840.113549.1.5.12
_OID_HMAC_SHA256 = bytes.fromhex("2a864886f70d0209")  # 1.2.840.113549.2.9
_OID_AES256_CBC = bytes.fromhex("60864801650304012a")  # 2.16.840.1.101.3.4.1.42


def public_key_der(obj: object) -> bytes:
    """The SubjectPublicKeyInfo (DER) of a certificate or key: what "the same key" means
    when revocation is matched by the issuer's key (issue 9.11)."""
    public = obj.public_key() if hasattr(obj, "public_key") else obj  # type: ignore[union-attr]
    return public.public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def generate_key(key_type: str = "ecdsa") -> CertificateIssuerPrivateKeyTypes:
    """A fresh key: ``"ecdsa"`` → P-256 (the default), ``"rsa"`` → RSA 2048, e=65537."""
    if key_type == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise PKIError(f"unsupported key type {key_type!r}: choose one of {', '.join(KEY_TYPES)}")


def key_to_pem(key: PrivateKeyTypes, passphrase: bytes | None = None) -> str:
    """PKCS#8 PEM; ``ENCRYPTED PRIVATE KEY`` (PBES2: PBKDF2-HMAC-SHA256 at
    :data:`KDF_ITERATIONS`, AES-256-CBC) when ``passphrase`` is given."""
    if passphrase is not None and not passphrase:
        raise PKIError("the passphrase is empty (an empty passphrase never means 'unencrypted')")
    plain = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    if passphrase is None:
        return _pem("PRIVATE KEY", plain)
    return _pem("ENCRYPTED PRIVATE KEY", _pbes2_der(plain, passphrase, KDF_ITERATIONS))


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def _der_int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _pbes2_der(plain_pkcs8: bytes, passphrase: bytes, iterations: int) -> bytes:
    """RFC 8018 ``EncryptedPrivateKeyInfo`` with PBES2(PBKDF2-HMAC-SHA256, AES-256-CBC)."""
    salt, iv = os.urandom(16), os.urandom(16)
    kek = PBKDF2HMAC(hashes.SHA256(), 32, salt, iterations).derive(passphrase)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain_pkcs8) + padder.finalize()
    encryptor = Cipher(algorithms.AES(kek), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    seq, oid, octets = 0x30, 0x06, 0x04
    prf = _der(seq, _der(oid, _OID_HMAC_SHA256) + _der(0x05, b""))
    kdf = _der(seq, _der(oid, _OID_PBKDF2) + _der(seq, _der(octets, salt) + _der_int(iterations) + prf))
    cipher = _der(seq, _der(oid, _OID_AES256_CBC) + _der(octets, iv))
    algorithm = _der(seq, _der(oid, _OID_PBES2) + _der(seq, kdf + cipher))
    return _der(seq, algorithm + _der(octets, ciphertext))


def _pem(label: str, der: bytes) -> str:
    body = base64.encodebytes(der).decode("ascii").replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def kdf_iterations(pem: str | bytes) -> int | None:
    """The PBKDF2 iteration count of an ``ENCRYPTED PRIVATE KEY`` PEM (PBES2/PBKDF2);
    ``None`` for a clear key; ``0`` for any other or unreadable protection (treated as
    weaker than :data:`KDF_ITERATIONS`, so it is re-encrypted)."""
    text = pem.decode("ascii", "replace") if isinstance(pem, bytes) else pem
    if "ENCRYPTED PRIVATE KEY" not in text:
        return None
    try:
        body = "".join(line for line in text.splitlines() if line and not line.startswith("-----"))
        der = base64.b64decode(body)
        # EncryptedPrivateKeyInfo > AlgorithmIdentifier > PBES2-params > keyDerivationFunc
        # > PBKDF2-params > iterationCount: walk the first element at each level.
        node = _children(der)[0]  # algorithm identifier
        oid, params = _children(node)
        if oid != _der(0x06, _OID_PBES2):
            return 0
        kdf = _children(params)[0]
        kdf_oid, kdf_params = _children(kdf)
        if kdf_oid != _der(0x06, _OID_PBKDF2):
            return 0
        count = _children(kdf_params)[1]
        return int.from_bytes(_content(count), "big")
    except (ValueError, IndexError):
        return 0


def _content(element: bytes) -> bytes:
    """The content octets of one DER element."""
    n = element[1]
    if n < 0x80:
        return element[2 : 2 + n]
    width = n & 0x7F
    size = int.from_bytes(element[2 : 2 + width], "big")
    return element[2 + width : 2 + width + size]


def _children(element: bytes) -> list[bytes]:
    """The complete DER elements inside a constructed element."""
    body, out = _content(element), []
    while body:
        n = body[1]
        if n < 0x80:
            size, head = n, 2
        else:
            width = n & 0x7F
            size, head = int.from_bytes(body[2 : 2 + width], "big"), 2 + (n & 0x7F)
        if head + size > len(body):
            raise ValueError("truncated DER")
        out.append(body[: head + size])
        body = body[head + size :]
    return out


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
