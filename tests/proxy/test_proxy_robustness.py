"""Limits, timeouts, upstream failures, bad input on one connection, graceful shutdown."""

from __future__ import annotations

import concurrent.futures
import http.client
import os
import signal
import socket
import ssl
import threading
import time

import pytest
from proxy_helpers import (
    MTLS_HOST,
    Client,
    cli_proxy,
    client_context,
    make_validator,
    running_proxy,
)

from edgerules.enforcement.decision import Verdict
from edgerules.proxy.accesslog import AccessLog
from edgerules.proxy.config import Limits, ProxyConfig
from edgerules.proxy.server import ProxyServer, ServerThread


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tls_socket(port, sni=MTLS_HOST, cert=None, timeout=10):
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return client_context(cert).wrap_socket(raw, server_hostname=sni)


def read_all(sock) -> bytes:
    chunks = []
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    except (ssl.SSLError, ConnectionError, TimeoutError):
        pass
    return b"".join(chunks)


def exchange(port, cert, request: bytes) -> bytes:
    """Send raw bytes over a new TLS connection; everything the proxy answers until close."""
    s = tls_socket(port, cert=cert)
    try:
        s.sendall(request)
        return read_all(s)
    finally:
        s.close()


@pytest.fixture(scope="module")
def proxy(pki, origin):
    # Short timeouts so the timeout tests are quick, yet long enough that a loaded
    # 2-core machine never trips them on a legitimate exchange.
    limits = Limits(
        max_header_bytes=4096,
        max_header_count=20,
        header_timeout=1.0,
        idle_timeout=1.5,
        body_timeout=1.0,
        handshake_timeout=2.0,
        upstream_timeout=1.0,
    )
    with running_proxy(
        f"http://127.0.0.1:{origin.port}", validator=make_validator(pki), limits=limits
    ) as p:
        yield p


def test_oversized_headers_431(proxy, pki):
    with Client(proxy.port, cert=pki.valid) as c:
        status, _, _body = c.request("GET", "/", headers={"X-Big": "a" * 8000})
    assert status == 431
    # and the proxy still serves
    with Client(proxy.port, cert=pki.valid) as c:
        assert c.request("GET", "/")[0] == 200


def test_oversized_headers_arriving_in_pieces_431(proxy, pki):
    s = tls_socket(proxy.port, cert=pki.valid)
    s.sendall(b"GET / HTTP/1.1\r\nHost: api.localhost\r\nX-A: " + b"a" * 3000)
    time.sleep(0.05)
    s.sendall(b"b" * 3000)  # still no end of the head, now over the 4 KiB limit
    data = read_all(s)
    s.close()
    assert data.startswith(b"HTTP/1.1 431 ")


def test_too_many_headers_431(proxy, pki):
    with Client(proxy.port, cert=pki.valid) as c:
        status, _, _ = c.request("GET", "/", headers={f"X-H{i}": "1" for i in range(30)})
    assert status == 431


def test_malformed_request_400(proxy, pki):
    data = exchange(
        proxy.port, pki.valid, b"GET / HTTP/1.1\r\nHost: api.localhost\r\nBad Header Without Colon\r\n\r\n"
    )
    assert data.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in data.lower()
    with Client(proxy.port, cert=pki.valid) as c:
        assert c.request("GET", "/")[0] == 200


def test_connect_method_refused(proxy, pki):
    data = exchange(proxy.port, pki.valid, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 405 ")


def test_garbage_instead_of_tls(proxy, pki):
    raw = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(2000))
    data = read_all(raw)  # an alert at most, then EOF
    raw.close()
    assert b"HTTP/1.1 200" not in data
    # a truncated / corrupted TLS record mid-handshake
    raw = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    raw.sendall(b"\x16\x03\x01\x40\x00" + os.urandom(100))
    raw.shutdown(socket.SHUT_WR)
    read_all(raw)
    raw.close()
    with Client(proxy.port, cert=pki.valid) as c:
        assert c.request("GET", "/after-garbage")[0] == 200


def test_garbage_after_handshake(proxy, pki):
    s = tls_socket(proxy.port, cert=pki.valid)
    s.sendall(b"GET / HTTP/1.1\r\nHost: api.localhost\r\n\r\n")
    s.recv(100)
    # corrupt the ciphertext stream under the TLS layer: a record that fails to decrypt
    with socket.socket(fileno=os.dup(s.fileno())) as under:
        under.sendall(b"\x17\x03\x03\x00\x10" + b"\x00" * 16)
    read_all(s)
    s.close()
    with Client(proxy.port, cert=pki.valid) as c:
        assert c.request("GET", "/still-fine")[0] == 200


def test_handshake_timeout_closes_silent_client(proxy):
    raw = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    assert read_all(raw) == b""  # closed by the proxy after handshake_timeout (2 s)
    raw.close()


def test_slowloris_head_timeout(proxy, pki):
    s = tls_socket(proxy.port, cert=pki.valid)
    s.sendall(b"GET / HTTP/1.1\r\n")
    # The proxy cuts the head after header_timeout (1 s); the deadline only bounds a hang
    # (it was 8 s, which a loaded machine could reach before the 408 arrived).
    deadline = time.monotonic() + 60
    data = b""
    try:
        while time.monotonic() < deadline:
            s.sendall(b"X-Slow: 1\r\n")  # keeps trickling, never finishes the head
            time.sleep(0.1)
    except (ssl.SSLError, OSError):
        pass
    data = read_all(s)
    s.close()
    assert data.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() < deadline  # the proxy cut it, not our loop


def test_idle_keepalive_closed(proxy, pki):
    with Client(proxy.port, cert=pki.valid) as c:
        assert c.request("GET", "/")[0] == 200
        assert read_all(c.sock) == b""  # the proxy closes the idle connection


def test_slow_request_body_408(proxy, pki):
    data = exchange(
        proxy.port, pki.valid, b"POST / HTTP/1.1\r\nHost: api.localhost\r\nContent-Length: 100\r\n\r\nabc"
    )
    assert data.startswith(b"HTTP/1.1 408 ")


def test_upstream_down_502(pki):
    port = free_port()
    with running_proxy(f"http://127.0.0.1:{port}", validator=make_validator(pki)) as p, Client(
        p.port, cert=pki.valid
    ) as c:
        status, _, body = c.request("GET", "/")
        assert status == 502 and b"Bad Gateway" in body
        assert p.record("/")["upstream_error"]
        assert c.request("GET", "/")[0] == 502  # keep-alive survives a 502


def test_upstream_garbage_502(pki):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def serve():
        conn, _ = srv.accept()
        conn.recv(65536)
        conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    with running_proxy(f"http://127.0.0.1:{srv.getsockname()[1]}", validator=make_validator(pki)) as p, Client(
        p.port, cert=pki.valid
    ) as c:
        assert c.request("GET", "/")[0] == 502
    srv.close()
    t.join(5)


def test_slow_upstream_504(proxy, pki):
    with Client(proxy.port, cert=pki.valid) as c:
        status, _, body = c.request("GET", "/slow?ms=4000")
    assert status == 504 and b"Gateway Timeout" in body


def test_connection_limit(pki, origin):
    """At the limit a newcomer evicts the oldest connection that is not in a request;
    when every connection is in a request, the newcomer is answered 503."""
    with running_proxy(
        f"http://127.0.0.1:{origin.port}", validator=make_validator(pki), limits=Limits(max_connections=2)
    ) as p:
        a = Client(p.port, cert=pki.valid)
        b = Client(p.port, cert=pki.valid)
        assert a.request("GET", "/")[0] == 200 and b.request("GET", "/")[0] == 200
        with Client(p.port, cert=pki.valid) as c:  # a, b idle: a (the oldest) makes room
            assert c.request("GET", "/")[0] == 200
        with pytest.raises((ssl.SSLError, ConnectionError, OSError, http.client.HTTPException)):
            a.request("GET", "/")
        a.close()
        b.close()
        assert p.server.stats["evicted"] >= 1
        # every slot in a request (slow origin): the newcomer gets 503, not a reset
        busy = [Client(p.port, cert=pki.valid) for _ in range(2)]
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            slow = [pool.submit(x.request, "GET", "/slow?ms=1500") for x in busy]
            for _ in range(100):  # wait until both requests are in the proxy
                if sum(not c.idle for c in p.server._conns.values()) == 2:
                    break
                time.sleep(0.02)
            with Client(p.port, cert=pki.valid) as d:
                status, resp, _ = d.request("GET", "/")
            assert status == 503
            assert resp.getheader("Retry-After") == "1"
            assert [f.result()[0] for f in slow] == [200, 200]
        for x in busy:
            x.close()
        assert p.server.stats["overflow_503"] >= 1


def test_rule_exception_is_500_and_server_survives(pki, origin):
    def broken(fields, auth):
        if fields.get("http.host") == b"boom.localhost":
            raise RuntimeError("boom")
        return Verdict("allow")

    with running_proxy(f"http://127.0.0.1:{origin.port}", decide=broken) as p:
        with Client(p.port, sni="boom.localhost") as c:
            assert c.request("GET", "/")[0] == 500
        with Client(p.port, sni="ok.localhost") as c:
            assert c.request("GET", "/")[0] == 200


def test_mtls_lookup_failure_for_the_host_is_500_and_server_survives(origin):
    # The Host check (421) asks the store about the Host header's name; a store that
    # fails then must answer like a failing rule (500), not drop the connection silently.
    def lookup(host):
        if host == "boom.localhost":
            raise RuntimeError("store is down")
        return None

    config = ProxyConfig(upstream=f"http://127.0.0.1:{origin.port}", listen_port=0)
    server = ProxyServer(config, mtls_lookup=lookup, access_log=AccessLog(None))
    with ServerThread(server) as thread:
        with Client(thread.port, sni="ok.localhost") as c:
            assert c.request("GET", "/", headers={"Host": "boom.localhost"})[0] == 500
        with Client(thread.port, sni="ok.localhost") as c:
            assert c.request("GET", "/")[0] == 200


def test_sigterm_graceful_shutdown(origin, tmp_path):
    """A SIGTERM while a request is in flight: the request completes, the process exits 0
    and the port stops accepting."""
    with cli_proxy(
        "--upstream", f"http://127.0.0.1:{origin.port}",
        "--access-log", str(tmp_path / "access.log"),
    ) as (proc, port):
        result = {}

        def slow_request():
            with Client(port, sni="www.localhost") as c:
                status, resp, _body = c.request("GET", "/slow?ms=1500")
                result["status"] = status
                result["connection"] = resp.getheader("connection")

        seen_before = len(origin.server.requests)
        t = threading.Thread(target=slow_request)
        t.start()
        for _ in range(1000):  # wait until the request is in flight at the origin
            if any(r["target"].startswith("/slow") for r in origin.server.requests[seen_before:]):
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        t.join(10)
        assert result.get("status") == 200
        assert result.get("connection") == "close"
        assert proc.wait(10) == 0
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        assert '"status":200' in (tmp_path / "access.log").read_text()


# -- request smuggling: the proxy and the origin must agree on where a request ends -------
def test_content_length_with_transfer_encoding_is_refused(proxy, pki):
    # TE.CL desync: the proxy reads the chunked body, an origin trusting Content-Length
    # would take the tail ("GET /smuggled") as a second request on the pooled connection.
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: api.localhost\r\n\r\n"
    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(smuggled), smuggled)
    data = exchange(
        proxy.port,
        pki.valid,
        b"POST /te-cl HTTP/1.1\r\nHost: api.localhost\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + body,
    )
    assert data.startswith(b"HTTP/1.1 400 "), data[:200]
    assert b"connection: close" in data.lower()
    assert data.count(b"HTTP/1.1 ") == 1
    with Client(proxy.port, cert=pki.valid) as c:
        assert c.request("GET", "/")[0] == 200


@pytest.mark.parametrize(
    ("case", "head"),
    [
        ("conflicting-content-length", b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
        ("bad-chunk-size", b"Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n"),
        ("negative-content-length", b"Content-Length: -3\r\n\r\n"),
        ("transfer-coding-not-chunked", b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
    ],
)
def test_ambiguous_framing_is_400(proxy, pki, case, head):
    data = exchange(proxy.port, pki.valid, b"POST /framing HTTP/1.1\r\nHost: api.localhost\r\n" + head)
    assert data.startswith(b"HTTP/1.1 400 "), (case, data[:200])
    assert data.count(b"HTTP/1.1 ") == 1
