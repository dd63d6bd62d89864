"""``python -m edgerules.demo_fleet`` (``make demo-fleet``): a fleet of proxies on one
PostgreSQL store, and a revocation reaching all of them on connections already open.

Creates a database of its own on the PostgreSQL server (``$EDGERULES_DEMO_POSTGRES``,
default ``postgresql://postgres@127.0.0.1:5432/postgres``), then through the real CLI the
managed CA, a client certificate for ``device-001`` and mTLS on ``api.localhost``;
starts an echo origin and two ``edgerules proxy`` processes on that store; opens one
keep-alive HTTPS connection per proxy with the device's certificate (200 on each); revokes
the certificate with ``edgerules cert revoke``; and sends requests on the *same* open
connections until each proxy answers 403. Prints one row per proxy. Exits 0 only when
every proxy blocked the device on its open connection. Everything it started is stopped
and the database is dropped, whatever happens.

:class:`Fleet` is shared with ``bench/bench_propagation.py``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Fleet", "main"]

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
HOST = "api.localhost"
START_HINT = (
    "make demo-fleet needs PostgreSQL: start one with `docker run -d -p 5432:5432 "
    "-e POSTGRES_HOST_AUTH_METHOD=trust postgres:15` (or `sudo systemctl start postgresql`), "
    "or point EDGERULES_DEMO_POSTGRES at one"
)


def server_url() -> str:
    return os.environ.get("EDGERULES_DEMO_POSTGRES") or DEFAULT_SERVER


def _rules_file() -> Path:
    here = Path(__file__).resolve()
    for base in (Path.cwd(), *here.parents):
        candidate = base / "rules" / "mtls-required.json"
        if candidate.is_file():
            return candidate
    raise SystemExit("demo-fleet: rules/mtls-required.json not found (run from the project root)")


class KeepAlive:
    """One HTTPS keep-alive connection with a client certificate, SNI api.localhost."""

    def __init__(self, port: int, cert: Path, key: Path) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(cert, key)
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = ctx.wrap_socket(raw, server_hostname=HOST)
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.conn.sock = self.sock
        self.requests = 0
        self.local_port = self.sock.getsockname()[1]

    def get(self) -> int:
        self.conn.request("GET", "/fleet", headers={"Host": HOST})
        resp = self.conn.getresponse()
        resp.read()
        self.requests += 1
        if resp.getheader("connection", "").lower() == "close":
            raise ConnectionError("the proxy closed the keep-alive connection")
        return resp.status

    def first_status_after(self, status: int, timeout: float = 10.0) -> float | None:
        """Seconds (monotonic clock) at which this connection first got ``status``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.get() == status:
                return time.monotonic()
            time.sleep(0.001)  # ~1 ms resolution without saturating the cores
        return None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.sock.close()


@dataclass
class Device:
    id: str
    cert: Path
    key: Path


class Fleet:
    """N proxies on one PostgreSQL store (a database created for it), one echo origin."""

    def __init__(self, server: str, proxies: int, workdir: Path) -> None:
        self.server = server
        self.count = proxies
        self.workdir = workdir
        self.database = f"edgerules_fleet_{uuid.uuid4().hex[:10]}"
        parts = urllib.parse.urlsplit(server)
        self.url = urllib.parse.urlunsplit(parts._replace(path=f"/{self.database}"))
        self.procs: list[subprocess.Popen[str]] = []
        self.ports: list[int] = []
        self._origin: Any = None
        self._created = False

    # -- set-up ---------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGERULES_")}
        env["EDGERULES_STORE"] = self.url
        return env

    def cli(self, *args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "edgerules", *args],
            capture_output=True, text=True, env=self.env(), timeout=120,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"edgerules {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def timed_cli(self, *args: str) -> float:
        """Run a CLI command; the monotonic time at which it reported success (its
        output is printed right after the commit)."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgerules", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env(),
        )
        assert proc.stdout is not None
        proc.stdout.readline()
        at = time.monotonic()
        _, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"edgerules {' '.join(args)}: {err.strip()}")
        return at

    def create(self) -> None:
        import psycopg

        with psycopg.connect(self.server, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        self._created = True
        self.cli("ca", "create")
        self.cli("host", "enable", HOST)

    def issue(self, name: str) -> Device:
        cert, key = self.workdir / f"{name}.crt", self.workdir / f"{name}.key"
        out = self.cli("cert", "issue", "--cn", name, "--validity-days", "30",
                       "--cert-out", str(cert), "--key-out", str(key), "--json")
        return Device(json.loads(out)["id"], cert, key)

    def start(self) -> None:
        from edgerules.proxy.echo import EchoOrigin
        from edgerules.proxy.server import ServerThread

        self._origin = ServerThread(EchoOrigin()).start()
        rules = _rules_file()
        for _ in range(self.count):
            proc = subprocess.Popen(
                [sys.executable, "-m", "edgerules", "proxy", "--listen", "127.0.0.1:0",
                 "--upstream", f"http://127.0.0.1:{self._origin.port}",
                 "--rules", str(rules), "--store", self.url, "--access-log", "off",
                 # one long-lived connection per proxy is the point of the exercise
                 "--max-connection-requests", "100000000", "--max-connection-age", "86400"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=self.env(),
            )
            self.procs.append(proc)
            port = None
            assert proc.stderr is not None
            for line in proc.stderr:
                if "listening on" in line:
                    port = int(line.split("https://127.0.0.1:")[1].split()[0])
                    break
            if port is None:
                raise RuntimeError(f"a proxy did not start: {proc.stderr.read()}")
            self.ports.append(port)
            threading.Thread(target=self._drain, args=(proc,), daemon=True).start()

    @staticmethod
    def _drain(proc: subprocess.Popen[str]) -> None:
        with contextlib.suppress(Exception):
            for _line in proc.stderr:  # type: ignore[union-attr]
                pass

    def connect(self, device: Device) -> list[KeepAlive]:
        return [KeepAlive(port, device.cert, device.key) for port in self.ports]

    def time_to_block(self, clients: list[KeepAlive], command: tuple[str, ...],
                      status: int = 403) -> list[float | None]:
        """Run ``command`` through the CLI while every open connection sends requests
        back to back; seconds from the CLI reporting the commit (its output line) to each
        connection's first ``status`` (None: not within 10 s; 0.0 when the answer came
        before the line was read)."""
        hits: list[float | None] = [None] * len(clients)
        polling = threading.Barrier(len(clients) + 1)

        def watch(i: int) -> None:
            polling.wait()
            hits[i] = clients[i].first_status_after(status)

        threads = [threading.Thread(target=watch, args=(i,)) for i in range(len(clients))]
        for t in threads:
            t.start()
        polling.wait()  # every connection is polling before the command runs
        try:
            committed = self.timed_cli(*command)
        finally:
            for t in threads:
                t.join(30)
        return [None if h is None else max(0.0, h - committed) for h in hits]

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._origin is not None:
            self._origin.stop(1.0)
        if self._created:
            import psycopg

            with contextlib.suppress(Exception), psycopg.connect(
                self.server, autocommit=True, connect_timeout=5
            ) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def unreachable(server: str) -> str | None:
    """Why ``server`` cannot be used (None: it can)."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'edgerules[postgres]')"
    try:
        with psycopg.connect(server, autocommit=True, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def run(out: Any = sys.stdout, proxies: int = 2) -> int:
    server = server_url()
    problem = unreachable(server)
    if problem is not None:
        print(f"demo-fleet: PostgreSQL at {server} is not reachable ({problem}).", file=out)
        print(START_HINT, file=out)
        return 2
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edgerules-fleet-") as tmp, Fleet(
        server, proxies, Path(tmp)
    ) as fleet:
        fleet.create()
        device = fleet.issue("device-001")
        fleet.start()
        print(f"edgerules demo-fleet: store {fleet.url}", file=out)
        print(f"  proxies        {', '.join(f'https://127.0.0.1:{p}' for p in fleet.ports)}",
              file=out)
        print("  device         device-001 (managed CA), mTLS on api.localhost", file=out)
        clients = fleet.connect(device)
        before = [c.get() for c in clients]
        ports_before = [c.local_port for c in clients]
        print(f"  revoking       edgerules cert revoke {device.id}", file=out)
        waited = fleet.time_to_block(clients, ("cert", "revoke", device.id))
        rows = []
        ok = True
        for i, client in enumerate(clients):
            same = client.local_port == ports_before[i]
            blocked = waited[i] is not None
            ok = ok and blocked and before[i] == 200 and same
            rows.append([
                f"proxy-{i + 1}", f"127.0.0.1:{fleet.ports[i]}", str(before[i]),
                "403" if blocked else "200", "yes" if same else "no",
                f"{waited[i] * 1000:.1f} ms" if blocked else "-", str(client.requests),
                "ok" if blocked and before[i] == 200 else "FAIL",
            ])
            client.close()
        headers = ["proxy", "address", "before", "after revoke", "same connection",
                   "blocked after", "requests", ""]
        widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(headers)]
        print("", file=out)
        print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
              file=out)
        print("  ".join("-" * w for w in widths), file=out)
        for r in rows:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip(),
                  file=out)
    took = time.monotonic() - started
    verdict = "OK" if ok else "FAILED"
    print(f"\ndemo-fleet {verdict}: {sum(r[-1] == 'ok' for r in rows)} of {len(rows)} proxies "
          f"blocked the revoked device on their open connection; everything stopped, "
          f"database dropped ({took:.1f} s)", file=out)
    return 0 if ok else 1


def main() -> int:
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(__doc__)
        return 0
    return run()


if __name__ == "__main__":
    sys.exit(main())
