"""Renderings of one ``x509.Certificate`` in the exact formats of the ``cf.tls_client_auth.*``
fields (https://developers.cloudflare.com/ssl/client-certificates/client-certificate-variables/).

Owns: distinguished-name renderings (RFC 2253 with OpenSSL's escaping, OpenSSL's legacy
"oneline"), serial numbers, key identifiers, fingerprints and validity dates.

Invariants:

* Pure functions of their input; nothing here verifies anything or does I/O.
* Every function returns ``str`` (ASCII except for :func:`dn_utf8`). The DN functions
  take ``x509.Name`` objects (callers holding raw DER use :mod:`edgerules.tls.dn`
  directly, as the validator does); missing extensions give ``""``.
* The formats are OpenSSL's, checked by the tests against Debian's ``openssl x509``:

  ============================  =============================================
  :func:`dn_rfc2253`            ``openssl x509 -nameopt RFC2253``
  :func:`dn_utf8`               ``openssl x509 -nameopt RFC2253,-esc_msb``
  :func:`dn_legacy`             ``X509_NAME_oneline`` (``/C=US/.../CN=x``)
  :func:`serial_hex`            ``openssl x509 -serial`` (without ``serial=``)
  :func:`fingerprint`           ``openssl x509 -fingerprint`` lower-cased, no colons
  :func:`openssl_time`          ``openssl x509 -startdate`` / ``-enddate``
  ============================  =============================================
"""

from __future__ import annotations

import datetime as _dt

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID

from edgerules.tls import dn
from edgerules.tls.dn import OPENSSL_SHORT_NAMES
from edgerules.tls.rawcert import parse_name

__all__ = [
    "OPENSSL_SHORT_NAMES",
    "aki_keyid",
    "dn_legacy",
    "dn_rfc2253",
    "dn_utf8",
    "fingerprint",
    "openssl_time",
    "serial_hex",
    "ski_bytes",
    "ski_hex",
]

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _entries(name: x509.Name) -> tuple:  # type: ignore[type-arg]
    return parse_name(name.public_bytes(Encoding.DER))


def dn_rfc2253(name: x509.Name) -> str:
    """``openssl x509 -nameopt RFC2253``: most specific RDN first, ``,`` between RDNs,
    ``+`` inside multi-valued RDNs, RFC 2253 specials escaped with ``\\``, control and
    non-ASCII bytes as ``\\XX`` (UTF-8 bytes, uppercase hex). See :mod:`edgerules.tls.dn`."""
    return dn.rfc2253(_entries(name))


def dn_utf8(name: x509.Name) -> str:
    """``cert_*_dn`` (its difference from ``_rfc2253`` is unspecified by Cloudflare; our
    choice): the RFC 2253 rendering with non-ASCII characters kept as UTF-8
    instead of ``\\XX`` escapes (``openssl x509 -nameopt RFC2253,-esc_msb``). Identical to
    :func:`dn_rfc2253` for ASCII names, which is all the documentation shows."""
    return dn.rfc2253(_entries(name), escape_msb=False)


def dn_legacy(name: x509.Name) -> str:
    """OpenSSL 3's ``X509_NAME_oneline`` (what ``openssl x509 -nameopt compat`` prints).
    See :mod:`edgerules.tls.dn`."""
    return dn.legacy(_entries(name))


def serial_hex(serial: int) -> str:
    """Uppercase hex (padding unspecified by Cloudflare; our choice) of the serial's magnitude, zero-padded to an even number of
    digits, no sign byte (``openssl x509 -serial`` prints the same for positive serials;
    zero is ``00``). A negative serial (invalid per RFC 5280) gets a leading ``-`` like
    OpenSSL's ``i2a_ASN1_INTEGER``."""
    sign = "-" if serial < 0 else ""
    digits = f"{abs(serial):X}"
    if len(digits) % 2:
        digits = "0" + digits
    return sign + digits


def fingerprint(digest: bytes) -> str:
    """Lowercase hex without separators."""
    return digest.hex()


def openssl_time(when: _dt.datetime) -> str:
    """OpenSSL's ``ASN1_TIME_print``: ``Mon DD HH:MM:SS YYYY GMT`` with the day padded by
    a space (``May  5 ...``), English month names independent of the locale."""
    return (
        f"{_MONTHS[when.month - 1]} {when.day:2d} "
        f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} {when.year} GMT"
    )


def _extension(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> x509.ExtensionType | None:
    try:
        return cert.extensions.get_extension_for_oid(oid).value
    except Exception:  # absent, duplicated or malformed extensions: no value
        return None


def ski_hex(cert: x509.Certificate) -> str:
    """The Subject Key Identifier extension's key identifier, uppercase hex; ``""`` when
    the certificate has none (it is not derived from the key)."""
    ext = _extension(cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    if isinstance(ext, x509.SubjectKeyIdentifier):
        return ext.key_identifier.hex().upper()
    return ""


def aki_keyid(cert: x509.Certificate) -> bytes | None:
    """The keyIdentifier of the Authority Key Identifier extension, if any."""
    ext = _extension(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    if isinstance(ext, x509.AuthorityKeyIdentifier):
        return ext.key_identifier
    return None


def ski_bytes(cert: x509.Certificate) -> bytes | None:
    ext = _extension(cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    if isinstance(ext, x509.SubjectKeyIdentifier):
        return ext.key_identifier
    return None
