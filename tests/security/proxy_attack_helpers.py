"""Helpers for the proxy's issue-9 security tests: a real deployment made with the real
CLI (store, managed CA, client certificates, mTLS host), the ``edgerules proxy`` CLI in a
subprocess, an echo origin, and raw TLS clients (Python ``ssl``) that control every byte.

Everything runs on 127.0.0.1 with ephemeral ports and is stopped by the fixture."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules" / "mtls-required.json"
HOST = "api.localhost"

sys.path.insert(0, str(ROOT / "tests" / "proxy"))

from proxy_helpers import cli_proxy  # noqa: E402

from edgerules.proxy.echo import EchoOrigin  # noqa: E402
from edgerules.proxy.server import ServerThread  # noqa: E402

__all__ = [
    "HOST",
    "Deployment",
    "cli",
    "cli_proxy",
    "deployment",
    "echo_origin",
    "proxied_deployment",
    "tls_client",
]


def cli(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m edgerules ARGS --store STORE``; raises with the output when it fails."""
    env = {**os.environ, "EDGERULES_STORE": str(store)}
    result = subprocess.run(
        [sys.executable, "-m", "edgerules", *args],
        capture_output=True, text=True, timeout=60, env=env,
    )
    if result.returncode != 0:
        raise AssertionError(f"edgerules {' '.join(args)} failed: {result.stderr}{result.stdout}")
    return result


@dataclass
class Deployment:
    tmp: Path
    store: Path
    cert: Path  # a valid managed-CA client certificate (PEM) and its key
    key: Path
    cert_id: str

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return cli(self.store, *args)

    def restore_first_state(self) -> bool:
        """Put the deployment back in its first state (certificate active, mTLS on
        ``HOST``) through the CLI; True when anything had to change."""
        from edgerules.store import open_store

        with open_store(str(self.store), read_only=True) as store:
            revoked = store.get_certificate(self.cert_id).status != "active"
            disabled = HOST not in store.mtls_hostnames()
        if revoked:
            self.cli("cert", "restore", self.cert_id)
        if disabled:
            self.cli("host", "enable", HOST)
        return revoked or disabled


def deployment(tmp: Path, *, cn: str = "device-1") -> Deployment:
    """A store with the managed CA, one issued certificate and mTLS on ``HOST``, all made
    through the CLI as an operator would."""
    store = tmp / "store.db"
    cli(store, "ca", "create")  # creates the store and the managed CA
    cert, key = tmp / f"{cn}.crt", tmp / f"{cn}.key"
    issued = cli(
        store, "cert", "issue", "--cn", cn, "--validity-days", "30", "--json",
        "--cert-out", str(cert), "--key-out", str(key),
    )
    cert_id = json.loads(issued.stdout)["id"]
    cli(store, "host", "enable", HOST)
    return Deployment(tmp, store, cert, key, cert_id)


@contextlib.contextmanager
def echo_origin() -> Iterator[tuple[ServerThread, EchoOrigin]]:
    origin = EchoOrigin()
    thread = ServerThread(origin).start()
    try:
        yield thread, origin
    finally:
        thread.stop(1.0)


@contextlib.contextmanager
def proxied_deployment(tmp: Path) -> Iterator[tuple[Deployment, EchoOrigin, int]]:
    """A deployment (store, mTLS host, client certificate) behind a real ``edgerules
    proxy`` CLI process with the mTLS rules, forwarding to an echo origin: yields the
    deployment, the origin (what reached it) and the proxy's port; the proxy must exit
    cleanly on SIGTERM."""
    dep = deployment(tmp)
    with echo_origin() as (thread, origin), cli_proxy(
        "--upstream", f"http://127.0.0.1:{thread.port}",
        "--rules", str(RULES), "--store", str(dep.store), "--access-log", "off",
    ) as (proc, port):
        yield dep, origin, port
        proc.terminate()
        assert proc.wait(10) == 0


def tls_client(
    port: int, *, sni: str = HOST, cert: Path | None = None, key: Path | None = None,
    timeout: float = 10.0,
) -> ssl.SSLSocket:
    """A TLS connection to the proxy (the proxy's dev certificate is not verified)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key) if key else None)
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname=sni)


def read_response(sock: ssl.SSLSocket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body: (status, headers, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before a response head: {buf!r}")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:length]


def wait_until(predicate, timeout: float = 30.0, step: float = 0.02) -> bool:
    """Poll ``predicate`` until true or ``timeout`` (liveness only, never a speed check)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())
