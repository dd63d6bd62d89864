"""Issue 9 item 6: request framing cannot be corrupted.

Attack (reproduced on the old code): ``Connection: content-length`` made the proxy drop
``Content-Length`` as a "hop-by-hop" name, forward a body-less POST that the origin
executed, then answer 502 (a retrying client repeats the side effect). And an HTTP/1.0
request with ``Transfer-Encoding`` was framed as chunked although RFC 9112 §6.1 says its
framing is faulty.

Guarantee: framing headers are never dropped because of ``Connection`` tokens (the
request reaches the origin with its body); HTTP/1.0 with ``Transfer-Encoding`` is
answered 400 and nothing goes upstream. Through the ``edgerules proxy`` CLI, real TLS,
a raw Python ``ssl`` client (every byte controlled)."""

from __future__ import annotations

import pytest
from proxy_attack_helpers import HOST, proxied_deployment, read_response, tls_client


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with proxied_deployment(tmp_path_factory.mktemp("sec96")) as running:
        yield running


@pytest.mark.parametrize("token", ["content-length", "Content-Length, keep-alive", "close, content-length"])
def test_connection_token_cannot_strip_content_length(env, token):
    dep, origin, port = env
    body = b'{"transfer": 100}'
    before = len(origin.requests)
    with tls_client(port, cert=dep.cert, key=dep.key) as sock:
        sock.sendall(
            b"POST /pay HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n"
            b"Connection: " + token.encode() + b"\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        status, _headers, _data = read_response(sock)
    assert status == 200
    seen = origin.requests[before:]
    assert len(seen) == 1, seen  # executed once, with its body
    assert seen[0]["method"] == "POST"
    assert seen[0]["body_length"] == len(body)
    names = [n.lower() for n, _ in seen[0]["headers"]]
    assert names.count("content-length") == 1
    assert "connection" not in names


def test_http10_with_transfer_encoding_is_refused(env):
    dep, origin, port = env
    before = len(origin.requests)
    with tls_client(port, cert=dep.cert, key=dep.key) as sock:
        sock.sendall(
            b"POST /pay HTTP/1.0\r\nHost: " + HOST.encode() + b"\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        )
        status, headers, data = read_response(sock)
        assert status == 400
        assert b"Transfer-Encoding" in data
        assert headers.get("connection") == "close"
        assert sock.recv(100) == b""  # closed after the 400 (RFC 9112 §6.1)
    assert origin.requests[before:] == []  # nothing went upstream


def test_http10_with_transfer_encoding_and_content_length_is_refused(env):
    dep, origin, port = env
    before = len(origin.requests)
    with tls_client(port, cert=dep.cert, key=dep.key) as sock:
        sock.sendall(
            b"POST /pay HTTP/1.0\r\nHost: " + HOST.encode() + b"\r\n"
            b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello"
        )
        status, _headers, _data = read_response(sock)
    assert status == 400
    assert origin.requests[before:] == []
