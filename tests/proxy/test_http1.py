"""The proxy's HTTP/1.1 parser (``proxy/http1.py``) accepts exactly what h11 accepts.

h11 was the proxy's parser before issue 14 and defined its strictness (the smuggling
and framing tests were written against it); it stays installed (``edgerules serve`` uses
it), so it is the oracle here: every head below — hand-written attacks and generated
ones — must be accepted by both with the same method, target, version, fields,
keep-alive, 100-continue and body framing, or refused by both. Chunked bodies likewise.
"""

from __future__ import annotations

import h11
import pytest
from h11._connection import _body_framing, _keep_alive
from hypothesis import given, settings
from hypothesis import strategies as st

from edgerules.proxy import http1


def h11_request(data: bytes):
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError:
        return "error"
    if event is h11.NEED_DATA:
        return "incomplete"
    assert isinstance(event, h11.Request)
    return (
        event.method,
        event.target,
        event.http_version,
        list(event.headers.raw_items()),
        _keep_alive(event),
        conn.they_are_waiting_for_100_continue,
        _body_framing(event.method, event),
    )


def mine_request(data: bytes):
    end = http1.find_head_end(data)
    if end < 0:
        return "error" if http1.obviously_not_http(data) else "incomplete"
    try:
        head = http1.parse_request_head(data[:end])
    except http1.ProtocolError as exc:
        assert exc.status == 400
        return "error"
    return (
        head.method,
        head.target,
        head.http_version,
        head.headers,
        head.keep_alive,
        head.expect_continue,
        framing(http1.request_reader(head)),
    )


def framing(reader):
    if isinstance(reader, http1.ChunkedReader):
        return ("chunked", ())
    if isinstance(reader, http1.EOFReader):
        return ("http/1.0", ())
    return ("content-length", (reader.remaining,))


def h11_response(data: bytes, method: bytes = b"GET"):
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target=b"/", headers=[(b"Host", b"x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError:
        return "error"
    if event is h11.NEED_DATA:
        return "incomplete"
    if isinstance(event, h11.InformationalResponse):
        return ("informational", event.status_code)
    return (
        event.status_code,
        event.reason,
        event.http_version,
        list(event.headers.raw_items()),
        _keep_alive(event),
        _body_framing(method, event),
    )


def mine_response(data: bytes, method: bytes = b"GET"):
    end = http1.find_head_end(data)
    if end < 0:
        return "error" if http1.obviously_not_http(data) else "incomplete"
    try:
        head = http1.parse_response_head(data[:end])
    except http1.ProtocolError:
        return "error"
    if 100 <= head.status < 200:
        return ("informational", head.status) if head.status != 101 else "error"
    return (
        head.status,
        head.reason,
        head.http_version,
        head.headers,
        head.keep_alive,
        framing(http1.response_reader(head, method)),
    )


ATTACKS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",  # no Host
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,6\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 123456789012345678901\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\t\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0bchunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",  # obs-fold
    b"GET / HTTP/1.1\r\n X: a\r\nHost: a\r\n\r\n",  # continuation at start
    b"GET / HTTP/1.1\nHost: a\n\n",  # bare LF
    b"GET / HTTP/1.1\r\nHost: a\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\x7fb\x80\xff\r\n\r\n",
    b"GET / HTTP/1.1\r\nHo st: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost a\r\n\r\n",
    b"GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n",
    b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
    b"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    b"GET / HTTP/11\r\nHost: a\r\n\r\n",
    b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b" GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"\x16\x03\x01\x02\x00",
    b"GET / HTTP/1.1\r\nHost: a\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, CLOSE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue, x\r\n\r\n",
    b"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n",
    b"GET http://a/b?c HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Sp:   \r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nhost: a\r\nhOsT-x: y\r\n\r\n",
]


@pytest.mark.parametrize("data", ATTACKS)
def test_request_heads_as_h11(data):
    assert mine_request(data) == h11_request(data)


RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
    b"HTTP/1.1 200\r\nContent-Length: 3\r\n\r\n",
    b"HTTP/1.1 200 \r\n\r\n",
    b"HTTP/1.0 200 OK\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\tfine\x80\r\nX: y\r\n\r\n",
    b"HTTP/1.1 200 OK\nX: y\n z\n\n",
    b"HTTX/1.1 200 OK\r\n\r\n",
    b"\r\nHTTP/1.1 200 OK\r\n\r\n",
    # the fast path (one findall over CRLF lines) against odd lines it must not accept
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 06 Dec 2026 03:00:00 GMT\r\n"
    b"Content-Type: application/json\r\nContent-Length: 28\r\nConnection: keep-alive\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nA: b\nContent-Length: 3\r\n\r\n",  # a bare LF mid-head
    b"HTTP/1.1 200 OK\r\nA: b\rContent-Length: 3\r\n\r\n",  # a bare CR
    b"HTTP/1.1 200 OK\r\nA: b\r\r\nContent-Length: 3\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nBad Line\r\nContent-Length: 3\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX Content-Length: 3\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nA:  \t b \t c\t \r\nB:\r\nC: \x01\x7f\xff\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nA: b\x0bc\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nA: b\x0c\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nA: \x00\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n folded\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3 \r\nCONTENT-LENGTH:3\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 003\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: \xd9\xa3\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nconnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
]


@pytest.mark.parametrize("data", RESPONSES)
@pytest.mark.parametrize("method", [b"GET", b"HEAD"])
def test_response_heads_as_h11(data, method):
    assert mine_response(data, method) == h11_response(data, method)


# -- generated heads ---------------------------------------------------------------------
_NAMES = [b"Host", b"Content-Length", b"Transfer-Encoding", b"Connection", b"Expect", b"X-A", b"x_b"] * 4 + [
    b"", b"Bad Name", b"K\x00"]
_VALUES = [b"a", b"5", b"05", b"5, 5", b"5,6", b" 5 ", b"chunked", b"CHUNKED", b"gzip", b"close", b"100-continue",
           b"", b"a b", b"a\tb", b"a\x00b", b"\x80\xff", b"a\rb", b"x  ", b"\x0c"]
_EOLS = [b"\r\n"] * 12 + [b"\n", b"\r\r\n"]

_line = st.tuples(st.sampled_from(_NAMES), st.sampled_from([b": "] * 6 + [b":", b":\t", b" :", b""]), st.sampled_from(_VALUES),
                  st.sampled_from(_EOLS), st.sampled_from([b""] * 12 + [b" ", b"\t"]))
_request_line = st.sampled_from([b"GET / HTTP/1.1"] * 3 + [b"POST /x?y HTTP/1.0"] * 3 + [ b"PUT * HTTP/1.1", b"GET  / HTTP/1.1",
                                 b"get http://h/ HTTP/1.1", b"GET / HTTP/1.1 ", b"GET /\x80 HTTP/1.1"])


@settings(max_examples=600, deadline=None)
@given(_request_line, st.lists(_line, max_size=6), st.sampled_from([b"\r\n\r\n", b"\r\n\n", b"\n\n", b"\n\r\n"]))
def test_generated_request_heads_as_h11(first, lines, end):
    head = first
    for index, (name, colon, value, eol, fold) in enumerate(lines):
        head += (b"\r\n" if index == 0 else eol) + (fold if index else b"") + name + colon + value
    data = head + end
    assert mine_request(data) == h11_request(data)


_status_line = st.sampled_from([b"HTTP/1.1 200 OK"] * 4 + [b"HTTP/1.0 200 OK", b"HTTP/1.1 204 No Content",
                                b"HTTP/1.1 304", b"HTTP/1.1 100 Continue", b"HTTP/1.1 200  two  spaces ",
                                b"HTTP/1.1 2000 OK", b"HTTP/1.1 200 OK\x00", b"HTTP/1.1 200 \x80"])


@settings(max_examples=600, deadline=None)
@given(_status_line, st.lists(_line, max_size=6), st.sampled_from([b"\r\n\r\n", b"\r\n\n", b"\n\n", b"\n\r\n"]),
       st.sampled_from([b"GET", b"HEAD"]))
def test_generated_response_heads_as_h11(first, lines, end, method):
    head = first
    for index, (name, colon, value, eol, fold) in enumerate(lines):
        head += (b"\r\n" if index == 0 else eol) + (fold if index else b"") + name + colon + value
    data = head + end
    assert mine_response(data, method) == h11_response(data, method)


@settings(max_examples=400, deadline=None)
@given(st.lists(_line, max_size=6))
def test_fast_field_split_as_line_by_line(lines):
    """The one-findall split of CRLF heads gives the line-by-line path's fields or
    leaves the head to it (``_split_head`` returns one or the other, never a third)."""
    head = b"HTTP/1.1 200 OK"
    for index, (name, colon, value, eol, fold) in enumerate(lines):
        head += (b"\r\n" if index == 0 else eol) + fold + name + colon + value
    head += b"\r\n\r\n"
    try:
        slow = http1._fields_slow(http1._split_slow(head)[1:])
    except http1.ProtocolError:
        slow = "error"
    try:
        fast = http1._split_head(head, http1._STATUS_LINE, "status")[1]
    except http1.ProtocolError:
        fast = "error"
    assert fast == slow


# -- chunked bodies -------------------------------------------------------------------------
def h11_chunked(body: bytes):
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    conn.next_event()
    out = b""
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                return ("incomplete", out)
            if isinstance(event, h11.EndOfMessage):
                return ("done", out)
            out += event.data
    except h11.RemoteProtocolError:
        return "error"


def mine_chunked(body: bytes, step: int):
    reader = http1.ChunkedReader()
    out = b""
    buf = b""
    try:
        for i in range(0, len(body), step):
            buf += body[i : i + step]
            data, buf = reader.read(buf)
            out += data
            if reader.done:
                return ("done", out)
    except http1.ProtocolError:
        return "error"
    return ("incomplete", out)


CHUNKED = [
    b"5\r\nhello\r\n0\r\n\r\n",
    b"5;ext=1\r\nhello\r\n0\r\n\r\n",
    b"5  \r\nhello\r\n0\r\n\r\n",
    b"5\r\nhelloXX0\r\n\r\n",
    b"5\r\nhello\r\n0\r\nTrailer: x\r\n\r\n",
    b"5\r\nhello\r\n0\r\nBad trailer\r\n\r\n",
    b"-5\r\nhello\r\n0\r\n\r\n",
    b"0x5\r\nhello\r\n0\r\n\r\n",
    b"fffffffffffffffffffff\r\n",
    b"a\r\n0123456789\r\n2\r\nab\r\n0\r\n\n",
    b"5\nhello\r\n0\r\n\r\n",
    b"5\r\nhello\r\n0\r\n",
    b"5\r\nhel",
]


@pytest.mark.parametrize("body", CHUNKED)
@pytest.mark.parametrize("step", [1, 3, 1000])
def test_chunked_bodies_as_h11(body, step):
    expected = h11_chunked(body)
    got = mine_chunked(body, step)
    if expected == "error" or got == "error":
        assert got == expected
    elif expected[0] == "incomplete":
        assert (got[0] == "incomplete" and expected[1].startswith(got[1])) or got == expected
    else:
        assert got == expected


def test_serialise_head():
    assert http1.serialise_head(b"HTTP/1.1 200 OK", [(b"A", b"1"), (b"B", b"")]) == (
        b"HTTP/1.1 200 OK\r\nA: 1\r\nB: \r\n\r\n"
    )
    assert http1.serialise_head(b"GET / HTTP/1.1", []) == b"GET / HTTP/1.1\r\n\r\n"
    assert b"".join(http1.chunk(b"hello")) == b"5\r\nhello\r\n"
