"""A minimal DER reader: tags, lengths, children, integers and OIDs.

Owns: walking the TLV structure of certificates and CRLs without building Python objects,
for what ``cryptography`` does not expose (raw names, string tags, raw signature inputs)
or refuses to load (names with characters outside their string type, which OpenSSL
accepts).

Invariants:

* Pure functions over ``bytes``; no recursion (callers walk one level at a time), so no
  input can exhaust the stack.
* Every malformed input raises :class:`DERError` (a ``ValueError``), never ``IndexError``
  or anything else; lengths are bounded by the buffer.
* Only the subset X.509 uses: low tag numbers (< 31), definite lengths of at most four
  length octets. Indefinite lengths (BER) are refused, as DER requires.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = [
    "DERError",
    "children",
    "decode_int",
    "oid_dotted",
    "read",
    "tlv_bytes",
]

# Universal tags used by the callers.
BOOLEAN = 0x01
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
SEQUENCE = 0x30
SET = 0x31


class DERError(ValueError):
    """The bytes are not the DER structure expected."""


def read(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """The TLV starting at ``pos`` (not past ``end``): ``(tag, content_start, content_end)``."""
    if pos + 2 > end:
        raise DERError("truncated TLV")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise DERError("high tag numbers are not used in X.509")
    n = buf[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4:
            raise DERError("indefinite or oversized length")
        if pos + k > end:
            raise DERError("truncated length")
        n = int.from_bytes(buf[pos : pos + k], "big")
        pos += k
    if pos + n > end:
        raise DERError("length past the end of the data")
    return tag, pos, pos + n


def children(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """The TLVs inside ``buf[start:end]``: ``(tag, tlv_start, content_start, content_end)``."""
    pos = start
    while pos < end:
        tag, cs, ce = read(buf, pos, end)
        yield tag, pos, cs, ce
        pos = ce


def scan(buf: bytes, pos: int, end: int) -> list[tuple[int, int, int, int]]:
    """Every TLV in ``buf[pos:end]`` as ``(tag, tlv_start, content_start, content_end)``
    (:func:`children` as one tight loop, for the hot path)."""
    out = []
    append = out.append
    while pos < end:
        if pos + 2 > end:
            raise DERError("truncated TLV")
        tag = buf[pos]
        n = buf[pos + 1]
        if tag & 0x1F == 0x1F:
            raise DERError("high tag numbers are not used in X.509")
        cs = pos + 2
        if n & 0x80:
            k = n & 0x7F
            if k == 0 or k > 4 or cs + k > end:
                raise DERError("indefinite, oversized or truncated length")
            n = int.from_bytes(buf[cs : cs + k], "big")
            cs += k
        ce = cs + n
        if ce > end:
            raise DERError("length past the end of the data")
        append((tag, pos, cs, ce))
        pos = ce
    return out


def tlv_bytes(buf: bytes, pos: int, end: int) -> bytes:
    """The whole TLV (header and content) starting at ``pos``."""
    _tag, _cs, ce = read(buf, pos, end)
    return buf[pos:ce]


def decode_int(content: bytes) -> int:
    """A two's complement INTEGER body (an empty body is refused)."""
    if not content:
        raise DERError("empty INTEGER")
    return int.from_bytes(content, "big", signed=True)


def oid_dotted(content: bytes) -> str:
    """The dotted form of an OBJECT IDENTIFIER body."""
    if not content or content[-1] & 0x80:
        raise DERError("malformed OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    for b in content:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(map(str, head + arcs[1:]))


def encode_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def encode(tag: int, content: bytes) -> bytes:
    """One TLV."""
    return bytes([tag]) + encode_length(len(content)) + content
