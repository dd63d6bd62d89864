"""Strict HTTP/1.1 parsing and serialising for the proxy, both sides, without I/O.

Owns: the wire format of the proxy's HTTP/1.1 — request heads from clients, response
heads from the origin, the three body framings (``Content-Length``, ``chunked``, until
EOF) and the bytes the proxy writes (heads, chunks).

Why not h11 (which the proxy used before, issue 14): h11 was 28 % of a proxied request's
CPU (docs/proxy-bench.md): an event object per head, per body piece and per end of
message, a header object with three tuples per field, a second normalising pass, a state
machine per connection. This module does the same checks with one regular-expression
call over a whole head in the common case.

Invariants (what the tests in ``tests/proxy/test_http1.py`` hold against h11 itself):

* **Exactly h11's acceptance.** A head is accepted, and split into the same method,
  target, version and ``(name, value)`` fields, exactly when h11 0.16 accepts it: the
  grammar is h11's (``h11/_abnf.py``: token names, field values without NUL or other
  whitespace than inner SP/HTAB, a request target of visible ASCII, ``HTTP/d.d``), bare
  LF line ends and obs-fold continuation lines are accepted and unfolded as h11 does, a
  head starting with an empty line is refused. The fast path (CRLF lines, no folding)
  validates and splits the whole field block with one ``findall`` (each match a whole
  line, as many matches as lines); anything it does not accept
  goes through the line-by-line path, which either accepts it as h11 would or raises
  the same error.
* **Framing as h11 normalises it.** ``Content-Length``: every comma-separated element
  of every such field must be the same ``[0-9]+`` of at most 20 digits (else refused:
  conflicting lengths are a smuggling vector); duplicates collapse into the first field.
  ``Transfer-Encoding``: one field whose value is ``chunked`` (any case; stored
  lowercased), else refused. A request has exactly one ``Host`` field (HTTP/1.1) or at
  most one (HTTP/1.0). The proxy adds its own rules on top (``server``: CL+TE, 1.0+TE).
* Chunked bodies: chunk-size lines are ``1*20HEXDIG [; ext] OWS CRLF``, each chunk's
  data is followed by exactly CRLF, trailers are parsed as header fields and dropped.
* Every refusal is a :class:`ProtocolError` carrying the status to answer (400 or 431).
* Nothing here allocates per header beyond the ``(name, value)`` tuple list; bodies are
  passed on as the slices the buffer holds (no copy when a read holds only body bytes).
"""

from __future__ import annotations

import re

__all__ = [
    "LAST_CHUNK",
    "ChunkedReader",
    "EOFReader",
    "LengthReader",
    "ProtocolError",
    "RequestHead",
    "ResponseHead",
    "chunk",
    "find_head_end",
    "obviously_not_http",
    "parse_request_head",
    "parse_response_head",
    "request_reader",
    "response_reader",
    "serialise_head",
]

# -- grammar (h11/_abnf.py, as bytes) -------------------------------------------------
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_FIELD_VCHAR = rb"[^\x00\s]"
_FIELD_CONTENT = _FIELD_VCHAR + rb"+(?:[ \t]+" + _FIELD_VCHAR + rb"+)*"
_FIELD_LINE = rb"(" + _TOKEN + rb"):[ \t]*((?:" + _FIELD_CONTENT + rb")?)[ \t]*"
_HEADER_FIELD = re.compile(_FIELD_LINE)  # one unfolded line (fullmatch)
# The fast path: the field lines of a head, validated and split by one findall. Each
# match is a whole CRLF-terminated line (it starts right after a LF, and neither a name
# nor a value holds CR or LF), so when there are as many matches as LFs in the block,
# every line matched: the block is valid (anything else goes to the line-by-line path).
# The value is written as "a VCHAR, optionally anything but NUL/CR/LF/VT/FF up to a last
# VCHAR" — the same language as ``_FIELD_CONTENT`` with less backtracking.
_FIELD_CRLF = re.compile(
    rb"(?<=\n)(" + _TOKEN + rb"):[ \t]*(" + _FIELD_VCHAR + rb"(?:[^\x00\r\n\x0b\x0c]*"
    + _FIELD_VCHAR + rb")?|)[ \t]*\r\n"
)
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/([0-9]\.[0-9])")
_STATUS_LINE = re.compile(
    rb"HTTP/([0-9]\.[0-9]) ([0-9]{3})(?: ((?:[ \t]|" + _FIELD_VCHAR + rb")*))?"
)
_CHUNK_HEADER = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*")
_CONTENT_LENGTH = re.compile(rb"[0-9]+")
_CONTENT_LENGTH_MAX_DIGITS = 20  # h11's bound (a 64-bit length has at most 20 digits)
_BLANK_LINE = re.compile(rb"\n\r?\n")  # h11's end of a head
_OBS_FOLD = re.compile(rb"[ \t]+")


class ProtocolError(Exception):
    """The peer broke HTTP/1.1; ``status`` is what to answer a client (400 or 431)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class RequestHead:
    """A parsed request head. ``headers`` keep the client's order and name case (with
    ``Content-Length`` collapsed and ``Transfer-Encoding`` lowercased, as h11 does);
    ``size`` is the bytes of the request line and field lines as received (without
    the blank line)."""

    __slots__ = (
        "chunked",
        "content_length",
        "expect_continue",
        "headers",
        "host",
        "http_version",
        "keep_alive",
        "method",
        "size",
        "target",
    )

    def __init__(
        self, method: bytes, target: bytes, http_version: bytes,
        headers: list[tuple[bytes, bytes]], size: int,
    ) -> None:
        self.method = method
        self.target = target
        self.http_version = http_version
        self.headers = headers
        self.size = size
        self.chunked = False
        self.content_length: int | None = None
        self.keep_alive = http_version >= b"1.1"
        self.expect_continue = False
        self.host: bytes | None = None  # the Host field's value (at most one)


class ResponseHead:
    __slots__ = ("chunked", "content_length", "headers", "http_version", "keep_alive", "reason", "status")

    def __init__(
        self, status: int, reason: bytes, http_version: bytes, headers: list[tuple[bytes, bytes]]
    ) -> None:
        self.status = status
        self.reason = reason
        self.http_version = http_version
        self.headers = headers
        self.chunked = False
        self.content_length: int | None = None
        self.keep_alive = http_version >= b"1.1"


# -- heads ------------------------------------------------------------------------------
def find_head_end(buf: bytes) -> int:
    """Where the head at the start of ``buf`` ends (after its blank line), 0 when the
    buffer starts with an empty line (refused by the callers, as h11 does), -1 when it
    is not complete yet."""
    if buf[:1] == b"\n" or buf[:2] == b"\r\n":
        return 0
    match = _BLANK_LINE.search(buf)
    return -1 if match is None else match.end()


def obviously_not_http(buf: bytes) -> bool:
    """h11's early check on an incomplete head: a line cannot start with a control
    character or a space (catches TLS or other binary protocols spoken to us)."""
    return bool(buf) and buf[0] < 0x21


def _split_slow(head: bytes) -> list[bytes]:
    """h11's line handling: split on LF, drop one CR before it, unfold obs-fold."""
    lines = head.split(b"\n")
    lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    del lines[-2:]  # the blank line
    out: list[bytes] = []
    for line in lines[1:]:
        match = _OBS_FOLD.match(line)
        if match:
            if not out:
                raise ProtocolError("continuation line at start of headers")
            out[-1] = out[-1] + b" " + line[match.end():]
        else:
            out.append(line)
    return [lines[0], *out]


def _fields_slow(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    fields = []
    for line in lines:
        match = _HEADER_FIELD.fullmatch(line)
        if match is None:
            raise ProtocolError(f"illegal header line: {line!r}")
        fields.append((match.group(1), match.group(2)))
    return fields


def _split_head(head: bytes, line_re: re.Pattern[bytes], what: str) -> tuple[re.Match[bytes], list[tuple[bytes, bytes]]]:
    """(first line match, fields) of a complete head (ending with its blank line)."""
    eol = head.find(b"\r\n")
    first = line_re.fullmatch(head, 0, eol) if eol > 0 else None
    if first is not None and head.endswith(b"\r\n\r\n"):
        end = len(head) - 2
        if eol + 2 == end:
            return first, []
        fields = _FIELD_CRLF.findall(head, eol + 2, end)
        if len(fields) == head.count(b"\n", eol + 2, end):
            return first, fields
    # bare LF, obs-fold or an error: h11's own way, for its exact acceptance and errors
    lines = _split_slow(head)
    first = line_re.fullmatch(lines[0])
    if first is None:
        raise ProtocolError(f"illegal {what} line: {lines[0]!r}")
    return first, _fields_slow(lines[1:])


def _framing(
    headers: list[tuple[bytes, bytes]], head: RequestHead | ResponseHead
) -> list[tuple[bytes, bytes]]:
    """h11's normalisation of Content-Length / Transfer-Encoding (see module docstring);
    also reads ``Connection: close`` and, for a request, ``Host`` and ``Expect``.
    Returns the headers (rebuilt only when changed). One pass, each name's kind looked
    up by its exact bytes (``_name_kind``)."""
    out = headers
    seen_length: bytes | None = None
    request = type(head) is RequestHead
    hosts = 0
    expect = False
    kinds = _KINDS
    for index, (name, value) in enumerate(headers):
        kind = kinds.get(name)
        if kind is None:
            kind = _name_kind(name)
        if not kind:
            continue
        if kind == _K_LENGTH:
            if value.isdigit() and len(value) <= _CONTENT_LENGTH_MAX_DIGITS:
                length = value  # the common case: one plain number
            else:
                lengths = {v.strip() for v in value.split(b",")}
                if len(lengths) != 1:
                    raise ProtocolError("conflicting Content-Length headers")
                length = lengths.pop()
                if not _CONTENT_LENGTH.fullmatch(length) or len(length) > _CONTENT_LENGTH_MAX_DIGITS:
                    raise ProtocolError("bad Content-Length")
            if seen_length is None:
                seen_length = length
                if length != value:
                    if out is headers:
                        out = list(headers)
                    out[index] = (name, length)
            elif seen_length != length:
                raise ProtocolError("conflicting Content-Length headers")
            else:  # a duplicate with the same value: h11 keeps the first only
                if out is headers:
                    out = list(headers)
                out[index] = None  # type: ignore[call-overload]
        elif kind == _K_TRANSFER:
            if head.chunked:
                raise ProtocolError("multiple Transfer-Encoding headers")
            if value.lower() != b"chunked":
                raise ProtocolError("Only Transfer-Encoding: chunked is supported")
            head.chunked = True
            if value != b"chunked":
                if out is headers:
                    out = list(headers)
                out[index] = (name, b"chunked")
        elif kind == _K_CONNECTION:
            if value != b"keep-alive" and b"close" in _comma_tokens(value):
                head.keep_alive = False
        elif request:
            if kind == _K_HOST:
                hosts += 1
                head.host = value  # type: ignore[union-attr]
            else:  # _K_EXPECT
                expect = expect or b"100-continue" in _comma_tokens(value)
    if out is not headers:
        out = [item for item in out if item is not None]
    if seen_length is not None:
        head.content_length = int(seen_length)
    if request:
        version = head.http_version
        if hosts == 0 and version == b"1.1":
            raise ProtocolError("Missing mandatory Host: header")
        if hosts > 1:
            raise ProtocolError("Found multiple Host: headers")
        # RFC 7231 §5.1.1 (as h11): an HTTP/1.0 client's expectation is ignored.
        head.expect_continue = expect and version >= b"1.1"  # type: ignore[union-attr]
    return out


_K_LENGTH, _K_TRANSFER, _K_CONNECTION, _K_HOST, _K_EXPECT = 1, 2, 3, 4, 5
_KIND_BY_LOWER = {
    b"content-length": _K_LENGTH,
    b"transfer-encoding": _K_TRANSFER,
    b"connection": _K_CONNECTION,
    b"host": _K_HOST,
    b"expect": _K_EXPECT,
}
# Header names as received -> kind (0: nothing framing reads). Names repeat from head to
# head, so the lowercasing is done once per spelling; bounded (short names, a fixed
# number of entries) so that a peer sending random names cannot grow it.
_KINDS: dict[bytes, int] = {}
_KINDS_MAX = 2048
_KIND_NAME_MAX = 64


def _name_kind(name: bytes) -> int:
    kind = _KIND_BY_LOWER.get(name.lower(), 0)
    if len(name) <= _KIND_NAME_MAX and len(_KINDS) < _KINDS_MAX:
        _KINDS[name] = kind
    return kind


def _comma_tokens(value: bytes) -> list[bytes]:
    return [t.strip().lower() for t in value.split(b",") if t.strip()]


def parse_request_head(head: bytes) -> RequestHead:
    """Parse a complete request head (``find_head_end`` found its end). Raises
    :class:`ProtocolError` (400) for anything h11 would refuse."""
    if not head or head[:1] == b"\n" or head[:2] == b"\r\n":
        raise ProtocolError("no request line received")
    first, fields = _split_head(head, _REQUEST_LINE, "request")
    method, target, version = first.groups()
    request = RequestHead(method, target, version, fields, len(head) - 2)
    request.headers = _framing(fields, request)
    return request


def parse_response_head(head: bytes) -> ResponseHead:
    """Parse a complete response head from the origin (ProtocolError when h11 would
    refuse it)."""
    if not head or head[:1] == b"\n" or head[:2] == b"\r\n":
        raise ProtocolError("no response line received")
    first, fields = _split_head(head, _STATUS_LINE, "status")
    version, status, reason = first.groups()
    response = ResponseHead(int(status), reason or b"", version, fields)
    response.headers = _framing(fields, response)
    return response


def response_reader(head: ResponseHead, method: bytes) -> LengthReader | ChunkedReader | EOFReader:
    """The body framing of a response to ``method`` (RFC 9112 §6.3, as h11): none for
    HEAD, 204 and 304; chunked beats Content-Length; without either, until EOF."""
    if head.status in (204, 304) or method == b"HEAD":
        return LengthReader(0)
    if head.chunked:
        return ChunkedReader()
    if head.content_length is not None:
        return LengthReader(head.content_length)
    return EOFReader()


def request_reader(head: RequestHead) -> LengthReader | ChunkedReader:
    if head.chunked:
        return ChunkedReader()
    return LengthReader(head.content_length or 0)


def serialise_head(first_line: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """``first_line`` CRLF, the fields in order, the blank line. Names and values must be
    valid already (parsed by this module or built by the proxy from ASCII it controls)."""
    parts = [first_line]
    for name, value in headers:
        parts.append(name + b": " + value)
    parts.append(b"\r\n")
    return b"\r\n".join(parts)


def chunk(data: bytes) -> list[bytes]:
    """One chunk of a chunked body (h11's ChunkedWriter: hex size, data, CRLF)."""
    return [b"%x\r\n" % len(data), data, b"\r\n"]


LAST_CHUNK = b"0\r\n\r\n"


# -- bodies -----------------------------------------------------------------------------
# A reader consumes from the front of a bytes buffer: ``read(buf) -> (data, rest)``,
# ``data`` being body bytes (possibly empty), ``rest`` what is left of the buffer;
# ``done`` turns True at the end of the body. ``at_eof()`` says what the peer's EOF means.
class LengthReader:
    __slots__ = ("done", "remaining")

    def __init__(self, length: int) -> None:
        self.remaining = length
        self.done = length == 0

    def read(self, buf: bytes) -> tuple[bytes, bytes]:
        remaining = self.remaining
        if len(buf) <= remaining:
            self.remaining = remaining - len(buf)
            self.done = self.remaining == 0
            return buf, b""
        self.remaining = 0
        self.done = True
        return buf[:remaining], buf[remaining:]

    def at_eof(self) -> None:
        if not self.done:
            raise ProtocolError("peer closed connection without sending complete message body")


class EOFReader:
    """A response framed by the end of the connection (no length, not chunked)."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False

    def read(self, buf: bytes) -> tuple[bytes, bytes]:
        return buf, b""

    def at_eof(self) -> None:
        self.done = True


class ChunkedReader:
    __slots__ = ("_discard", "_in_chunk", "_trailer", "done", "max_line")

    def __init__(self, max_line: int = 32 * 1024) -> None:
        self.done = False
        self._in_chunk = 0  # data bytes left in the current chunk
        self._discard = b""  # the CRLF still expected after a chunk's data
        self._trailer = False
        self.max_line = max_line  # a chunk-size line or trailer section longer: 431

    def read(self, buf: bytes) -> tuple[bytes, bytes]:
        out: list[bytes] = []
        while buf and not self.done:
            if self._trailer:
                end = find_head_end(buf)
                if end == 0:  # no trailer fields: just the final CRLF (or LF)
                    end = 1 if buf[:1] == b"\n" else 2
                elif end < 0:
                    if len(buf) > self.max_line:
                        raise ProtocolError("chunked trailer too long", 431)
                    break
                else:
                    _fields_slow(_split_slow(b"trailer\r\n" + buf[:end])[1:])
                buf = buf[end:]
                self.done = True
                break
            if self._discard:
                n = min(len(self._discard), len(buf))
                if buf[:n] != self._discard[:n]:
                    raise ProtocolError(f"malformed chunk footer: {buf[:n]!r}")
                self._discard = self._discard[n:]
                buf = buf[n:]
                continue
            if self._in_chunk == 0:
                eol = buf.find(b"\r\n")
                if eol < 0:
                    if len(buf) > self.max_line:
                        raise ProtocolError("chunk header too long", 431)
                    break
                match = _CHUNK_HEADER.fullmatch(buf, 0, eol)
                if match is None:
                    raise ProtocolError(f"illegal chunk header: {buf[:eol + 2]!r}")
                buf = buf[eol + 2:]
                self._in_chunk = int(match.group(1), 16)
                if self._in_chunk == 0:
                    self._trailer = True
                continue
            take = self._in_chunk
            if len(buf) <= take:
                data, buf = buf, b""
            else:
                data, buf = buf[:take], buf[take:]
            self._in_chunk -= len(data)
            if self._in_chunk == 0:
                self._discard = b"\r\n"
            out.append(data)
        if not out:
            return b"", buf
        return (out[0] if len(out) == 1 else b"".join(out)), buf

    def at_eof(self) -> None:
        if not self.done:
            raise ProtocolError("peer closed connection without sending complete message body")
