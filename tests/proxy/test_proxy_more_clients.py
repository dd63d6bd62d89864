"""More real clients against the ``edgerules proxy`` CLI (real store, validator and
rules/mtls-required.json): curl sending a chain, HTTP/1.0, ``Connection: close``, streamed
and chunked uploads, pinned TLS versions, an expired certificate and a forged
``Client-Cert``; ``http.client`` keep-alive and pipelining; httpx; ``openssl s_client``;
and clients that misbehave (close mid-request, send an alert) without hurting the next."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from proxy_helpers import cli_proxy, client_context

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules" / "mtls-required.json"
HOST = "api.localhost"

pytestmark = pytest.mark.skipif(not RULES.exists(), reason="rules/mtls-required.json not present")
needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


@pytest.fixture(scope="module")
def dep(tmp_path_factory, origin, pki):
    """A CLI proxy whose store trusts, for api.localhost, the managed CA and an uploaded
    (BYOCA) root: the test PKI's root only, never its intermediate."""
    from edgerules.store import open_store

    tmp = tmp_path_factory.mktemp("more")
    store = open_store(str(tmp / "store.db"), create=True)
    store.managed_ca()
    issued = store.issue_certificate(common_name="managed-valid", validity_days=30)
    (tmp / "managed.crt").write_text(issued.record.certificate)
    (tmp / "managed.key").write_text(issued.private_key)
    (tmp / "managed.p12").write_bytes(
        store.export_pkcs12(issued.record.id, private_key=issued.private_key, password=b"s3cret")
    )
    uploaded = store.upload_ca(pki.ca.public_bytes(Encoding.PEM), name="test-root")
    store.enable_hostnames([HOST])
    store.enable_hostnames([HOST], uploaded.id)
    store.close()
    # the leaf alone (no intermediate in the file): the client cannot send the chain
    (tmp / "leaf-only.crt").write_bytes(pki.via_inter.cert.public_bytes(Encoding.PEM))
    log = tmp / "access.log"
    with cli_proxy(
        "--upstream",
        f"http://127.0.0.1:{origin.port}",
        "--rules",
        str(RULES),
        "--store",
        str(tmp / "store.db"),
        "--access-log",
        str(log),
        "--forward",
        "rfc9440,cf-cert",
    ) as (proc, port):
        yield {"port": port, "tmp": tmp, "log": log, "origin": origin, "pki": pki}
        proc.terminate()
        assert proc.wait(10) == 0


def log_record(dep, path, count=1):
    """The access-log records for ``path`` (written just after each response: wait)."""
    deadline = time.monotonic() + 30  # only bounds a hang
    while True:
        text = dep["log"].read_text() if dep["log"].exists() else ""
        # complete lines only: the log thread may be in the middle of writing the last one
        lines = text.split("\n")[:-1]
        recs = [r for r in (json.loads(x) for x in lines if x.strip()) if r["path"] == path]
        if len(recs) >= count or time.monotonic() > deadline:
            return recs


def curl(dep, path, *args, cert=None, key=None):
    port = dep["port"]
    pki = dep["pki"]
    if cert is not None:
        issued = getattr(pki, cert)
        args = ("--cert", str(issued.cert_path), "--key", str(key or issued.key_path), *args)
    result = subprocess.run(
        [
            "curl",
            "-sk",
            "--max-time",
            "10",
            "--resolve",
            f"{HOST}:{port}:127.0.0.1",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            *args,
            f"https://{HOST}:{port}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    body, _, status = result.stdout.rpartition("\n")
    return status, body, result


def echoed(body: str) -> dict:
    return json.loads(body)


def headers_of(record: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in record["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


def client_cert_value(issued) -> str:
    return ":" + base64.b64encode(issued.der).decode() + ":"


# -- curl ------------------------------------------------------------------------------
@needs_curl
def test_curl_sends_chain_verified_through_intermediate(dep):
    pki = dep["pki"]
    status, body, res = curl(dep, "/chain", cert="via_inter")
    assert status == "200", (body, res.stderr)
    hdrs = headers_of(echoed(body))
    assert hdrs["client-cert"] == [client_cert_value(pki.via_inter)]
    assert hdrs["cf-cert-verified"] == ["true"]
    # RFC 9440 Client-Cert-Chain carries the intermediate the client sent
    inter_b64 = base64.b64encode(pki.inter.public_bytes(Encoding.DER)).decode()
    assert inter_b64 in ",".join(hdrs.get("client-cert-chain", []))
    # the same leaf without its intermediate cannot be verified (only the root is trusted)
    status, body, res = curl(
        dep,
        "/leaf-only",
        "--cert",
        str(dep["tmp"] / "leaf-only.crt"),
        "--key",
        str(pki.via_inter.key_path),
    )
    assert status == "403", (body, res.stderr)
    assert "client certificate required" in body


@needs_curl
def test_curl_managed_and_byoca_both_trusted(dep):
    tmp = dep["tmp"]
    status, body, res = curl(
        dep, "/managed", "--cert", str(tmp / "managed.crt"), "--key", str(tmp / "managed.key")
    )
    assert status == "200", (body, res.stderr)
    status, body, res = curl(dep, "/byoca-direct", cert="valid")
    assert status == "200", (body, res.stderr)


@needs_curl
def test_curl_pkcs12_bundle(dep):
    """The bundle `edgerules` exports (certificate + key + managed CA) used by curl as is."""
    status, body, res = curl(
        dep, "/p12", "--cert-type", "P12", "--cert", f"{dep['tmp'] / 'managed.p12'}:s3cret"
    )
    assert status == "200", (body, res.stderr)
    assert headers_of(echoed(body))["cf-cert-verified"] == ["true"]


@needs_curl
def test_curl_http2_falls_back_to_http11(dep):
    """curl offering h2 by ALPN: the proxy selects none, curl speaks HTTP/1.1."""
    status, body, res = curl(dep, "/h2", "--http2", "-i", cert="valid")
    assert status == "200", (body, res.stderr)
    assert body.startswith("HTTP/1.1 200")


@needs_curl
def test_curl_http10(dep):
    status, body, res = curl(dep, "/h10", "--http1.0", "-i", cert="valid")
    assert status == "200", (body, res.stderr)
    head, _, payload = body.partition("\n\n")
    assert head.startswith("HTTP/1.")
    assert echoed(payload)["method"] == "GET"
    assert log_record(dep, "/h10")[0]["status"] == 200


@needs_curl
def test_curl_connection_close(dep):
    status, body, res = curl(dep, "/close-hdr", "-H", "Connection: close", "-i", cert="valid")
    assert status == "200", (body, res.stderr)
    head = body.partition("\n\n")[0].lower()
    assert "connection: close" in head


@needs_curl
def test_curl_data_binary_file(dep):
    data = dep["tmp"] / "upload.bin"
    data.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    status, body, res = curl(dep, "/upload", "--data-binary", f"@{data}", cert="valid")
    assert status == "200", (body, res.stderr)
    rec = echoed(body)
    assert rec["method"] == "POST"
    assert rec["body_length"] == 1024 * 1024


@needs_curl
def test_curl_chunked_upload(dep):
    data = dep["tmp"] / "upload-chunked.bin"
    data.write_bytes(b"z" * 300_000)
    status, body, res = curl(
        dep,
        "/chunked-up",
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        f"@{data}",
        cert="valid",
    )
    assert status == "200", (body, res.stderr)
    rec = echoed(body)
    assert rec["body_length"] == 300_000
    assert "chunked" in ",".join(headers_of(rec).get("transfer-encoding", [])).lower()


@needs_curl
def test_curl_chunked_upload_blocked_without_cert(dep):
    """A blocked request with a chunked body still gets the rule's 403: the proxy answers
    without reading the body and closes, lingering so the answer is not lost to a reset."""
    data = dep["tmp"] / "upload-chunked-small.bin"
    data.write_bytes(b"q" * 50_000)  # fits the socket buffers: curl stops to read
    status, body, res = curl(
        dep, "/chunked-blocked", "-H", "Transfer-Encoding: chunked", "--data-binary", f"@{data}"
    )
    assert status == "403", (body, res.stderr)
    assert "client certificate required" in body


@needs_curl
@pytest.mark.parametrize(("cert", "status"), [("valid", "200"), (None, "403")])
def test_curl_expect_100_continue(dep, cert, status):
    data = dep["tmp"] / "upload-expect.bin"
    data.write_bytes(b"e" * 200_000)
    path = f"/expect-{status}"
    got, body, res = curl(
        dep,
        path,
        "-H",
        "Expect: 100-continue",
        "--expect100-timeout",
        "10",
        "--data-binary",
        f"@{data}",
        cert=cert,
    )
    assert got == status, (body, res.stderr)
    if status == "200":
        assert echoed(body)["body_length"] == 200_000
    else:
        assert "client certificate required" in body


@needs_curl
@pytest.mark.parametrize(
    ("args", "version"),
    [(("--tlsv1.2", "--tls-max", "1.2"), "TLSv1.2"), (("--tlsv1.3",), "TLSv1.3")],
)
def test_curl_tls_versions(dep, args, version):
    path = "/tls-" + version
    status, body, res = curl(dep, path, *args, cert="valid")
    assert status == "200", (body, res.stderr)
    assert headers_of(echoed(body))["cf-cert-verified"] == ["true"]
    assert log_record(dep, path)[0]["tls_version"] == version


@needs_curl
def test_curl_expired_certificate(dep):
    status, body, res = curl(dep, "/expired", cert="expired")
    # the handshake completed (an HTTP status came back) and the rule blocked
    assert status == "403", (body, res.stderr)
    assert "client certificate required" in body
    rec = log_record(dep, "/expired")[0]
    assert rec["cert_presented"] and not rec["cert_verified"]
    assert "expired" in rec["cert_status"].lower() or rec["cert_status"].startswith("FAILED")


@needs_curl
def test_curl_forged_client_cert_with_valid_certificate(dep):
    pki = dep["pki"]
    forged = client_cert_value(pki.foreign)
    status, body, res = curl(
        dep,
        "/forged",
        "-H",
        f"Client-Cert: {forged}",
        "-H",
        "Client-Cert-Chain: :Zm9yZ2Vk:",
        "-H",
        "cf-cert-verified: false",
        cert="valid",
    )
    assert status == "200", (body, res.stderr)
    hdrs = headers_of(echoed(body))
    assert hdrs["client-cert"] == [client_cert_value(pki.valid)]
    assert "Zm9yZ2Vk" not in body
    assert hdrs["cf-cert-verified"] == ["true"]


# -- Python http.client / raw ssl ------------------------------------------------------
def _tls(dep, cert="valid"):
    ctx = client_context(getattr(dep["pki"], cert) if cert else None)
    raw = socket.create_connection(("127.0.0.1", dep["port"]), timeout=10)
    return ctx.wrap_socket(raw, server_hostname=HOST)


def test_http_client_keepalive(dep):
    import http.client

    conn = http.client.HTTPSConnection(
        HOST, dep["port"], context=client_context(dep["pki"].valid), timeout=10
    )
    conn.sock = _tls(dep)  # connected to 127.0.0.1 with SNI api.localhost
    try:
        for i in range(4):
            conn.request("GET", f"/ka{i}", headers={"Host": HOST})
            resp = conn.getresponse()
            data = resp.read()
            assert resp.status == 200, data
            assert echoed(data.decode())["target"] == f"/ka{i}"
        conn.request("POST", "/ka-post", body=b"a" * 5000, headers={"Host": HOST})
        resp = conn.getresponse()
        assert echoed(resp.read().decode())["body_length"] == 5000
    finally:
        conn.close()
    conns = {log_record(dep, p)[0]["conn"] for p in ("/ka0", "/ka1", "/ka2", "/ka3", "/ka-post")}
    assert len(conns) == 1  # one TLS connection carried them all


def _read_responses(sock, n):
    """Read ``n`` Content-Length framed responses from ``sock``; returns their bodies."""
    buf = b""
    out = []
    while len(out) < n:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            assert chunk, (out, buf)
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            chunk = sock.recv(65536)
            assert chunk
            rest += chunk
        out.append((lines[0], rest[:length]))
        buf = rest[length:]
    return out


def test_pipelined_requests_answered_in_order(dep):
    with _tls(dep) as sock:
        sock.sendall(
            b"GET /pipe1 HTTP/1.1\r\nHost: api.localhost\r\n\r\n"
            b"POST /pipe2 HTTP/1.1\r\nHost: api.localhost\r\nContent-Length: 3\r\n\r\nabc"
            b"GET /pipe3 HTTP/1.1\r\nHost: api.localhost\r\n\r\n"
        )
        answers = _read_responses(sock, 3)
    assert [a[0].split(b" ")[1] for a in answers] == [b"200"] * 3
    assert [json.loads(a[1])["target"] for a in answers] == ["/pipe1", "/pipe2", "/pipe3"]
    assert json.loads(answers[1][1])["body_length"] == 3


def test_pipelined_blocked_then_next(dep):
    """Without a certificate both pipelined requests get the rule's 403, in order."""
    with _tls(dep, cert=None) as sock:
        sock.sendall(
            b"GET /pb1 HTTP/1.1\r\nHost: api.localhost\r\n\r\n"
            b"GET /pb2 HTTP/1.1\r\nHost: api.localhost\r\n\r\n"
        )
        answers = _read_responses(sock, 2)
    assert [a[0].split(b" ")[1] for a in answers] == [b"403", b"403"]
    assert [r["path"] for r in (log_record(dep, "/pb1")[0], log_record(dep, "/pb2")[0])] == [
        "/pb1",
        "/pb2",
    ]


# -- httpx -----------------------------------------------------------------------------
def _httpx_get(client, dep, path, **kw):
    # connect to 127.0.0.1 with SNI and Host api.localhost (httpcore's sni_hostname)
    return client.request(
        kw.pop("method", "GET"),
        f"https://127.0.0.1:{dep['port']}{path}",
        headers={"Host": HOST},
        extensions={"sni_hostname": HOST},
        **kw,
    )


def test_httpx_client_certificate_two_requests_one_connection(dep):
    httpx = pytest.importorskip("httpx")
    pki = dep["pki"]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # httpx 0.28 deprecates cert=
        client = httpx.Client(
            cert=(str(pki.valid.cert_path), str(pki.valid.key_path)), verify=False, timeout=10
        )
    with client:
        r1 = _httpx_get(client, dep, "/hx1")
        r2 = _httpx_get(client, dep, "/hx2", method="POST", content=b"x" * 10)
    assert (r1.status_code, r2.status_code) == (200, 200), (r1.text, r2.text)
    assert r2.json()["body_length"] == 10
    assert headers_of(r1.json())["client-cert"] == [client_cert_value(pki.valid)]
    assert log_record(dep, "/hx1")[0]["conn"] == log_record(dep, "/hx2")[0]["conn"]


def test_httpx_ssl_context_without_certificate_blocked(dep):
    httpx = pytest.importorskip("httpx")
    with httpx.Client(verify=client_context(None), timeout=10) as client:
        r1 = _httpx_get(client, dep, "/hx-nocert")
        r2 = _httpx_get(client, dep, "/hx-nocert2")
    assert (r1.status_code, r2.status_code) == (403, 403)
    assert r1.json()["error"] == "client certificate required"
    assert log_record(dep, "/hx-nocert")[0]["conn"] == log_record(dep, "/hx-nocert2")[0]["conn"]


# -- openssl s_client ------------------------------------------------------------------
def _s_client(dep, eof_flag: str, request: bytes) -> subprocess.CompletedProcess:
    """`openssl s_client` with the valid client certificate, SNI api.localhost, sending
    ``request`` on stdin; ``eof_flag`` says what it does when stdin ends."""
    pki = dep["pki"]
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{dep['port']}", "-servername", HOST,
         "-cert", str(pki.valid.cert_path), "-key", str(pki.valid.key_path), "-quiet", eof_flag],
        input=request,
        capture_output=True,
        timeout=20,
    )


@needs_openssl
def test_openssl_s_client_with_certificate(dep):
    result = _s_client(dep, "-ign_eof",
                       b"GET /s-client HTTP/1.1\r\nHost: api.localhost\r\nConnection: close\r\n\r\n")
    assert result.stdout.startswith(b"HTTP/1.1 200 "), (result.stdout, result.stderr)
    payload = result.stdout.partition(b"\r\n\r\n")[2]
    assert json.loads(payload)["target"] == "/s-client"


# -- misbehaving clients -----------------------------------------------------------------
def _still_serving(dep, path):
    with _tls(dep) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: api.localhost\r\nConnection: close\r\n\r\n".encode()
        )
        ((status, body),) = _read_responses(sock, 1)
    assert status.split(b" ")[1] == b"200", body
    assert json.loads(body)["target"] == path


def test_client_closing_mid_request_does_not_hurt_the_next(dep):
    # mid head
    with _tls(dep) as sock:
        sock.sendall(b"GET /half HTTP/1.1\r\nHost: api.loc")
    # mid body
    with _tls(dep) as sock:
        sock.sendall(
            b"POST /half-body HTTP/1.1\r\nHost: api.localhost\r\nContent-Length: 100000\r\n\r\n"
            + b"x" * 500
        )
    # mid chunked body, abrupt TCP reset (no close_notify)
    sock = _tls(dep)
    sock.sendall(
        b"POST /half-chunk HTTP/1.1\r\nHost: api.localhost\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc"
    )
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()
    # mid handshake: a ClientHello prefix, then gone
    with socket.create_connection(("127.0.0.1", dep["port"]), timeout=10) as plain:
        plain.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    _still_serving(dep, "/after-close")


def test_client_sending_tls_alert_does_not_hurt_the_next(dep):
    # an alert instead of a ClientHello
    with socket.create_connection(("127.0.0.1", dep["port"]), timeout=10) as plain:
        plain.sendall(b"\x15\x03\x01\x00\x02\x02\x28")  # fatal handshake_failure
        plain.settimeout(5)
        try:
            plain.recv(100)
        except OSError:
            pass
    # a client refusing the server certificate (verification on): the client aborts the
    # handshake with a fatal alert (unknown_ca)
    strict = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    strict.load_verify_locations(cadata=dep["pki"].ca.public_bytes(Encoding.PEM).decode())
    with (
        socket.create_connection(("127.0.0.1", dep["port"]), timeout=10) as raw,
        pytest.raises(ssl.SSLError),
    ):
        strict.wrap_socket(raw, server_hostname=HOST)
    _still_serving(dep, "/after-alert")


def test_clean_tls_shutdown_answered_with_close_notify(dep):
    """A client closing TLS cleanly (close_notify alert) gets the proxy's close_notify
    back (RFC 8446 §6.1): Python's ``unwrap()`` waits for it."""
    sock = _tls(dep)
    sock.sendall(b"GET /pre-alert HTTP/1.1\r\nHost: api.localhost\r\n\r\n")
    ((status, _body),) = _read_responses(sock, 1)
    assert status.split(b" ")[1] == b"200"
    plain = sock.unwrap()  # raises SSLEOFError if the proxy just drops the TCP connection
    plain.close()
    _still_serving(dep, "/after-close-notify")


def test_blocked_upload_answer_survives_unread_body(dep):
    """No certificate, a POST whose body is still arriving: the 403 is sent without
    reading the body and the connection closed; the client still reads the 403 (the
    proxy lingers instead of resetting the connection over unread input)."""
    with _tls(dep, cert=None) as sock:
        sock.sendall(
            b"POST /blocked-upload HTTP/1.1\r\nHost: api.localhost\r\nContent-Length: 400000\r\n\r\n"
            + b"b" * 200_000
        )
        log_record(dep, "/blocked-upload")  # the 403 has been written and the connection closed
        # the client keeps uploading, like curl does: without lingering, the proxy's close
        # over unread input resets the connection and these sends fail (curl: status 000)
        for _ in range(50):
            sock.sendall(b"b" * 1000)
        ((status, body),) = _read_responses(sock, 1)
    assert status.split(b" ")[1] == b"403", body
    assert b"client certificate required" in body


@needs_curl
def test_curl_http2_prior_knowledge_refused_then_served(dep):
    """An HTTP/2 preface on a connection that did not negotiate h2 is not HTTP/1.1:
    refused (no 200, no crash) and the next client is served."""
    status, body, res = curl(dep, "/h2pk", "--http2-prior-knowledge", cert="valid")
    assert status != "200", (body, res.stderr)
    _still_serving(dep, "/after-h2pk")


@needs_curl
@pytest.mark.parametrize(
    ("args", "target"),
    [
        (("--request-target", "https://api.localhost/absolute?x=1"), "/absolute?x=1"),
        (("-X", "OPTIONS", "--request-target", "*"), "*"),
    ],
)
def test_curl_request_target_forms(dep, args, target):
    status, body, res = curl(dep, "/ignored", *args, cert="valid")
    assert status == "200", (body, res.stderr)
    assert echoed(body)["target"] == target


def test_request_then_tcp_half_close_still_answered(dep):
    """A client that sends its request and then shuts its sending side (FIN) still reads
    the answer."""
    sock = _tls(dep)
    try:
        sock.sendall(b"GET /half-closed HTTP/1.1\r\nHost: api.localhost\r\n\r\n")
        socket.socket.shutdown(sock, socket.SHUT_WR)  # TCP FIN under TLS, no close_notify
        ((status, body),) = _read_responses(sock, 1)
    finally:
        sock.close()
    assert status.split(b" ")[1] == b"200"
    assert json.loads(body)["target"] == "/half-closed"


def test_pipelined_after_connection_close_not_answered(dep):
    with _tls(dep) as sock:
        sock.sendall(
            b"GET /pc1 HTTP/1.1\r\nHost: api.localhost\r\nConnection: close\r\n\r\n"
            b"GET /pc2 HTTP/1.1\r\nHost: api.localhost\r\n\r\n"
        )
        ((status, body),) = _read_responses(sock, 1)
        assert status.split(b" ")[1] == b"200"
        assert json.loads(body)["target"] == "/pc1"
        rest = b""
        try:
            while chunk := sock.recv(65536):
                rest += chunk
        except (ssl.SSLError, OSError):
            pass
    assert rest == b""
    assert log_record(dep, "/pc2", count=0) == []


@needs_openssl
def test_openssl_s_client_stdin_eof(dep):
    """s_client with -no_ign_eof: it sends close_notify and exits as soon as stdin ends,
    right after the request: the proxy still handles the request it read, then closes."""
    result = _s_client(dep, "-no_ign_eof", b"GET /s-eof HTTP/1.1\r\nHost: api.localhost\r\n\r\n")
    rec = log_record(dep, "/s-eof")
    assert rec and rec[0]["status"] == 200, result.stderr
    _still_serving(dep, "/after-s-eof")
