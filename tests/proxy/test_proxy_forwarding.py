"""What reaches the origin: certificate headers exactly per Cloudflare's forwarding recipes
(https://developers.cloudflare.com/ssl/client-certificates/forward-a-client-certificate/),
never a client-injected copy; X-Forwarded-*, Host and hop-by-hop handling; bodies both ways."""

from __future__ import annotations

import base64
import hashlib

import pytest
from proxy_helpers import (
    MTLS_HOST,
    PLAIN_HOST,
    Client,
    make_validator,
    origin_headers,
    running_proxy,
)

from edgerules.enforcement.decision import Verdict
from edgerules.proxy.config import ForwardingPolicy

INJECTED = {
    "Client-Cert": ":aW5qZWN0ZWQ=:",
    "client-cert-chain": ":aW5qZWN0ZWQ=:",
    "CF-Client-Cert-Der-Base64": "aW5qZWN0ZWQ=",
    "Cf-Client-Cert-Sha256": "00" * 32,
    "cf-cert-verified": "true",
    "CF-CERT-SERIAL": "DEADBEEF",
    "cf-cert-something-new": "x",
}
ALL = ForwardingPolicy(rfc9440=True, cf_client_cert=True, cf_cert=True, cf_client_cert_every_request=True)


def allow_all(fields, auth):
    return Verdict("allow")


@pytest.fixture(scope="module")
def proxy(pki, origin):
    validator = make_validator(pki, revoked=[pki.revoked])
    with running_proxy(
        f"http://127.0.0.1:{origin.port}",
        validator=validator,
        decide=allow_all,
        forwarding=ALL,
        forwarding_by_host={PLAIN_HOST: ForwardingPolicy(rfc9440=False)},
    ) as p:
        yield p


def fetch(proxy, cert, sni=MTLS_HOST, headers=None, path="/f"):
    with Client(proxy.port, sni=sni, cert=cert) as c:
        status, echo = c.json("GET", path, headers=headers)
    assert status == 200
    return origin_headers(echo)


def test_valid_certificate_headers_and_injection_removed(proxy, pki):
    h = fetch(proxy, pki.valid, headers=INJECTED)
    leaf_b64 = base64.b64encode(pki.valid.der).decode()
    assert h["client-cert"] == [f":{leaf_b64}:"]
    assert "client-cert-chain" not in h  # only a leaf was sent
    assert h["cf-client-cert-der-base64"] == [leaf_b64]
    assert h["cf-client-cert-sha256"] == [hashlib.sha256(pki.valid.der).hexdigest()]
    assert h["cf-cert-verified"] == ["true"]
    assert h["cf-cert-presented"] == ["true"]
    assert h["cf-cert-revoked"] == ["false"]
    assert h["cf-cert-serial"] == [pki.valid.serial_hex]
    assert "cf-cert-something-new" not in h
    cf_cert = sorted(k for k in h if k.startswith("cf-cert-"))
    assert len(cf_cert) == 17
    for name in cf_cert:
        assert len(h[name]) == 1, name  # exactly one copy: ours


@pytest.mark.parametrize("cert", ["revoked", "self_signed", "expired", "foreign", None])
def test_untrusted_certificates_get_no_client_cert(proxy, pki, cert):
    issued = getattr(pki, cert) if cert else None
    h = fetch(proxy, issued, headers=INJECTED)
    for name in ("client-cert", "client-cert-chain", "cf-client-cert-der-base64", "cf-client-cert-sha256"):
        assert name not in h, name
    assert h["cf-cert-presented"] == ["true" if cert else "false"]
    assert h["cf-cert-revoked"] == ["true" if cert == "revoked" else "false"]
    assert h["cf-cert-verified"] == ["true" if cert == "revoked" else "false"]
    assert "cf-cert-something-new" not in h


def test_per_host_policy_and_no_mtls_host(proxy, pki):
    h = fetch(proxy, pki.valid, sni=PLAIN_HOST, headers=INJECTED)
    # www.localhost: rfc9440 off, and no certificate was even requested
    assert "client-cert" not in h and "cf-client-cert-sha256" not in h
    assert not any(k.startswith("cf-cert-") for k in h)


def test_underscore_spellings_of_certificate_headers_are_removed(proxy, pki):
    # CGI/WSGI origins (and PHP, Rack) read "Client_Cert" as HTTP_CLIENT_CERT, the same
    # variable as "Client-Cert": a client must not inject a certificate that way.
    forged = {"Client_Cert": ":aW5qZWN0ZWQ=:", "CF_CERT_VERIFIED": "true",
              "cf-client_cert-sha256": "00" * 32, "X_Keep_Me": "1"}
    for sni, cert in ((PLAIN_HOST, None), (MTLS_HOST, None), (MTLS_HOST, pki.valid)):
        h = fetch(proxy, cert, sni=sni, headers=forged)
        normalised = [k.replace("_", "-") for k in h]
        assert normalised.count("client-cert") == (1 if cert else 0), h
        assert normalised.count("cf-cert-verified") == (1 if sni == MTLS_HOST else 0), h
        assert "cf-client-cert-sha256" not in normalised or cert is not None
        assert "x_keep_me" in h


def test_x_forwarded_and_host(proxy, pki):
    h = fetch(
        proxy,
        pki.valid,
        headers={
            "X-Forwarded-For": "203.0.113.7",
            "X-Forwarded-Proto": "http",
            "X-Forwarded-Host": "evil.example",
        },
    )
    assert h["x-forwarded-for"] == ["203.0.113.7, 127.0.0.1"]
    assert h["x-forwarded-proto"] == ["https"]
    assert h["x-forwarded-host"] == [MTLS_HOST]
    assert h["host"] == [MTLS_HOST]


def test_hop_by_hop_removed(proxy, pki):
    h = fetch(
        proxy,
        pki.valid,
        headers={
            "Connection": "keep-alive, X-Secret-Hop",
            "X-Secret-Hop": "1",
            "Keep-Alive": "timeout=5",
            "Proxy-Connection": "keep-alive",
            "TE": "trailers",
            "Upgrade": "h2c",
            "X-Kept": "yes",
        },
    )
    for name in ("connection", "x-secret-hop", "keep-alive", "proxy-connection", "te", "upgrade"):
        assert name not in h, name
    assert h["x-kept"] == ["yes"]


def test_cf_client_cert_first_request_only(pki, origin):
    validator = make_validator(pki)
    policy = ForwardingPolicy(rfc9440=False, cf_client_cert=True)  # default: first request only
    assert policy.cf_client_cert_every_request is False
    with running_proxy(f"http://127.0.0.1:{origin.port}", validator=validator, forwarding=policy) as p, Client(
        p.port, cert=pki.valid
    ) as c:
        first = origin_headers(c.json("GET", "/1")[1])
        second = origin_headers(c.json("GET", "/2")[1])
    assert "cf-client-cert-sha256" in first
    assert "cf-client-cert-sha256" not in second


def test_request_bodies_stream_to_origin(proxy, pki):
    with Client(proxy.port, cert=pki.valid) as c:
        status, echo = c.json("POST", "/upload", body=b"a" * 300_000, headers={"Content-Type": "x/y"})
        assert status == 200 and echo["body_length"] == 300_000 and echo["method"] == "POST"

        def gen():
            for _ in range(10):
                yield b"b" * 1000

        c.conn.putrequest("PUT", "/chunked-up", skip_host=True)
        c.conn.putheader("Host", MTLS_HOST)
        c.conn.putheader("Transfer-Encoding", "chunked")
        c.conn.endheaders()
        for chunk in gen():
            c.conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        c.conn.send(b"0\r\n\r\n")
        resp = c.conn.getresponse()
        import json

        echo = json.loads(resp.read())
        assert resp.status == 200 and echo["body_length"] == 10_000


def test_response_bodies_stream_back(proxy, pki):
    with Client(proxy.port, cert=pki.valid) as c:
        status, resp, body = c.request("GET", "/big?kb=2048")
        assert status == 200 and len(body) == 2048 * 1024
        status, resp, body = c.request("GET", "/chunked")
        assert status == 200 and body.startswith(b"{") and resp.getheader("transfer-encoding") == "chunked"
        status, resp, body = c.request("HEAD", "/f")
        assert status == 200 and body == b""
        # the connection is still usable after all of that
        assert c.request("GET", "/f")[0] == 200


def test_expect_100_continue(proxy, pki):
    import socket

    from proxy_helpers import client_context

    raw = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    s = client_context(pki.valid).wrap_socket(raw, server_hostname=MTLS_HOST)
    s.sendall(
        b"POST /expect HTTP/1.1\r\nHost: api.localhost\r\nContent-Length: 5\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    interim = s.recv(4096)
    assert interim.startswith(b"HTTP/1.1 100 ")
    s.sendall(b"hello")
    data = b""
    while b'"body_length": 5' not in data:
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    assert data.startswith(b"HTTP/1.1 200 ")
    assert b'["expect"' not in data.lower().split(b"\r\n\r\n", 1)[1]  # not forwarded upstream
    s.close()


def test_stale_pooled_connection_is_retried(pki):
    """An origin that silently closes keep-alive connections after each response: the
    pooled connection is stale on the next request and the proxy retries on a new one."""
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    stop = threading.Event()

    def serve():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                buf = b""
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with running_proxy(f"http://127.0.0.1:{srv.getsockname()[1]}", decide=allow_all) as p, Client(
            p.port, sni=PLAIN_HOST
        ) as c:
            for _ in range(4):
                status, _, body = c.request("GET", "/")
                assert (status, body) == (200, b"ok")
    finally:
        stop.set()
        t.join(5)
        srv.close()
