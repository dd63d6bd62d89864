"""The admin listener (issue 13 item 5): /healthz, /readyz, /metrics on a real proxy —
scraped and parsed with prometheus_client's parser —, /readyz going not-ready when the
store is unreachable, loopback-only binding, and what an attacker can do to the port."""

from __future__ import annotations

import asyncio
import json
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ops_helpers import ProxyProcess, admin_request, parse_metrics, value, wait_until
from proxy_helpers import MTLS_HOST, PLAIN_HOST, Client, make_validator

from edgerules.enforcement.decision import RulesetDecider
from edgerules.proxy.accesslog import AccessLog
from edgerules.proxy.admin import AdminServer
from edgerules.proxy.config import ProxyConfig
from edgerules.proxy.ops import Operations
from edgerules.proxy.server import ProxyServer, ServerThread
from edgerules.rulesets import Ruleset

EDGERULES = Path(sys.executable).parent / "edgerules"
RULES = {
    "name": "ops",
    "rules": [
        {
            "ref": "need_cert",
            "expression": f'http.host eq "{MTLS_HOST}" and not cf.tls_client_auth.cert_verified',
            "action": "block",
        },
        {"ref": "no_admin", "expression": 'http.request.uri.path eq "/admin"', "action": "block"},
    ],
}


# -- in-process: the proxy with mTLS, its admin listener --------------------------------
@pytest.fixture
def ops_proxy(pki, origin):
    validator = make_validator(pki)
    server = ProxyServer(
        ProxyConfig(upstream=f"http://127.0.0.1:{origin.port}", listen_port=0),
        RulesetDecider(Ruleset.from_dict(RULES), version="v1"),
        mtls_lookup=lambda sni: validator if sni == MTLS_HOST else None,
        access_log=AccessLog(None),
    )
    ops = Operations(server, load=None, admin_listen=("127.0.0.1", 0))
    thread = ServerThread(server).start()

    async def start() -> None:
        ops.start()

    thread.call(start())
    try:
        yield thread, ops
    finally:
        thread.stop(3.0)


def test_metrics_count_requests_validations_handshakes_and_the_cache(pki, ops_proxy) -> None:
    thread, ops = ops_proxy
    port = ops.admin.port
    for cert in (pki.valid, pki.valid, pki.foreign, pki.self_signed, None):
        with Client(thread.port, MTLS_HOST, cert) as c:
            c.request(path="/x")
            c.request(path="/admin")
    with Client(thread.port, PLAIN_HOST) as c:
        c.request(path="/y")
    with Client(thread.port, MTLS_HOST, pki.valid) as open_conn:
        open_conn.request(path="/z")

        def scrape():
            # A request is counted just after its response went out: wait for the last.
            status, headers, body = admin_request(port, "GET", "/metrics")
            assert status == 200
            assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
            m = parse_metrics(body)
            return m if value(m, "edgerules_request_duration_seconds_count") == 12 else None

        m = wait_until(scrape, what="12 requests counted")
    # requests by outcome and rule: the verified certificate's /x (twice), /y and /z
    # allowed; the 3 others blocked by need_cert on both paths; /admin blocked for the
    # verified one.
    assert value(m, "edgerules_requests_total", outcome="allow", rule="none") == 2 + 1 + 1
    assert value(m, "edgerules_requests_total", outcome="block", rule="need_cert") == 6
    assert value(m, "edgerules_requests_total", outcome="block", rule="no_admin") == 2
    # verification results by reason, once per connection
    v = "edgerules_client_cert_validations_total"
    assert value(m, v, result="verified", reason="") == 3
    assert value(m, v, result="failed", reason="unable to get local issuer certificate") == 1
    assert value(m, v, result="failed", reason="self signed certificate") == 1
    assert value(m, v, result="absent", reason="") == 1
    assert value(m, "edgerules_tls_handshake_duration_seconds_count") == 7
    assert value(m, "edgerules_tls_handshake_duration_seconds_bucket", le="+Inf") == 7
    # the validator's result cache: the second and third connection of the valid
    # certificate were hits; the first, the foreign and the self-signed one misses (no
    # certificate at all never reaches the cache)
    hits = value(m, "edgerules_validator_cache_hits_total")
    misses = value(m, "edgerules_validator_cache_misses_total")
    assert hits == 2 and misses == 3
    assert value(m, "edgerules_validator_cache_hit_ratio") == pytest.approx(2 / 5)
    assert value(m, "edgerules_open_connections") == 1
    assert value(m, "edgerules_connections_total") == 7
    assert value(m, "edgerules_log_lines_dropped_total", log="access") == 0
    assert value(m, "edgerules_ruleset_info", version="v1", generation="1") == 1


def test_rule_labels_stay_bounded_whatever_clients_send(ops_proxy) -> None:
    """Distinct paths, hosts and SNIs create no series: only rule refs of the loaded
    ruleset (and none/other) are labels."""
    thread, ops = ops_proxy
    for i in range(40):
        with Client(thread.port, f"h{i}.localhost") as c:
            c.request(path=f"/p{i}", headers={"Host": f"h{i}.localhost"})
    m = parse_metrics(admin_request(ops.admin.port, "GET", "/metrics")[2])
    series = m["edgerules_requests_total"]
    assert set(series) == {(("outcome", "allow"), ("rule", "none"))}
    assert sum(len(s) for s in m.values()) < 100


def test_healthz_and_readyz_without_a_store(ops_proxy) -> None:
    _thread, ops = ops_proxy
    assert admin_request(ops.admin.port, "GET", "/healthz")[:3:2] == (200, b"ok\n")
    status, headers, body = admin_request(ops.admin.port, "GET", "/readyz")
    answer = json.loads(body)
    assert status == 200 and headers["content-type"] == "application/json"
    assert answer["ready"] is True
    assert answer["checks"]["store"] == {"ok": True, "detail": "no store configured"}
    assert answer["checks"]["rules"]["version"] == "v1"


def test_readyz_is_not_ready_while_shutting_down(ops_proxy) -> None:
    thread, ops = ops_proxy
    thread.server.draining = True  # what shutdown() sets first
    status, _h, body = admin_request(ops.admin.port, "GET", "/readyz")
    assert status == 503 and json.loads(body)["checks"]["serving"]["ok"] is False
    thread.server.draining = False


def test_the_public_listener_never_serves_admin_paths(ops_proxy) -> None:
    thread, _ops = ops_proxy
    for path in ("/metrics", "/healthz", "/readyz"):
        with Client(thread.port, PLAIN_HOST) as c:
            status, resp, data = c.request(path=path)
        assert status == 200 and resp.getheader("x-origin") == "echo", path
        assert json.loads(data)["target"] == path  # the origin's answer, not ours
    with Client(thread.port, PLAIN_HOST) as c:
        status, resp, _data = c.request("POST", "/reload")
    assert resp.getheader("x-origin") == "echo"


# -- a real store: /readyz follows it -----------------------------------------------------
def _make_store(tmp_path: Path) -> Path:
    store = tmp_path / "store.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGERULES_")}
    env["EDGERULES_STORE"] = str(store)
    proc = subprocess.run([str(EDGERULES), "ca", "create"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return store


def test_readyz_goes_not_ready_when_the_store_file_goes_away(tmp_path, origin) -> None:
    store = _make_store(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGERULES_")}
    with ProxyProcess("--upstream", f"http://127.0.0.1:{origin.port}", "--store", str(store),
                      "--access-log", "off", env=env) as proxy:
        status, _h, body = proxy.admin("GET", "/readyz")
        store_check = json.loads(body)["checks"]["store"]
        assert status == 200, body
        assert store_check["reachable"] and store_check["state_loaded"]
        assert set(store_check["versions"]) == {"trust", "revocation"}
        m = proxy.metrics()
        assert value(m, "edgerules_store_reachable") == 1
        assert value(m, "edgerules_store_state_version", counter="trust") >= 0
        assert "edgerules_store_last_sync_age_seconds" in m
        moved = tmp_path / "moved.db"
        mark = proxy.mark()
        store.rename(moved)  # removed from where the proxy was told to read it
        status, body = wait_until(
            lambda: (lambda r: r if r[0] == 503 else None)(
                (lambda s, _h, b: (s, b))(*proxy.admin("GET", "/readyz"))
            ),
            what="/readyz to answer 503",
        )
        answer = json.loads(body)
        assert answer["ready"] is False
        assert "No such file" in answer["checks"]["store"]["error"]
        assert answer["checks"]["store"]["state_loaded"] is True  # still enforced
        assert value(proxy.metrics(), "edgerules_store_reachable") == 0
        assert "store unreachable" in proxy.wait_for("store unreachable", after=mark)
        # The outage is logged once, not once per probe.
        time.sleep(1.5)
        assert proxy.stderr_since(mark).count("store unreachable") == 1
        # Back where it was: ready again.
        moved.rename(store)
        wait_until(lambda: proxy.admin("GET", "/readyz")[0] == 200, what="ready again")
        assert "store reachable again" in proxy.wait_for("reachable again", after=mark)


def test_a_replaced_store_file_is_followed_and_stays_ready(tmp_path, origin) -> None:
    """A store file restored under the same name is reopened by the store (its state
    versions jump past every value shown): ready, and the metrics show the jump."""
    store = _make_store(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGERULES_")}
    with ProxyProcess("--upstream", f"http://127.0.0.1:{origin.port}", "--store", str(store),
                      "--access-log", "off", env=env) as proxy:
        assert proxy.admin("GET", "/readyz")[0] == 200
        before = value(proxy.metrics(), "edgerules_store_state_version", counter="trust")
        copy = tmp_path / "copy.db"
        copy.write_bytes(store.read_bytes())
        copy.replace(store)  # a restored backup: another file at the same path
        wait_until(
            lambda: value(proxy.metrics(), "edgerules_store_state_version", counter="trust")
            > before,
            what="the trust version to jump",
        )
        assert proxy.admin("GET", "/readyz")[0] == 200


class _PlainStore:
    """A store without ``health()`` (an embedder's): the probe reads its counters."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.fail = False

    def versions(self) -> tuple[int, int]:
        if self.fail:
            raise OSError("database is locked")
        return 3, 4


def test_the_probe_of_a_store_without_health(tmp_path) -> None:
    from edgerules.proxy.readiness import StoreProbe

    path = tmp_path / "plain.db"
    path.write_bytes(b"SQLite format 3\x00")
    store = _PlainStore(path)
    probe = StoreProbe(store)
    assert probe.status().state_loaded is False and probe.status().reachable is False
    probe.probe()
    st = probe.status()
    assert st.reachable and st.state_loaded and st.versions == {"trust": 3, "revocation": 4}
    store.fail = True
    probe.probe()
    st = probe.status()
    assert not st.reachable and st.state_loaded and "database is locked" in st.error
    store.fail = False
    path.rename(tmp_path / "elsewhere.db")  # an open connection would still read it
    probe.probe()
    assert "is gone" in probe.status().error
    path.write_bytes(b"SQLite format 3\x00")  # another file at the same path
    probe.probe()
    assert "was replaced" in probe.status().error
    (tmp_path / "elsewhere.db").replace(path)
    probe.probe()
    assert probe.status().reachable


# -- binding: loopback only unless allowed ------------------------------------------------
def _run_proxy(origin, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgerules", "proxy", "--listen", "127.0.0.1:0", "--upstream",
         f"http://127.0.0.1:{origin.port}", "--access-log", "off", *args],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "EDGERULES_STORE": ""},
    )


@pytest.mark.parametrize("address", ["0.0.0.0:0", "[::]:0", "192.0.2.1:0", "example.com:0"])
def test_a_non_loopback_admin_address_is_refused(origin, address) -> None:
    proc = _run_proxy(origin, "--admin-listen", address)
    assert proc.returncode == 2, proc.stderr  # could not run (docs/cli.md)
    assert "--admin-allow-remote" in proc.stderr and "Traceback" not in proc.stderr
    assert "listening on" not in proc.stderr


def test_a_busy_admin_port_is_a_start_up_error(origin) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _run_proxy(origin, "--admin-listen", f"127.0.0.1:{port}")
    assert proc.returncode == 2 and "cannot listen on admin address" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_remote_admin_address_with_the_explicit_flag(origin) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgerules", "proxy", "--listen", "127.0.0.1:0", "--upstream",
         f"http://127.0.0.1:{origin.port}", "--access-log", "off",
         "--admin-listen", "0.0.0.0:0", "--admin-allow-remote"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "EDGERULES_STORE": ""},
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "admin on http://0.0.0.0:" in line:
                port = int(line.split("0.0.0.0:")[1].split()[0])
                break
        else:
            raise AssertionError("no admin line")
        assert admin_request(port, "GET", "/healthz")[0] == 200
    finally:
        proc.terminate()
        proc.wait(20)
        assert proc.stderr is not None
        proc.stderr.close()


# -- attacker tests on the admin port ----------------------------------------------------
@pytest.fixture
def admin():
    async def ok():
        return 200, "text/plain", b"ok\n"

    server = AdminServer("127.0.0.1", 0, {("GET", "/healthz"): ok})
    server.head_timeout = 0.5
    server.max_connections = 4
    thread = ServerThread(server).start()
    try:
        yield server
    finally:
        thread.stop(1.0)


def _exchange(port: int, data: bytes, *, timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def test_admin_answers_what_it_knows_and_nothing_else(admin) -> None:
    assert _exchange(admin.port, b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n").endswith(b"ok\n")
    head = _exchange(admin.port, b"HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")  # no body
    assert _exchange(admin.port, b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n").startswith(b"HTTP/1.1 404")
    answer = _exchange(admin.port, b"DELETE /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 405") and b"Allow: GET, HEAD" in answer
    assert _exchange(admin.port, b"\x16\x03\x01garbage\r\n\r\n").startswith(b"HTTP/1.1 400")


def test_a_slow_request_head_is_cut_off(admin) -> None:
    with socket.create_connection(("127.0.0.1", admin.port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        out = b""
        for _ in range(600):  # a slowloris: one header byte at a time, until answered
            try:
                s.sendall(b"X")
            except OSError:
                break
            if select.select([s], [], [], 0.05)[0]:
                break
        s.settimeout(10)
        try:
            while chunk := s.recv(4096):
                out += chunk
        except OSError:
            pass
    assert out.startswith(b"HTTP/1.1 408")


def test_a_huge_head_or_a_body_is_refused(admin) -> None:
    huge = b"GET /healthz HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 100_000 + b"\r\n\r\n"
    try:
        answer = _exchange(admin.port, huge)
    except ConnectionResetError:
        answer = b""
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431")
    body = b"POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
    assert _exchange(admin.port, body).startswith(b"HTTP/1.1 413")
    chunked = b"GET /healthz HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    assert _exchange(admin.port, chunked).startswith(b"HTTP/1.1 413")
    # still serving
    assert _exchange(admin.port, b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n").endswith(b"ok\n")


def test_a_connection_flood_is_bounded_and_the_port_recovers(admin) -> None:
    admin.head_timeout = 60.0  # the 4 admitted connections stay for the whole test
    idle = [socket.create_connection(("127.0.0.1", admin.port), timeout=10) for _ in range(20)]
    try:
        closed = 0
        for s in idle:
            s.settimeout(0.3)
            try:
                if s.recv(1) == b"":
                    closed += 1
            except TimeoutError:
                pass  # admitted, waiting for its request head
            except OSError:
                closed += 1
        # Beyond max_connections (4) a connection is closed at once.
        assert closed == 16
        try:  # a newcomer meanwhile is closed too: the 4 slots are taken
            answer = _exchange(admin.port, b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        except OSError:  # reset, or a broken pipe when the reset came before our bytes
            answer = b""
        assert answer == b""
    finally:
        for s in idle:
            s.close()
    wait_until(
        lambda: _exchange(admin.port, b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n").endswith(b"ok\n"),
        what="the admin port to serve again",
    )


def test_a_handler_that_fails_answers_500() -> None:
    async def broken():
        raise RuntimeError("boom")

    server = AdminServer("127.0.0.1", 0, {("GET", "/x"): broken})
    with ServerThread(server):
        assert _exchange(server.port, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n").startswith(b"HTTP/1.1 500")
        assert asyncio  # the server kept running:
        assert _exchange(server.port, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n").startswith(b"HTTP/1.1 500")
