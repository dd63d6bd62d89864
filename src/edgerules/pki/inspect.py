"""Read the record fields of spec mtls.md §5.3/§6 out of an X.509 certificate.

Pure functions over ``cryptography`` objects; no I/O. Formats (spec §5.3): decimal serial,
lower-case hex SKI and SHA-256 fingerprint, Cloudflare-style signature names
(``SHA256WithRSA``, ``ECDSAWithSHA256``), RFC 3339 UTC timestamps with a ``Z``.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

# Cloudflare's names for the signature algorithms it accepts for BYOCA (spec §6); the
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
    """The six subject fields of the client-certificate record (spec §5.3)."""
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
