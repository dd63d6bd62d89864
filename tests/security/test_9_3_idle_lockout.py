"""Issue 9 item 3: idle connections cannot lock clients out.

Attack (reproduced on the old code): connections that complete a TLS handshake and
never send a request (or plain TCP connections that never send a ClientHello) held every
connection slot for the idle timeout (30 s; 10 s for plain TCP); every new client was
then reset — valid-certificate clients included.

Guarantee: a short first-request timeout, separate from the keep-alive idle timeout;
at the connection limit a newcomer evicts the oldest connection that is not in a request
(the ones that never sent a request first), so idle connections never lock anyone out;
when every slot is in a request, the newcomer is answered 503 with ``Retry-After``
instead of a reset. Through the ``edgerules proxy`` CLI, real TLS; the probes are curl
with a client certificate."""

from __future__ import annotations

import concurrent.futures
import shutil
import socket
import subprocess

import pytest
from proxy_attack_helpers import (
    HOST,
    RULES,
    cli_proxy,
    deployment,
    echo_origin,
    read_response,
    tls_client,
    wait_until,
)

LIMIT = 32
SLOW_MS = 10000  # how long the busy requests hold their slots

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    dep = deployment(tmp_path_factory.mktemp("sec93"))
    with echo_origin() as (thread, origin), cli_proxy(
        "--upstream", f"http://127.0.0.1:{thread.port}",
        "--rules", str(RULES), "--store", str(dep.store), "--access-log", "off",
        "--max-connections", str(LIMIT), "--first-request-timeout", "1",
    ) as (proc, port):
        yield dep, port, origin
        proc.terminate()
        assert proc.wait(10) == 0


def curl(dep, port, path="/probe"):
    result = subprocess.run(
        [
            "curl", "-sk", "--max-time", "10", "--resolve", f"{HOST}:{port}:127.0.0.1",
            "--cert", str(dep.cert), "--key", str(dep.key),
            "-o", "/dev/null", "-w", "%{http_code}", f"https://{HOST}:{port}{path}",
        ],
        capture_output=True, text=True, timeout=20,
    )
    return result.stdout or f"curl exit {result.returncode}"


def test_idle_connections_do_not_lock_out_valid_clients(env):
    dep, port, _origin = env
    idle_tls = [tls_client(port) for _ in range(LIMIT)]  # handshake, then silence
    idle_tcp = [socket.create_connection(("127.0.0.1", port)) for _ in range(LIMIT)]
    try:
        probes = [curl(dep, port, f"/probe{i}") for i in range(8)]
        assert probes == ["200"] * 8
    finally:
        for s in idle_tls + idle_tcp:
            s.close()


def test_first_request_timeout_closes_a_silent_connection(env):
    _dep, port, _origin = env
    with tls_client(port) as sock:  # completes the handshake, never sends a request
        sock.settimeout(10)
        assert sock.recv(10) == b""  # closed after --first-request-timeout (1 s), not 30 s


def test_busy_slots_answer_503_not_reset(env):
    dep, port, origin = env
    # Each slot stays in its request for SLOW_MS at the origin: long enough for the other
    # handshakes, the wait below and the late client's handshake on a loaded machine
    # (with 3 s, the first slow answers could come back before the late client was
    # judged, which then took a freed slot and got 200).
    request = f"GET /slow?ms={SLOW_MS} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    before = len(origin.requests)
    busy = []
    try:
        for _ in range(LIMIT):
            # the request right after the handshake: the module's first-request timeout
            # is 1 s, and the 32 handshakes together can take longer than that
            sock = tls_client(port, cert=dep.cert, key=dep.key, timeout=SLOW_MS / 1000 + 30)
            busy.append(sock)
            sock.sendall(request)
        # every slot is in a (slow) request once the origin has seen them all
        assert wait_until(lambda: len(origin.requests) - before == LIMIT)
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
    assert curl(dep, port) == "200"  # slots free again
