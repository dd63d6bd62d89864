"""Distinguished names rendered from their DER, byte for byte as OpenSSL renders them.

Owns: the three DN renderings of the ``cf.tls_client_auth.*`` fields and OpenSSL's
canonical name form (used to match an issuer name to a subject, and to decide whether a
name can be decoded at all).

* :func:`rfc2253` — ``X509_NAME_print_ex`` with ``XN_FLAG_RFC2253`` (``openssl x509
  -nameopt RFC2253``), or without ``ASN1_STRFLGS_ESC_MSB`` (``-nameopt RFC2253,-esc_msb``)
  when ``escape_msb`` is false: most specific RDN first, ``+`` inside multi-valued RDNs;
  string contents per type as OpenSSL's ``do_print_ex``: UTF8String byte by byte;
  PrintableString, T61String, IA5String, NumericString, VisibleString and the time types
  one byte per character read as Latin-1 and converted to UTF-8; BMPString UCS-2 and
  UniversalString UCS-4 converted to UTF-8 (characters UTF-8 cannot carry are dropped, as
  ``UTF8_putc`` drops them); any other type, and every attribute whose type OpenSSL does
  not know, as ``#`` + the hex of its DER.
* :func:`legacy` — ``X509_NAME_oneline`` (``/C=US/.../CN=x``): certificate order, the
  content octets as they are, bytes outside printable ASCII as ``\\xXX``, ``/`` and ``+``
  escaped with a backslash.
* :func:`canonical` — OpenSSL's ``x509_name_canon``: text types converted to UTF-8, ASCII
  lower-cased, leading/trailing white space dropped and inner runs collapsed to one space.

Invariants: pure functions; a name is *decodable* exactly when :func:`canonical` succeeds
— the same condition under which OpenSSL's ``d2i_X509`` accepts it (invalid UTF-8 in a
UTF8String, an odd-length BMPString, a surrogate or a code point past U+10FFFF in a
BMPString or UniversalString). Anything else raises :class:`~edgerules.tls.der.DERError`
from :func:`canonical`; the two renderers never fail on a decodable name.
"""

from __future__ import annotations

import re

from edgerules.tls import der
from edgerules.tls.der import DERError
from edgerules.tls.rawcert import NameEntry

__all__ = ["OPENSSL_SHORT_NAMES", "canonical", "legacy", "rfc2253", "short_name"]

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

_UTF8, _NUMERIC, _PRINTABLE, _T61, _IA5 = 12, 18, 19, 20, 22
_UTCTIME, _GENTIME, _VISIBLE, _GENERAL, _UNIVERSAL, _BMP = 23, 24, 26, 27, 28, 30
# OpenSSL's tag2nbyte: bytes per character; 0 = UTF-8 (printed byte by byte).
_WIDTH = {
    _UTF8: 0,
    _NUMERIC: 1,
    _PRINTABLE: 1,
    _T61: 1,
    _IA5: 1,
    _UTCTIME: 1,
    _GENTIME: 1,
    _VISIBLE: 1,
    _UNIVERSAL: 4,
    _BMP: 2,
}
# ASN1_MASK_CANON: the types canonicalised (converted to UTF-8) for name comparison.
_CANON_TYPES = frozenset({_UTF8, _PRINTABLE, _T61, _IA5, _VISIBLE, _UNIVERSAL, _BMP})
_WS = b" \t\n\v\f\r"  # ossl_isspace
_SPACES = re.compile(rb"[ \t\n\v\f\r]+")
_RFC2253_SPECIAL = frozenset(b',+"\\<>;')

_names: dict[bytes, tuple[str, str | None]] = {}


def _oid_names(oid: bytes) -> tuple[str, str | None]:
    """``(dotted, OpenSSL short name or None)``, memoised per OID body."""
    hit = _names.get(oid)
    if hit is None:
        dotted = der.oid_dotted(oid)
        hit = (dotted, OPENSSL_SHORT_NAMES.get(dotted))
        if len(_names) < 4096:  # OIDs come from certificates: bound the memo
            _names[oid] = hit
    return hit


def short_name(oid: bytes) -> str:
    """OpenSSL's short name of an attribute type, else its dotted form."""
    dotted, short = _oid_names(oid)
    return short or dotted


def _codepoints(tag: int, data: bytes) -> list[int]:
    """The characters of a string value for OpenSSL's ``traverse_string`` (canonical
    form): ``DERError`` where OpenSSL's conversion fails."""
    width = _WIDTH.get(tag)
    if width == 0:
        try:
            return [ord(ch) for ch in data.decode("utf-8")]  # refuses surrogates/overlongs
        except UnicodeDecodeError:
            raise DERError("invalid UTF-8 in a UTF8String") from None
    if width == 1:
        return list(data)
    if width == 2:
        if len(data) % 2:
            raise DERError("odd-length BMPString")
        out = [data[i] << 8 | data[i + 1] for i in range(0, len(data), 2)]
    else:
        if len(data) % 4:
            raise DERError("UniversalString length is not a multiple of 4")
        out = [int.from_bytes(data[i : i + 4], "big") for i in range(0, len(data), 4)]
    if any(0xD800 <= c <= 0xDFFF or c > 0x10FFFF for c in out):
        raise DERError("a character UTF-8 cannot carry")
    return out


def check_text(tag: int, data: bytes) -> None:
    """``DERError`` when OpenSSL could not convert this string value to UTF-8."""
    if tag == _UTF8:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise DERError("invalid UTF-8 in a UTF8String") from None
    elif tag in (_BMP, _UNIVERSAL):
        _codepoints(tag, data)


def canonical(entries: tuple[NameEntry, ...]) -> tuple[tuple[tuple[bytes, int, bytes], ...], ...]:
    """OpenSSL's canonical form of a name (equal forms = names that match)."""
    rdns: list[list[tuple[bytes, int, bytes]]] = []
    for index, oid, tag, data, _tlv in entries:
        while len(rdns) <= index:
            rdns.append([])
        if tag in _CANON_TYPES:
            text = "".join(map(chr, _codepoints(tag, data))).encode("utf-8")
            value = _SPACES.sub(b" ", text.strip(_WS)).lower()  # bytes.lower: ASCII only
            rdns[index].append((oid, _UTF8, value))
        else:
            rdns[index].append((oid, tag, data))
    return tuple(tuple(sorted(rdn)) for rdn in rdns)


def _utf8_bytes(c: int) -> bytes:
    """``UTF8_putc``: nothing for a surrogate or past U+10FFFF (OpenSSL drops them)."""
    if 0xD800 <= c <= 0xDFFF or c > 0x10FFFF:
        return b""
    return chr(c).encode("utf-8")


def _value_bytes(tag: int, data: bytes) -> bytes | None:
    """The bytes ``do_buf`` escapes for a printable type (UTF-8 conversion applied), or
    None for a type dumped as hex."""
    width = _WIDTH.get(tag)
    if width is None:
        return None
    if width == 0:
        return data  # UTF8String: one byte per character, never re-converted
    if width == 1:
        return data if data.isascii() else data.decode("latin-1").encode("utf-8")
    if width == 2:
        chars = [data[i] << 8 | data[i + 1] for i in range(0, len(data) - 1, 2)]
    else:
        chars = [int.from_bytes(data[i : i + 4], "big") for i in range(0, len(data) - 3, 4)]
    return b"".join(_utf8_bytes(c) for c in chars)


def _escape(data: bytes, escape_msb: bool) -> bytes:
    """OpenSSL's ``do_esc_char`` over ``do_buf`` with ``ASN1_STRFLGS_RFC2253``."""
    out = bytearray()
    last = len(data) - 1
    for i, b in enumerate(data):
        if b > 0x7F:
            if escape_msb:
                out += b"\\%02X" % b
            else:
                out.append(b)
            continue
        # OpenSSL quirk kept on purpose: the "last" flag replaces the "first" flag, so a
        # one-character value "#" is not escaped while " " is.
        first = i == 0 and i != last
        is_last = i == last
        if b in _RFC2253_SPECIAL or (b == 0x20 and (first or is_last)) or (b == 0x23 and first):
            out += b"\\" + bytes([b])
        elif b < 0x20 or b == 0x7F:
            out += b"\\%02X" % b
        else:
            out.append(b)
    return bytes(out)


def rfc2253(entries: tuple[NameEntry, ...], *, escape_msb: bool = True) -> str:
    """``openssl x509 -nameopt RFC2253`` (``RFC2253,-esc_msb`` when ``escape_msb`` is
    false; then the result holds UTF-8 characters). The name must be decodable (see
    :func:`canonical`)."""
    parts: list[bytes] = []
    prev = -1
    for index, oid, tag, data, tlv in reversed(entries):
        if prev != -1:
            parts.append(b"+" if prev == index else b",")
        prev = index
        dotted, short = _oid_names(oid)
        value = _value_bytes(tag, data) if short is not None else None
        if value is None:  # unknown attribute type or non-string type: DER dump
            parts.append(f"{short or dotted}=#{tlv.hex().upper()}".encode("ascii"))
        else:
            parts.append(short.encode("ascii") + b"=" + _escape(value, escape_msb))  # type: ignore[union-attr]
    text = b"".join(parts)
    # Decodable names give valid UTF-8 (UTF8String contents were checked by canonical);
    # "replace" only guards callers that skipped that check.
    return text.decode("utf-8", "replace")


def legacy(entries: tuple[NameEntry, ...]) -> str:
    """OpenSSL 3's ``X509_NAME_oneline`` (``openssl x509 -nameopt compat``)."""
    out: list[str] = []
    prev = -1
    for index, oid, tag, data, _tlv in entries:
        out.append("+" if index == prev else "/")
        prev = index
        out.append(short_name(oid))
        out.append("=")
        keep = (True, True, True, True)
        if tag == _GENERAL and len(data) % 4 == 0:
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
