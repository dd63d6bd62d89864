"""Issue 9 guarantees 1–3 for ``edgerules serve`` (an ASGI app behind edgerules' own mTLS
terminator), as ``tests/security/test_9_1_*``, ``test_9_2_validation_stall`` and
``test_9_3_*`` show them for ``edgerules proxy``.

Attacks (reproduced on the old ``serve``): the client chain was validated once per
connection, synchronously on the event loop, and never re-checked — after ``cert
revoke`` (or ``host disable``) a keep-alive connection kept its old verdict forever and
a connection opened while revoked stayed blocked after ``restore``; a validation that
took long stalled every client; a connection that never sent a request held its slot for
the whole 30 s idle time and, at the connection limit, newcomers were reset; connections
had no lifetime cap.

Guarantees: every request is decided (and the ASGI scope filled: the ``tls`` extension's
``client_cert_error``, ``scope["edgerules.client_auth"]``) with the trust and revocation
state of at most ``--poll-interval`` ago; validation runs in worker threads within
``--validation-budget`` (over it: not verified, ``certificate validation timed out``);
``--first-request-timeout``, eviction of idle connections at ``--max-connections``, 503
with ``Retry-After`` when every slot is in a request; ``--max-connection-requests`` /
``--max-connection-age``. Real ``edgerules serve`` processes (and ``ASGIServer``
in-process for the stalled validator), real TLS, Python ``ssl``/``http.client``; the
store is changed by the ``edgerules`` CLI in another process. Deadlines are generous
liveness bounds, never speed checks."""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import json
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from proxy_attack_helpers import (
    HOST,
    Deployment,
    deployment,
    read_response,
    tls_client,
    wait_until,
)

from edgerules.enforcement.decision import RulesetDecider
from edgerules.enforcement.gate import Gate
from edgerules.proxy.accesslog import AccessLog
from edgerules.proxy.asgi_server import ASGIServer
from edgerules.proxy.config import Limits
from edgerules.proxy.server import ServerThread
from edgerules.rulesets import Ruleset
from edgerules.store import open_store

CHANGE_BOUND = 10.0  # seconds: a change must reach an open connection well within this

# An ASGI app reporting the verdict it was called with; /slow records its start in a file
# (so the test knows every slot is in a request) and sleeps 10 s (long enough that no slot
# frees itself before the late client is judged, even on a loaded machine).
APP = textwrap.dedent('''
    import asyncio, json, os

    STARTED = os.environ.get("HARDENING_STARTED_FILE")

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        if scope["path"] == "/slow":
            with open(STARTED, "a") as f:
                f.write("started\\n")
            await asyncio.sleep(10)
        auth = scope["edgerules.client_auth"]
        tls = scope["extensions"]["tls"]
        body = json.dumps({
            "presented": auth.presented, "verified": auth.verified, "revoked": auth.revoked,
            "client_cert_error": tls["client_cert_error"],
            "client_cert_name": tls["client_cert_name"],
        }).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
''')

# The mTLS-required rule, except for /scope, which always reaches the app so that the
# test can read the verdict the app is given.
RULESET = {
    "name": "serve hardening",
    "kind": "zone",
    "phase": "http_request_firewall_custom",
    "rules": [{
        "ref": "mtls_enforce",
        "expression": f'http.host eq "{HOST}" and http.request.uri.path ne "/scope" and '
                      "(not cf.tls_client_auth.cert_verified or cf.tls_client_auth.cert_revoked)",
        "action": "block",
        "action_parameters": {"response": {"status_code": 403, "content_type": "text/plain",
                                           "content": "client certificate required"}},
        "enabled": True,
    }],
}


@contextlib.contextmanager
def cli_serve(tmp: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``python -m edgerules serve hardening_app:app --listen 127.0.0.1:0 ARGS``: yields
    the process and its port once it is listening; killed on exit if still running."""
    import os

    env = {**os.environ, "HARDENING_STARTED_FILE": str(tmp / "started.log")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgerules", "serve", "hardening_app:app",
         "--listen", "127.0.0.1:0", "--app-dir", str(tmp), "--no-lifespan",
         "--rules", str(tmp / "rules.json"), "--access-log", "off", *args],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=tmp, env=env)
    try:
        port = None
        lines = []
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "listening on" in line:
                port = int(line.split("https://127.0.0.1:")[1].split()[0])
                break
        assert port, "serve did not start: " + "".join(lines)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()


class KeepAlive:
    """One TLS connection, many requests; fails if the server closed it."""

    def __init__(self, port: int, dep: Deployment, *, cert: Path | None = None,
                 key: Path | None = None, with_cert: bool = True) -> None:
        cert = cert or dep.cert
        key = key or dep.key
        self.sock = tls_client(port, cert=cert if with_cert else None, key=key)
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        self.conn.sock = self.sock
        self.last: tuple = ()

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        # the same TCP connection every time (http.client would silently reconnect)
        assert self.conn.sock is self.sock, f"connection closed after {self.last}"
        self.conn.request("GET", path, headers={"Host": HOST})
        resp = self.conn.getresponse()
        body = resp.read()
        self.last = (path, resp.status, body[:300])
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body

    def status(self, path: str = "/guarded") -> int:
        return self.get(path)[0]

    def scope(self) -> dict:
        status, _headers, body = self.get("/scope")
        assert status == 200, body
        return json.loads(body)

    def until(self, status: int) -> None:
        """Send requests on this connection until one is answered ``status`` (within
        CHANGE_BOUND), then check that the next ones are answered the same."""
        deadline = time.monotonic() + CHANGE_BOUND
        seen = []
        while time.monotonic() < deadline:
            seen.append(self.status())
            if seen[-1] == status:
                break
            time.sleep(0.05)
        assert seen[-1] == status, f"still {seen[-1]} after {CHANGE_BOUND} s: {seen[-5:]}"
        assert [self.status() for _ in range(3)] == [status] * 3

    def close(self) -> None:
        self.sock.close()


def _site(tmp: Path) -> Deployment:
    dep = deployment(tmp)
    (tmp / "hardening_app.py").write_text(APP)
    (tmp / "rules.json").write_text(json.dumps(RULESET))
    return dep


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve-hardening")
    dep = _site(tmp)
    with cli_serve(tmp, "--store", str(dep.store)) as (proc, port):
        yield dep, port
        proc.terminate()
        assert proc.wait(15) == 0


@pytest.fixture()
def env(served):
    """The shared deployment, put back in its first state (certificate active, mTLS on
    the host) after each test."""
    yield served
    dep, port = served
    if dep.restore_first_state():
        probe = KeepAlive(port, dep)
        probe.until(200)
        probe.close()


# -- guarantee 1: revocation and trust changes reach established connections -----------
def test_revoke_and_restore_reach_an_open_keepalive_connection(env):
    dep, port = env
    conn = KeepAlive(port, dep)
    assert conn.status() == 200
    before = conn.scope()
    assert (before["verified"], before["revoked"]) == (True, False)
    dep.cli("cert", "revoke", dep.cert_id)
    conn.until(403)  # the same connection: its verdict followed the store
    revoked = conn.scope()  # and the app is given the current verdict
    assert (revoked["verified"], revoked["revoked"]) == (True, True)
    dep.cli("cert", "restore", dep.cert_id)
    conn.until(200)
    assert conn.scope()["revoked"] is False
    conn.close()


def test_connection_opened_while_revoked_is_allowed_after_restore(env):
    dep, port = env
    dep.cli("cert", "revoke", dep.cert_id)
    probe = KeepAlive(port, dep)
    probe.until(403)  # the server has seen the revocation
    probe.close()
    conn = KeepAlive(port, dep)
    assert conn.status() == 403
    dep.cli("cert", "restore", dep.cert_id)
    conn.until(200)
    conn.close()


def test_host_disable_and_enable_reach_an_open_connection(env):
    dep, port = env
    conn = KeepAlive(port, dep)
    assert conn.status() == 200
    dep.cli("host", "disable", HOST)
    # mTLS is off for the host: the connection is judged as a new one would be (no
    # certificate requested), and the rule that requires one blocks it.
    conn.until(403)
    scope = conn.scope()
    assert (scope["presented"], scope["verified"]) == (False, False)
    dep.cli("host", "enable", HOST)
    conn.until(200)  # its certificate is validated again
    assert conn.scope()["verified"] is True
    conn.close()


def test_connection_without_certificate_request_gets_421_once_host_is_enabled(env):
    dep, port = env
    dep.cli("host", "disable", HOST)
    probe = KeepAlive(port, dep)  # with a certificate: 403 once the server saw the change
    probe.until(403)
    probe.close()
    conn = KeepAlive(port, dep, with_cert=False)  # handshake without a CertificateRequest
    assert conn.status() == 403
    dep.cli("host", "enable", HOST)
    deadline = time.monotonic() + CHANGE_BOUND
    while True:
        status, headers, _body = conn.get("/guarded")
        if status != 403 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    # The connection cannot carry a certificate: 421, closed, so that the client
    # reconnects and is asked for one.
    assert status == 421
    assert headers.get("connection") == "close"
    conn.close()
    fresh = KeepAlive(port, dep)
    assert fresh.status() == 200
    fresh.close()


def test_connection_lifetime_is_capped(tmp_path):
    dep = _site(tmp_path)
    request = f"GET /guarded HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    with cli_serve(tmp_path, "--store", str(dep.store), "--max-connection-requests", "3",
                   "--max-connection-age", "1") as (proc, port):
        with tls_client(port, cert=dep.cert, key=dep.key) as sock:
            answers = []
            for _ in range(3):
                sock.sendall(request)
                status, headers, _body = read_response(sock)
                answers.append((status, headers.get("connection")))
            assert answers == [(200, None), (200, None), (200, "close")]  # the 3rd is the last
            sock.settimeout(10)
            assert sock.recv(10) == b""  # and the server closed the connection
        with tls_client(port, cert=dep.cert, key=dep.key) as sock:
            sock.sendall(request)
            status, headers, _body = read_response(sock)
            assert (status, headers.get("connection")) == (200, None)
            # idle past --max-connection-age (1 s, not the 30 s idle time): closed
            sock.settimeout(10)
            assert sock.recv(10) == b""
        proc.terminate()
        assert proc.wait(15) == 0


# -- guarantee 2: a validation cannot stall the server ---------------------------------
class StuckOnAttacker:
    """The store's validator, except that validating the attacker's chain waits until
    ``release`` is set: a validation that takes as long as the test wants."""

    def __init__(self, inner, attacker_leaf: bytes, release: threading.Event) -> None:
        self.inner = inner
        self.attacker_leaf = attacker_leaf
        self.release = release
        self.entered = threading.Event()

    def validate(self, chain, *, hostname=None, now=None):
        if chain and chain[0] == self.attacker_leaf:
            self.entered.set()
            self.release.wait(60)
        return self.inner.validate(chain, hostname=hostname)


class StuckStore:
    """The store, whose hostname validators are wrapped in ``StuckOnAttacker`` (one
    wrapper per store validator, so that a wrapper changes exactly when trust does)."""

    def __init__(self, store, attacker_leaf: bytes, release: threading.Event) -> None:
        self._store = store
        self._leaf = attacker_leaf
        self._release = release
        self.wrappers: dict[int, StuckOnAttacker] = {}

    def validator_for_hostname(self, hostname):
        inner = self._store.validator_for_hostname(hostname)
        if inner is None:
            return None
        if id(inner) not in self.wrappers:
            self.wrappers[id(inner)] = StuckOnAttacker(inner, self._leaf, self._release)
        return self.wrappers[id(inner)]

    def __getattr__(self, name):
        return getattr(self._store, name)


@pytest.fixture(scope="module")
def stall_site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve-stall")
    dep = _site(tmp)
    attacker = (tmp / "attacker.crt", tmp / "attacker.key")
    dep.cli("cert", "issue", "--cn", "attacker", "--validity-days", "30",
            "--cert-out", str(attacker[0]), "--key-out", str(attacker[1]))
    return dep, attacker


@contextlib.contextmanager
def stuck_serve(stall_site, budget: float):
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    dep, (attacker_cert, _key) = stall_site
    leaf = x509.load_pem_x509_certificate(attacker_cert.read_bytes()).public_bytes(Encoding.DER)
    store = open_store(str(dep.store), read_only=True)
    release = threading.Event()
    stuck = StuckStore(store, leaf, release)
    sys.path.insert(0, str(dep.tmp))
    try:
        from hardening_app import app
    finally:
        sys.path.remove(str(dep.tmp))
    server = ASGIServer(
        app,
        Gate(RulesetDecider(Ruleset.load(str(dep.tmp / "rules.json")))),
        listen_port=0,
        store=stuck,
        limits=Limits(validation_budget=budget),
        access_log=AccessLog(None),
        lifespan=False,
    )
    thread = ServerThread(server).start()
    try:
        yield thread.port, stuck, release
    finally:
        release.set()  # never leave a worker (or, on the old code, the loop) waiting
        thread.stop(3.0)
        store.close()


def attacker_scope(port, stall_site) -> tuple[dict, int]:
    """One connection with the attacker's certificate: the verdict the app is given
    (/scope) and the answer to a guarded path."""
    dep, (cert, key) = stall_site
    conn = KeepAlive(port, dep, cert=cert, key=key)
    try:
        return conn.scope(), conn.status()
    finally:
        conn.close()


def test_other_clients_are_served_while_a_validation_hangs(stall_site):
    dep, _attacker = stall_site
    with stuck_serve(stall_site, budget=30.0) as (port, stuck, release), \
            concurrent.futures.ThreadPoolExecutor(1) as pool:
        attack = pool.submit(attacker_scope, port, stall_site)
        assert wait_until(lambda: any(w.entered.is_set() for w in stuck.wrappers.values()))
        # the attacker's validation is in progress and will not finish by itself
        conn = KeepAlive(port, dep)
        assert [conn.status(f"/guarded{i}") for i in range(5)] == [200] * 5
        conn.close()
        assert not attack.done()  # still waiting for its verdict
        release.set()
        scope, status = attack.result(15)
        assert scope["verified"] is True and status == 200  # its chain is valid, only slow


def test_a_validation_over_budget_is_not_verified(stall_site):
    with stuck_serve(stall_site, budget=0.5) as (port, _stuck, _release):
        scope, status = attacker_scope(port, stall_site)
        assert scope["presented"] is True
        assert scope["verified"] is False
        assert scope["client_cert_error"] == "certificate validation timed out"
        assert status == 403


# -- guarantee 3: idle connections cannot lock clients out -----------------------------
LIMIT = 8


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve-limited")
    dep = _site(tmp)
    # only an option the old serve had: these tests fail there for their own reasons
    with cli_serve(tmp, "--store", str(dep.store), "--max-connections", str(LIMIT)) \
            as (proc, port):
        yield dep, port, tmp
        proc.terminate()
        assert proc.wait(15) == 0


def one_request(port, dep, path="/guarded") -> int:
    with tls_client(port, cert=dep.cert, key=dep.key, timeout=20) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        return read_response(sock)[0]


def test_idle_connections_do_not_lock_out_valid_clients(limited):
    dep, port, _tmp = limited
    idle_tls = [tls_client(port) for _ in range(LIMIT)]  # handshake, then silence
    idle_tcp = [socket.create_connection(("127.0.0.1", port)) for _ in range(LIMIT)]
    try:
        assert [one_request(port, dep, f"/guarded{i}") for i in range(4)] == [200] * 4
    finally:
        for s in idle_tls + idle_tcp:
            s.close()


def test_first_request_timeout_closes_a_silent_connection(limited):
    _dep, port, _tmp = limited
    with tls_client(port) as sock:  # completes the handshake, never sends a request
        sock.settimeout(20)
        # closed after --first-request-timeout (5 s by default), not the 30 s idle time
        assert sock.recv(10) == b""


def test_busy_slots_answer_503_not_reset(limited):
    dep, port, tmp = limited
    started = tmp / "started.log"
    started.write_text("")
    request = f"GET /slow HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    busy = []
    try:
        for _ in range(LIMIT):  # each request right after its handshake
            busy.append(tls_client(port, cert=dep.cert, key=dep.key, timeout=30))
            busy[-1].sendall(request)
        # every slot is in a (slow) request once the app has started them all
        assert wait_until(lambda: started.read_text().count("started") == LIMIT)
        with concurrent.futures.ThreadPoolExecutor(LIMIT) as pool:
            answers = pool.map(read_response, busy)
            with tls_client(port, cert=dep.cert, key=dep.key) as late:
                late.sendall(f"GET /late HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
                status, headers, _body = read_response(late)
            assert status == 503
            assert headers.get("retry-after") == "1"
            assert headers.get("connection") == "close"
            assert [a[0] for a in answers] == [200] * LIMIT  # nobody in a request was cut
    finally:
        for sock in busy:
            sock.close()
    assert one_request(port, dep) == 200  # slots free again
