"""Issue 9 item 7: logging cannot freeze the proxy.

Attack (reproduced on the old code): the access log was written synchronously to stdout
on the event loop; when the process reading stdout stalls (a stuck log shipper, a pipe
nobody drains), the pipe fills after ~160 requests and every client of the proxy hangs.

Guarantee: the access log is written off the event loop through a bounded queue; when
the queue is full, lines are dropped and counted (reported on stderr), and every client
keeps being served. Through the ``edgerules proxy`` CLI with ``--access-log -`` and a
stdout pipe that this test never reads, real TLS, ``http.client`` keep-alive requests."""

from __future__ import annotations

import http.client
import subprocess
import sys

from proxy_attack_helpers import HOST, RULES, deployment, echo_origin, tls_client

REQUESTS = 1500  # ~400 bytes of log each: 10x what a 64 KiB pipe holds


def test_stalled_access_log_reader_does_not_stop_clients(tmp_path):
    dep = deployment(tmp_path)
    with echo_origin() as (thread, _origin):
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "edgerules", "proxy", "--listen", "127.0.0.1:0",
                "--upstream", f"http://127.0.0.1:{thread.port}", "--rules", str(RULES),
                "--store", str(dep.store), "--access-log", "-", "--access-log-queue", "100",
            ],
            stdout=subprocess.PIPE,  # never read while the clients run: the reader "stalls"
            stderr=subprocess.PIPE,
        )
        try:
            assert proc.stderr is not None
            port = None
            for line in proc.stderr:
                if b"listening on" in line:
                    port = int(line.split(b"https://127.0.0.1:")[1].split()[0])
                    break
            assert port
            statuses: dict[int, int] = {}
            for cert in (True, False):  # allowed (200) and blocked (403) requests alike
                with tls_client(port, cert=dep.cert if cert else None, key=dep.key) as sock:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    conn.sock = sock
                    for i in range(REQUESTS // 2):
                        conn.request("GET", f"/r{i}", headers={"Host": HOST})
                        resp = conn.getresponse()
                        resp.read()
                        statuses[resp.status] = statuses.get(resp.status, 0) + 1
            assert statuses == {200: REQUESTS // 2, 403: REQUESTS // 2}
            proc.terminate()
            out, err = proc.communicate(timeout=20)  # drains stdout: the proxy can exit
            assert proc.returncode == 0
            assert b"records dropped" in err  # the drops are counted and reported
            lines = out.splitlines()
            assert 0 < len(lines) < REQUESTS  # some lines were dropped, none half-written
            assert all(line.startswith(b"{") and line.endswith(b"}") for line in lines)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
