"""Test PKI for the proxy tests: a trusted CA (with an intermediate), a foreign CA, and
client certificates in every handshake state Cloudflare documents (none, untrusted, expired,
self-signed, valid, revoked: https://developers.cloudflare.com/ssl/client-certificates/troubleshooting/)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime.now(dt.UTC)


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_path: Path
    key_path: Path
    chain: tuple[x509.Certificate, ...] = ()  # intermediates sent along (leaf excluded)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def serial_hex(self) -> str:
        text = format(self.cert.serial_number, "X")
        return text if len(text) % 2 == 0 else "0" + text  # even length, like the validator


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.COUNTRY_NAME, "US")])


def _build(subject, issuer_name, pub, signer, *, ca, not_before, not_after, issuer_key_pub=None):
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
    )
    if issuer_key_pub is not None:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key_pub), critical=False)
    if ca:
        b = b.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return b.sign(signer, hashes.SHA256())


class ProxyTestPKI:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = _build(
            _name("Test Managed CA"), _name("Test Managed CA"), self.ca_key.public_key(), self.ca_key,
            ca=True, not_before=NOW - dt.timedelta(days=10), not_after=NOW + dt.timedelta(days=3650),
        )
        self.foreign_key = ec.generate_private_key(ec.SECP256R1())
        self.foreign_ca = _build(
            _name("Foreign CA"), _name("Foreign CA"), self.foreign_key.public_key(), self.foreign_key,
            ca=True, not_before=NOW - dt.timedelta(days=10), not_after=NOW + dt.timedelta(days=3650),
        )
        self.inter_key = ec.generate_private_key(ec.SECP256R1())
        self.inter = _build(
            _name("Test Intermediate"), self.ca.subject, self.inter_key.public_key(), self.ca_key,
            ca=True, not_before=NOW - dt.timedelta(days=10), not_after=NOW + dt.timedelta(days=3650),
            issuer_key_pub=self.ca_key.public_key(),
        )
        self.valid = self.issue("valid")
        self.revoked = self.issue("revoked")
        self.expired = self.issue(
            "expired", not_before=NOW - dt.timedelta(days=30), not_after=NOW - dt.timedelta(days=1)
        )
        self.foreign = self.issue("foreign", issuer=(self.foreign_ca, self.foreign_key))
        self.self_signed = self.issue("self-signed", issuer="self")
        self.via_inter = self.issue("via-intermediate", issuer=(self.inter, self.inter_key), chain=(self.inter,))

    def issue(self, label, *, issuer=None, not_before=None, not_after=None, chain=()):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(f"client {label}")
        if issuer == "self":
            issuer_cert_name, signer, issuer_pub = subject, key, None
        else:
            icert, ikey = issuer or (self.ca, self.ca_key)
            issuer_cert_name, signer, issuer_pub = icert.subject, ikey, ikey.public_key()
        cert = _build(
            subject, issuer_cert_name, key.public_key(), signer, ca=False,
            not_before=not_before or NOW - dt.timedelta(days=1),
            not_after=not_after or NOW + dt.timedelta(days=365),
            issuer_key_pub=issuer_pub,
        )
        cert_path = self.dir / f"{label}.crt"
        key_path = self.dir / f"{label}.key"
        pem = cert.public_bytes(serialization.Encoding.PEM) + b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in chain
        )
        cert_path.write_bytes(pem)
        key_path.write_bytes(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        return Issued(cert, key, cert_path, key_path, tuple(chain))
