"""Read the API record fields of client certificates and uploaded CAs out of an X.509
certificate.

Owns: turning stored PEM back into certificates (:func:`load_certificate`) and
certificates into the store's records (:func:`managed_ca_record`,
:func:`client_certificate_record`, :func:`uploaded_ca_record`), so the store never reads
X.509 itself. Pure functions over ``cryptography`` objects; no I/O. Formats (Cloudflare's API record):
decimal serial, lower-case hex SKI and SHA-256 fingerprint, Cloudflare-style signature
names (``SHA256WithRSA``, ``ECDSAWithSHA256``), RFC 3339 UTC timestamps with a ``Z``.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from edgerules.pki.errors import PKIError
from edgerules.pki.records import ClientCertificate, ManagedCA, UploadedCA

# Cloudflare's names for the signature algorithms it accepts for BYOCA (https://developers.cloudflare.com/ssl/client-certificates/byo-ca/); the
# same names label issued certificates' ``signature``.
SIGNATURE_NAMES: dict[x509.ObjectIdentifier, str] = {
    SignatureAlgorithmOID.RSA_WITH_SHA1: "SHA1WithRSA",
    SignatureAlgorithmOID.RSA_WITH_SHA256: "SHA256WithRSA",
    SignatureAlgorithmOID.RSA_WITH_SHA384: "SHA384WithRSA",
    SignatureAlgorithmOID.RSA_WITH_SHA512: "SHA512WithRSA",
    SignatureAlgorithmOID.ECDSA_WITH_SHA1: "ECDSAWithSHA1",
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "ECDSAWithSHA256",
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: "ECDSAWithSHA384",
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: "ECDSAWithSHA512",
}


def signature_name(cert: x509.Certificate | x509.CertificateSigningRequest) -> str:
    """Cloudflare's name for the signature algorithm, or the OID's own name if unknown."""
    oid = cert.signature_algorithm_oid
    name = SIGNATURE_NAMES.get(oid)
    if name is not None:
        return name
    return getattr(oid, "_name", None) or oid.dotted_string


def rfc3339(when: datetime) -> str:
    """``2030-09-26T02:41:00Z`` (UTC, second precision)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def fingerprint_sha256(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def public_key_der(cert: x509.Certificate) -> bytes:
    """The certificate's SubjectPublicKeyInfo (DER): what identifies the signing key."""
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def ski_hex(cert: x509.Certificate) -> str:
    """The Subject Key Identifier in lower-case hex, or ``""`` when absent."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        return ""
    return ext.value.digest.hex()


def name_attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    """The first value of attribute ``oid`` in ``name`` (``""`` when absent)."""
    values = name.get_attributes_for_oid(oid)
    if not values:
        return ""
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def subject_fields(name: x509.Name) -> dict[str, str]:
    """The six subject fields of the client-certificate API record."""
    return {
        "common_name": name_attribute(name, NameOID.COMMON_NAME),
        "organization": name_attribute(name, NameOID.ORGANIZATION_NAME),
        "organizational_unit": name_attribute(name, NameOID.ORGANIZATIONAL_UNIT_NAME),
        "country": name_attribute(name, NameOID.COUNTRY_NAME),
        "state": name_attribute(name, NameOID.STATE_OR_PROVINCE_NAME),
        "location": name_attribute(name, NameOID.LOCALITY_NAME),
    }


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def csr_pem(csr: x509.CertificateSigningRequest) -> str:
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def load_certificate(pem: str | bytes) -> x509.Certificate:
    """One PEM certificate (as the store keeps them); :class:`PKIError` if undecodable."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise PKIError(f"malformed stored certificate: {exc}") from None


def _common_fields(cert: x509.Certificate, subject: bool = True) -> dict[str, str]:
    """The fields every record (managed CA, client certificate, uploaded CA) shows."""
    return {
        "subject": cert.subject.rfc4514_string() if subject else "",
        "serial_number": str(cert.serial_number),
        "ski": ski_hex(cert),
        "fingerprint_sha256": fingerprint_sha256(cert),
        "signature": signature_name(cert),
        "expires_on": rfc3339(cert.not_valid_after_utc),
    }


def managed_ca_record(
    cert: x509.Certificate,
    *,
    ca_id: str,
    account_id: str,
    name: str,
    pem: str,
    key_type: str,
    key_encrypted: bool,
) -> ManagedCA:
    return ManagedCA(
        id=ca_id,
        account_id=account_id,
        name=name,
        certificate=pem,
        key_type=key_type,
        issued_on=rfc3339(cert.not_valid_before_utc),
        key_encrypted=key_encrypted,
        **_common_fields(cert),
    )


def client_certificate_record(
    cert_id: str, cert: x509.Certificate, csr_pem: str, ca: ManagedCA, days: int, status: str
) -> ClientCertificate:
    return ClientCertificate(
        id=cert_id,
        certificate=cert_pem(cert),
        csr=csr_pem,
        ca_id=ca.id,
        ca_name=ca.name,
        **subject_fields(cert.subject),
        issued_on=rfc3339(cert.not_valid_before_utc),
        validity_days=days,
        status=status,
        **_common_fields(cert),
    )


def uploaded_ca_record(
    cert: x509.Certificate,
    *,
    ca_id: str,
    name: str | None,
    uploaded_on: str,
    der: bytes | None = None,
    names: tuple[str, str] | None = None,
    serial: int | None = None,
    settings: tuple[str, str, str] = ("compatible", "", "open"),
) -> UploadedCA:
    """The record of an uploaded CA. ``der``/``names``/``serial`` override what is read
    from ``cert`` when the caller decoded the certificate from its DER itself (names
    cryptography cannot decode, a serial it refuses: ``cert`` is then only a parsing
    aid); ``settings`` is ``(profile, allow, crl_stale)``."""
    fields = _common_fields(cert, names is None)
    if der is not None:
        fields["fingerprint_sha256"] = hashlib.sha256(der).hexdigest()
        pem = pem_from_der(der)
    else:
        pem = cert_pem(cert)
    if serial is not None:
        fields["serial_number"] = str(serial)
    if names is not None:
        fields["subject"] = names[0]
    profile, allow, crl_stale = settings
    return UploadedCA(
        id=ca_id,
        name=name,
        certificates=pem,
        issuer=names[1] if names is not None else cert.issuer.rfc4514_string(),
        uploaded_on=uploaded_on,
        profile=profile,
        allow=allow,
        crl_stale=crl_stale,
        **fields,
    )


def pem_from_der(der: bytes) -> str:
    """PEM armour around certificate DER (done by hand: the DER may hold names
    cryptography cannot decode)."""
    body = base64.b64encode(der).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"
