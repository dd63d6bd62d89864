"""The managed CA and client-certificate issuing
(https://developers.cloudflare.com/ssl/client-certificates/create-a-client-certificate/).

Pure functions: they build certificates from keys, names and an explicit ``now``; the
store persists the results. Production defaults, not a test helper's (no far-future expiry,
no code-signing EKU on every leaf, no unencrypted legacy key format):

* managed CA: ECDSA P-256 by default (RSA 2048 optional), ``CA:TRUE, pathlen:0``
  (critical), key usage ``keyCertSign, cRLSign`` (critical), SKI (and AKI = SKI), 25 years,
  DN ``CN=Managed CA <random id>,OU=edgerules,O=edgerules`` — the shape of Cloudflare's
  ``CN=Managed CA <id>,OU=www.cloudflare.com,O=Cloudflare\\, Inc.,...`` with our names;
* client certificates: ``CA:FALSE`` (critical), key usage ``digitalSignature`` (critical),
  extended key usage ``clientAuth`` only, SKI and AKI, no SAN (managed-CA client
  certificates carry none), a positive serial of at most 20 bytes: the store's sequence
  number then 96 random bits (:func:`sequenced_serial`), ``notBefore`` = issue time to the second, ``notAfter`` = ``notBefore`` +
  ``validity_days``.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgerules.pki import inspect, keys
from edgerules.pki.errors import PKIError

DEFAULT_VALIDITY_DAYS = 3650  # Cloudflare's documented default: 10 years
MIN_VALIDITY_DAYS = 1
MAX_VALIDITY_DAYS = 5475  # 15 years, the dashboard's longest choice; configurable per store
CA_VALIDITY_DAYS = 9131  # 25 years: outlives a 15-year certificate issued in year 10
CA_ORGANIZATION = "edgerules"
# Cloudflare documents that keys it generates get exactly this subject ("CN=Cloudflare,C=US").
DEFAULT_CLIENT_SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Cloudflare"),
    ]
)
# Accepted public keys in CSRs: what common TLS stacks accept for client certificates.
_CSR_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
_MIN_RSA_BITS = 2048
# Every signature (CA, client certificates, generated CSRs): SHA-256 with the CA's key
# type, reported as ECDSAWithSHA256 / SHA256WithRSA (the API record's "signature").
_SIGNATURE_HASH = hashes.SHA256()


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def random_serial() -> int:
    """A random positive serial that fits in 20 DER bytes (RFC 5280 §4.1.2.2)."""
    while True:
        serial = secrets.randbits(159)
        if serial:
            return serial


SEQUENCE_SHIFT = 96  # random bits below the store's sequence number in a serial


def sequenced_serial(sequence: int) -> int:
    """``sequence`` (the store's per-account counter, unique and growing across every
    writer) followed by 96 random bits: unique and monotonic in issue order, still
    unpredictable (CA/B Forum asks for >= 64 random bits), at most 159 bits while the
    sequence is below 2**63 (RFC 5280: 20 octets)."""
    if not 0 < sequence < 2**63:
        raise PKIError(f"serial sequence out of range: {sequence}")
    return (sequence << SEQUENCE_SHIFT) | secrets.randbits(SEQUENCE_SHIFT)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """CA: ``keyCertSign, cRLSign``; client certificate: ``digitalSignature``."""
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def managed_ca_name(account_id: str) -> str:
    """The CA's display name (Cloudflare's: "Cloudflare Managed CA for account <id>")."""
    return f"edgerules Managed CA for account {account_id}"


def create_managed_ca(
    key: CertificateIssuerPrivateKeyTypes,
    *,
    now: datetime | None = None,
    organization: str = CA_ORGANIZATION,
    validity_days: int = CA_VALIDITY_DAYS,
) -> x509.Certificate:
    """Build the self-signed managed CA certificate for ``key``."""
    now = (now or utcnow()).replace(microsecond=0)
    # A random, unguessable CN suffix, like Cloudflare's "Managed CA abcdefghijklmnopq123456789".
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "edgerules"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Managed CA {secrets.token_hex(13)}"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(random_serial())
        # An hour of slack for clocks behind ours; the CA's own window is not user-visible.
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=validity_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    )
    return builder.sign(key, _SIGNATURE_HASH)


# Our choice (issue 10 point 3; Cloudflare says nothing): a CSR whose subject cryptography cannot decode is refused with the
# reason (the subject is copied into the certificate through cryptography's builder).
_UNDECODABLE_SUBJECT = (
    "the CSR's subject cannot be decoded: it holds a string whose characters do not fit its "
    "ASN.1 type (a T61String or IA5String with non-ASCII bytes, a PrintableString outside "
    "its alphabet, invalid UTF-8): re-create the CSR with UTF8String names"
)


def load_csr(pem: str | bytes) -> x509.CertificateSigningRequest:
    """Parse and check a PEM CSR: one request, a valid self-signature, a usable key."""
    data = pem.encode("utf-8") if isinstance(pem, str) else pem
    if (
        b"-----BEGIN CERTIFICATE REQUEST-----" not in data
        and b"-----BEGIN NEW CERTIFICATE REQUEST-----" not in data
    ):
        raise PKIError("malformed CSR: expected a PEM block '-----BEGIN CERTIFICATE REQUEST-----'")
    if data.count(b"-----BEGIN ") > 1:
        raise PKIError("malformed CSR: the field must contain exactly one PEM block")
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError as exc:
        if "AttributeValue" in str(exc):
            raise PKIError(_UNDECODABLE_SUBJECT) from None
        raise PKIError(f"malformed CSR: {exc}") from None
    try:
        csr.subject  # noqa: B018 (decoded lazily: a bad string would surface much later)
    except ValueError:
        raise PKIError(_UNDECODABLE_SUBJECT) from None
    try:
        valid = csr.is_signature_valid
    except (UnsupportedAlgorithm, ValueError) as exc:
        raise PKIError(f"unsupported CSR signature: {exc}") from None
    if not valid:
        raise PKIError("CSR signature is invalid (the request was not signed by its key)")
    try:
        public_key = csr.public_key()
    except (UnsupportedAlgorithm, ValueError) as exc:
        raise PKIError(f"unsupported CSR public key: {exc}") from None
    check_client_public_key(public_key)
    if len(csr.subject) == 0:
        raise PKIError("CSR subject is empty: the subject labels the certificate")
    return csr


def check_client_public_key(public_key: CertificatePublicKeyTypes) -> None:
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < _MIN_RSA_BITS:
            raise PKIError(
                f"CSR key too small: RSA {public_key.key_size} bits (at least {_MIN_RSA_BITS})"
            )
        return
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, _CSR_CURVES):
            raise PKIError(
                f"unsupported CSR key curve {public_key.curve.name} (P-256, P-384 or P-521)"
            )
        return
    raise PKIError(f"unsupported CSR key type {type(public_key).__name__} (RSA >= 2048 or ECDSA)")


def build_csr(
    key: CertificateIssuerPrivateKeyTypes, subject: x509.Name
) -> x509.CertificateSigningRequest:
    """The CSR edgerules writes for a key it generated (kept in the record's ``csr``)."""
    return x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, _SIGNATURE_HASH)


def parse_subject(text: str) -> x509.Name:
    """An RFC 4514 subject such as ``CN=device-42,O=Acme,C=US``."""
    if not isinstance(text, str):
        raise PKIError(f"subject must be a string, got {type(text).__name__}")
    try:
        name = x509.Name.from_rfc4514_string(text)
    except ValueError as exc:  # binascii.Error (bad #hex value) is a ValueError too
        # cryptography's parser raises a bare ValueError (an empty message) for most
        # mistakes: find the mistake ourselves so the user learns what is wrong.
        why = _subject_mistake(text) or str(exc).strip() or _SUBJECT_SYNTAX
        raise PKIError(f"invalid subject {text!r}: {why}") from None
    if len(name) == 0:
        raise PKIError("invalid subject: empty")
    return name


# The attribute types cryptography's RFC 4514 parser knows by name (case-sensitive).
_SUBJECT_TYPES = ("CN", "O", "OU", "C", "ST", "L", "STREET", "DC", "UID")
_SUBJECT_SYNTAX = (
    "expected TYPE=value pairs separated by commas, e.g. CN=device-42,O=Acme,C=US"
)
_SUBJECT_LENGTHS = {"CN": (1, 64), "2.5.4.3": (1, 64), "C": (2, 2), "2.5.4.6": (2, 2)}
_OID_TEXT = re.compile(r"(0|[1-9]\d*)(\.(0|[1-9]\d*))+")
_HEX_VALUE = re.compile(r"#([\da-fA-F]{2})+")
# Characters RFC 4514 requires to be escaped with a backslash inside a value.
_MUST_ESCAPE = set('"+,;<>\\')
_ESCAPABLE = set('\\ #="+,;<>')


def _split_unescaped(text: str, separators: str) -> list[str] | None:
    """``text`` split at unescaped ``separators``; None for a dangling backslash."""
    parts, current, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 >= len(text):
                return None
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch in separators:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def _unescaped_length(value: str) -> int:
    """Characters in an RFC 4514 value once ``\\X`` and ``\\hh`` escapes are undone."""
    raw = re.sub(r"\\([\da-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), value)
    return len(re.sub(r"\\(.)", r"\1", raw))


def _subject_mistake(text: str) -> str | None:
    """What is wrong with the RFC 4514 subject ``text`` (None if nothing is found)."""
    if text.endswith("\\") and _split_unescaped(text, ",+") is None:
        return "it ends with a lone backslash (escape a literal backslash as \\\\)"
    parts = _split_unescaped(text, ",+")
    if parts is None:  # pragma: no cover - handled above
        return None
    for n, part in enumerate(parts, 1):
        if not part.strip():
            return (
                f"attribute #{n} is empty (two separators in a row, or one at the start or "
                f"end?); {_SUBJECT_SYNTAX}"
            )
        pieces = _split_unescaped(part, "=")
        if pieces is None or len(pieces) < 2:
            return f"{part!r} is not a TYPE=value pair; {_SUBJECT_SYNTAX}"
        attr_type, value = pieces[0], part[len(pieces[0]) + 1 :]
        if not attr_type:
            return f"attribute #{n} ({part!r}) has an empty type before '='; {_SUBJECT_SYNTAX}"
        if attr_type != attr_type.strip():
            return (
                f"attribute type {attr_type!r} has spaces around it "
                f"(write {attr_type.strip()}=...)"
            )
        if not _OID_TEXT.fullmatch(attr_type) and attr_type not in _SUBJECT_TYPES:
            hint = ""
            if attr_type.upper() in _SUBJECT_TYPES:
                hint = f" (attribute types are case-sensitive: {attr_type.upper()})"
            return (
                f"unknown attribute type {attr_type!r}{hint}; known types: "
                f"{', '.join(_SUBJECT_TYPES)}, or a dotted OID such as 2.5.4.3"
            )
        if value.startswith("#"):
            if not _HEX_VALUE.fullmatch(value):
                return (
                    f"{attr_type} value {value!r} is not valid hex "
                    "(#hh...: an even number of hex digits)"
                )
            continue
        i = 0
        while i < len(value):
            ch = value[i]
            if ch == "\\":
                pair = value[i + 1 : i + 3]
                if value[i + 1 : i + 2] in _ESCAPABLE or re.fullmatch(r"[\da-fA-F]{2}", pair):
                    i += 2
                    continue
                return (
                    f"{attr_type} value {value!r} has an invalid escape {value[i : i + 2]!r} "
                    "(a backslash escapes one of \\ , + \" ; < > = # or space, or is "
                    "followed by two hex digits)"
                )
            if ch == ";":
                return (
                    f"{attr_type} value {value!r} holds ';': separate attributes with "
                    "commas, or escape it as \\;"
                )
            if ch in _MUST_ESCAPE:
                return f"{attr_type} value {value!r} holds {ch!r}: escape it as \\{ch}"
            if ch == "\0":
                return f"{attr_type} value {value!r} holds a NUL character"
            i += 1
        if value[:1] == " " or (value[-1:] == " " and value[-2:-1] != "\\"):
            return (
                f"{attr_type} value {value!r} has a leading or trailing space "
                "(escape it as '\\ ', or remove it)"
            )
        limits = _SUBJECT_LENGTHS.get(attr_type)
        length = _unescaped_length(value)
        if limits is not None and not limits[0] <= length <= limits[1]:
            want = f"{limits[0]}" if limits[0] == limits[1] else f"{limits[0]} to {limits[1]}"
            return f"{attr_type} must be {want} characters long, got {length}"
    return None


def check_validity_days(days: object, maximum: int = MAX_VALIDITY_DAYS) -> int:
    if isinstance(days, bool) or not isinstance(days, int):
        raise PKIError(f"validity_days must be an integer, got {days!r}")
    if not MIN_VALIDITY_DAYS <= days <= maximum:
        raise PKIError(
            f"validity_days must be between {MIN_VALIDITY_DAYS} and {maximum}, got {days}"
        )
    return days


def issue_client_certificate(
    ca_cert: x509.Certificate,
    ca_key: CertificateIssuerPrivateKeyTypes,
    public_key: CertificatePublicKeyTypes,
    subject: x509.Name,
    *,
    validity_days: int,
    serial: int,
    now: datetime | None = None,
) -> x509.Certificate:
    """Sign a client certificate for ``public_key`` with the managed CA."""
    now = (now or utcnow()).replace(microsecond=0)
    not_after = now + timedelta(days=validity_days)
    if not_after > ca_cert.not_valid_after_utc:
        raise PKIError(
            f"validity_days={validity_days} would outlive the managed CA "
            f"(expires {ca_cert.not_valid_after_utc:%Y-%m-%d})"
        )
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
    )
    return builder.sign(ca_key, _SIGNATURE_HASH)


def with_common_name(name: x509.Name, common_name: str) -> x509.Name:
    """``name`` with its CN replaced by (or extended with) ``common_name``."""
    if not common_name or len(common_name) > 64:
        raise PKIError("common name must be 1 to 64 characters")
    attrs = [a for a in name if a.oid != NameOID.COMMON_NAME]
    try:
        return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    except ValueError as exc:
        raise PKIError(f"invalid common name {common_name!r}: {exc}") from None


@dataclass(frozen=True)
class ClientRequest:
    """What a client certificate is issued for: a checked CSR, or a generated key."""

    csr_pem: str  # the CSR as submitted, or the one built for the generated key
    public_key: CertificatePublicKeyTypes
    subject: x509.Name
    private_key_pem: str | None  # the generated key (PKCS#8 PEM), None with a CSR


def client_request(
    *,
    csr: str | bytes | None = None,
    key_type: str = "ecdsa",
    subject: str | x509.Name | None = None,
    common_name: str | None = None,
) -> ClientRequest:
    """Check ``csr``, or generate a ``key_type`` key for ``subject`` (default
    ``CN=Cloudflare,C=US``, as Cloudflare's) with its CN optionally set to ``common_name``."""
    if csr is not None:
        if subject is not None or common_name is not None:
            raise PKIError(
                "a subject or common name cannot be combined with a CSR: the CSR's subject "
                "becomes the certificate's"
            )
        request = load_csr(csr)
        csr_pem = csr.decode("utf-8", "replace") if isinstance(csr, bytes) else csr
        return ClientRequest(csr_pem, request.public_key(), request.subject, None)
    if subject is None:
        name = DEFAULT_CLIENT_SUBJECT
    elif isinstance(subject, x509.Name):
        name = subject
    else:
        name = parse_subject(subject)
    if common_name is not None:
        name = with_common_name(name, common_name)
    key = keys.generate_key(key_type)
    return ClientRequest(
        inspect.csr_pem(build_csr(key, name)), key.public_key(), name, keys.key_to_pem(key)
    )
