"""Issue 9 item 6 (docs/security.md row 6), the two names besides ``Content-Length``:
a ``Connection`` header naming ``Transfer-Encoding`` or ``Host`` does not remove them
from the request the origin receives.

Attack: ``Connection`` lists hop-by-hop names that a proxy removes before forwarding
(RFC 9110 §7.6.1). A client listing ``transfer-encoding`` there would, on a naive proxy,
make a chunked request reach the origin with no framing at all (its body then follows as
a second, attacker-shaped request), and listing ``host`` would send a request without
``Host`` (RFC 9112 §3.2: the origin must answer 400, or guesses). Guarantee: the token
is ignored for these names; the origin receives the chunked request with
``Transfer-Encoding: chunked`` and its whole body, once, and exactly one ``Host``, the
same as without the token. Through the ``edgerules proxy`` CLI, real TLS, a raw Python
``ssl`` client (every byte controlled), the echo origin recording what arrived."""

from __future__ import annotations

import pytest
from proxy_attack_helpers import HOST, proxied_deployment, read_response, tls_client


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with proxied_deployment(tmp_path_factory.mktemp("sec96tokens")) as running:
        yield running


def send(env, head: bytes, body: bytes = b"") -> dict:
    """One request on a new connection; returns what the origin saw (exactly once)."""
    dep, origin, port = env
    before = len(origin.requests)
    with tls_client(port, cert=dep.cert, key=dep.key) as sock:
        sock.sendall(head + b"\r\n" + body)
        status, _headers, _data = read_response(sock)
    assert status == 200
    seen = origin.requests[before:]
    assert len(seen) == 1, seen
    return seen[0]


def values(seen: dict, name: str) -> list[str]:
    return [v for n, v in seen["headers"] if n.lower() == name]


@pytest.mark.parametrize(
    "token", ["transfer-encoding", "Transfer-Encoding, keep-alive", "close, transfer-encoding"]
)
def test_connection_token_cannot_strip_transfer_encoding(env, token):
    body = b'{"transfer": 100}'
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    seen = send(
        env,
        b"POST /pay HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n"
        b"Connection: " + token.encode() + b"\r\n"
        b"Content-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n",
        chunked,
    )
    assert seen["method"] == "POST"
    assert seen["body_length"] == len(body)  # the body arrived as the request's body
    assert [v.lower() for v in values(seen, "transfer-encoding")] == ["chunked"]
    assert values(seen, "content-length") == []
    assert values(seen, "connection") == []


@pytest.mark.parametrize("token", ["host", "Host, keep-alive", "close, host"])
def test_connection_token_cannot_strip_host(env, token):
    head = b"GET /who HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n"
    baseline = send(env, head)
    seen = send(env, head + b"Connection: " + token.encode() + b"\r\n")
    assert len(values(baseline, "host")) == 1
    assert values(seen, "host") == values(baseline, "host")  # one Host, the same one
    assert values(seen, "x-forwarded-host") == values(baseline, "x-forwarded-host")
    assert values(seen, "connection") == []
