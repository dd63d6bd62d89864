"""Self-signed development server certificate for the proxy when no --cert/--key is given.

Owns: generating an ECDSA P-256 key and a self-signed server certificate valid for
``localhost``, ``*.localhost``, 127.0.0.1 and ::1 (plus any names asked for). The key
never touches the disk; the certificate lives for 30 days. It lives in ``pki`` (the
modules allowed to call cryptography's X.509 APIs); ``edgerules.proxy.tls`` only hands
the objects to pyOpenSSL.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["DevCertificate", "generate_dev_certificate"]


@dataclass(frozen=True)
class DevCertificate:
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def generate_dev_certificate(
    hostnames: Iterable[str] = ("localhost", "*.localhost"),
) -> DevCertificate:
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    seen: set[str] = set()
    for name in (*hostnames, "localhost", "127.0.0.1", "::1"):
        if name in seen:
            continue
        seen.add(name)
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            names.append(x509.DNSName(name))
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "edgerules development certificate"),
            x509.NameAttribute(
                NameOID.ORGANIZATION_NAME, "edgerules (self-signed, not for production)"
            ),
        ]
    )
    now = _dt.datetime.now(_dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return DevCertificate(cert, key)
