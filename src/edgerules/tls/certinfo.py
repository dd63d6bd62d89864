"""Renderings of one ``x509.Certificate`` in the exact formats of the ``cf.tls_client_auth.*``
fields (spec fields.md §1).

Owns: distinguished-name renderings (RFC 2253 with OpenSSL's escaping, OpenSSL's legacy
"oneline"), serial numbers, key identifiers, fingerprints and validity dates.

Invariants:

* Pure functions of their input; nothing here verifies anything or does I/O.
* Every function returns ``str`` (ASCII except for :func:`dn_utf8`) and never raises for a
  certificate that ``cryptography`` could load: unusual content (unknown attribute OIDs,
  undecodable strings, missing extensions) degrades to OpenSSL's own fallback rendering or
  to ``""``.
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
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtensionOID

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

# OpenSSL's short names (OBJ_nid2sn) for the attribute types met in certificate DNs.
# An OID missing here is rendered the way OpenSSL renders an OID it does not know
# (dotted form, and in RFC 2253 the value dumped as ``#`` + hex DER); OpenSSL knows more
# OIDs than this table, so only exotic attributes can differ from its output.
OPENSSL_SHORT_NAMES: dict[str, str] = {
    "2.5.4.3": "CN",
    "2.5.4.4": "SN",
    "2.5.4.5": "serialNumber",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.9": "street",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.12": "title",
    "2.5.4.13": "description",
    "2.5.4.15": "businessCategory",
    "2.5.4.16": "postalAddress",
    "2.5.4.17": "postalCode",
    "2.5.4.18": "postOfficeBox",
    "2.5.4.20": "telephoneNumber",
    "2.5.4.41": "name",
    "2.5.4.42": "GN",
    "2.5.4.43": "initials",
    "2.5.4.44": "generationQualifier",
    "2.5.4.45": "x500UniqueIdentifier",
    "2.5.4.46": "dnQualifier",
    "2.5.4.65": "pseudonym",
    "2.5.4.97": "organizationIdentifier",
    "1.2.840.113549.1.9.1": "emailAddress",
    "1.2.840.113549.1.9.2": "unstructuredName",
    "0.9.2342.19200300.100.1.1": "UID",
    "0.9.2342.19200300.100.1.25": "DC",
    "1.3.6.1.4.1.311.60.2.1.1": "jurisdictionL",
    "1.3.6.1.4.1.311.60.2.1.2": "jurisdictionST",
    "1.3.6.1.4.1.311.60.2.1.3": "jurisdictionC",
}

# ASN.1 string tags and how their content octets encode characters.
_TAG_CODEC: dict[int, str] = {
    _ASN1Type.UTF8String.value: "utf-8",
    _ASN1Type.NumericString.value: "latin-1",
    _ASN1Type.PrintableString.value: "latin-1",
    _ASN1Type.T61String.value: "latin-1",
    _ASN1Type.IA5String.value: "latin-1",
    _ASN1Type.UTCTime.value: "latin-1",
    _ASN1Type.GeneralizedTime.value: "latin-1",
    _ASN1Type.VisibleString.value: "latin-1",
    _ASN1Type.UniversalString.value: "utf-32-be",
    _ASN1Type.BMPString.value: "utf-16-be",
}
_GENERAL_STRING = 27

# RFC 2253 special characters OpenSSL escapes with a backslash anywhere in a value.
_RFC2253_SPECIAL = frozenset(b',+"\\<>;')
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _attr_type_tag(attr: x509.NameAttribute) -> int:
    t = getattr(attr, "_type", None)
    return int(getattr(t, "value", t if isinstance(t, int) else _ASN1Type.UTF8String.value))


def _content_octets(attr: x509.NameAttribute) -> bytes:
    """The attribute value's content octets as they were encoded in the certificate
    (cryptography hands out the decoded ``str``; the encodings are lossless)."""
    value = attr.value
    if isinstance(value, bytes):  # X500UniqueIdentifier (BIT STRING) and similar
        return value
    codec = _TAG_CODEC.get(_attr_type_tag(attr), "utf-8")
    try:
        return value.encode(codec)
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _attr_der(attr: x509.NameAttribute) -> bytes:
    content = _content_octets(attr)
    return bytes([_attr_type_tag(attr)]) + _der_length(len(content)) + content


def _escape_2253(value: str, *, escape_msb: bool) -> str:
    """OpenSSL's ``do_buf``/``do_esc_char`` with ASN1_STRFLGS_RFC2253 (UTF-8 conversion;
    ESC_MSB optional). Works on the UTF-8 bytes, as OpenSSL does."""
    data = value.encode("utf-8", "surrogatepass")
    out: list[str] = []
    last = len(data) - 1
    for i, b in enumerate(data):
        if b > 0x7F:
            out.append(f"\\{b:02X}" if escape_msb else chr(b))  # re-joined as bytes below
            continue
        # OpenSSL quirk kept on purpose: the "last" flag replaces the "first" flag, so a
        # one-character value "#" is not escaped while " " is.
        first = i == 0 and i != last
        is_last = i == last
        if b in _RFC2253_SPECIAL or (b == 0x20 and (first or is_last)) or (b == 0x23 and first):
            out.append("\\" + chr(b))
        elif b < 0x20 or b == 0x7F:
            out.append(f"\\{b:02X}")
        else:
            out.append(chr(b))
    text = "".join(out)
    if escape_msb:
        return text
    # Unescaped high bytes were appended as latin-1 code points: turn them back into the
    # original UTF-8 characters.
    return text.encode("latin-1").decode("utf-8", "replace")


def _ordered_entries(name: x509.Name) -> list[tuple[int, x509.NameAttribute]]:
    entries: list[tuple[int, x509.NameAttribute]] = []
    for set_index, rdn in enumerate(name.rdns):
        entries.extend((set_index, attr) for attr in rdn)
    return entries


def _dn_2253(name: x509.Name, *, escape_msb: bool) -> str:
    parts: list[str] = []
    prev_set = -1
    # XN_FLAG_DN_REV: the entries in reverse order (most specific first), multi-valued
    # RDN members joined with "+" (XN_FLAG_SEP_COMMA_PLUS).
    for set_index, attr in reversed(_ordered_entries(name)):
        if prev_set != -1:
            parts.append("+" if prev_set == set_index else ",")
        prev_set = set_index
        oid = attr.oid.dotted_string
        short = OPENSSL_SHORT_NAMES.get(oid)
        if short is None:
            # XN_FLAG_DUMP_UNKNOWN_FIELDS: unknown type -> OID and "#" + hex of the DER.
            parts.append(f"{oid}=#{_attr_der(attr).hex().upper()}")
            continue
        value = attr.value
        if isinstance(value, bytes):
            parts.append(f"{short}=#{_attr_der(attr).hex().upper()}")
            continue
        parts.append(f"{short}={_escape_2253(value, escape_msb=escape_msb)}")
    return "".join(parts)


def dn_rfc2253(name: x509.Name) -> str:
    """``openssl x509 -nameopt RFC2253``: most specific RDN first, ``,`` between RDNs,
    ``+`` inside multi-valued RDNs, RFC 2253 specials escaped with ``\\``, control and
    non-ASCII bytes as ``\\XX`` (UTF-8 bytes, uppercase hex)."""
    return _dn_2253(name, escape_msb=True)


def dn_utf8(name: x509.Name) -> str:
    """[U] ``cert_*_dn``: the RFC 2253 rendering with non-ASCII characters kept as UTF-8
    instead of ``\\XX`` escapes (``openssl x509 -nameopt RFC2253,-esc_msb``). Identical to
    :func:`dn_rfc2253` for ASCII names, which is all the documentation shows."""
    return _dn_2253(name, escape_msb=False)


def dn_legacy(name: x509.Name) -> str:
    """OpenSSL 3's ``X509_NAME_oneline`` (what ``openssl x509 -nameopt compat`` prints):
    certificate (ASN.1) order, each RDN prefixed with ``/``, members of a multi-valued
    RDN joined with ``+``; no RFC 2253 escaping (commas stay raw) except ``\\/`` and
    ``\\+`` inside values (so the separators stay unambiguous); bytes of the raw content
    octets outside printable ASCII as ``\\xXX`` (a UTF-8 ``é`` is ``\\xC3\\xA9``, a
    BMPString ``é`` is ``\\x00\\xE9``)."""
    out: list[str] = []
    prev_set = -1
    for set_index, attr in _ordered_entries(name):
        oid = attr.oid.dotted_string
        out.append("+" if set_index == prev_set else "/")
        prev_set = set_index
        out.append(OPENSSL_SHORT_NAMES.get(oid, oid))
        out.append("=")
        data = _content_octets(attr)
        keep = (True, True, True, True)
        if _attr_type_tag(attr) == _GENERAL_STRING and len(data) % 4 == 0:
            # OpenSSL's UCS-4 heuristic (applied to GeneralString, a historic quirk).
            nz = [any(data[j] for j in range(k, len(data), 4)) for k in range(4)]
            if not (nz[0] or nz[1] or nz[2]):
                keep = (False, False, False, True)
        for j, b in enumerate(data):
            if not keep[j & 3]:
                continue
            if b in (0x2F, 0x2B):  # "/" and "+"
                out.append("\\" + chr(b))
            elif 0x20 <= b <= 0x7E:
                out.append(chr(b))
            else:
                out.append(f"\\x{b:02X}")
    return "".join(out)


def serial_hex(serial: int) -> str:
    """[U] Uppercase hex of the serial's magnitude, zero-padded to an even number of
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
