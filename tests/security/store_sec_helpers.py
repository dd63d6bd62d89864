"""Shared plumbing of the store/PKI security tests (issue 9 items 5, 8, 9, 10, 12).

Everything goes through the real ``edgerules`` console script in a subprocess and, where
the mistake bites there, the real proxy on 127.0.0.1 (ephemeral ports) in front of an
echo origin, with real TLS clients. Nothing here is shared with the proxy's own tests.
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
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules" / "mtls-required.json"
EDGERULES = Path(sys.executable).parent / "edgerules"
HOST = "api.localhost"
# Run a command as root without the capabilities that bypass file permissions: a 0444
# file in a 0555 directory is then really read-only for it (the tests run as root).
NO_DAC_OVERRIDE = ("setpriv", "--bounding-set=-dac_override,-dac_read_search")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGERULES_")}
    env.update(extra)
    return env


def cli(
    *args: str, env: dict[str, str] | None = None, check: bool = True, stdin: bytes = b""
) -> subprocess.CompletedProcess[str]:
    """``edgerules ARGS`` in a subprocess; ``check``: fail the test on a non-zero exit."""
    proc = subprocess.run(
        [str(EDGERULES), *args],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        timeout=120,
        env=env if env is not None else clean_env(),
    )
    if check:
        assert proc.returncode == 0, f"edgerules {' '.join(args)}: {proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


@dataclass
class Device:
    id: str
    cert: Path
    key: Path


@dataclass
class Deployment:
    store: Path
    devices: dict[str, Device] = field(default_factory=dict)


def deploy(tmp: Path, names: Sequence[str] = ("ok", "revoked"), *, store: Path | None = None,
           env: dict[str, str] | None = None) -> Deployment:
    """A store made through the CLI: managed CA, one certificate per name (``revoked``
    is revoked), mTLS enabled on ``api.localhost``."""
    store = store or tmp / "store.db"
    cli("ca", "create", "--store", str(store), env=env)
    dep = Deployment(store)
    for name in names:
        cert, key = tmp / f"{name}.crt", tmp / f"{name}.key"
        out = cli(
            "cert", "issue", "--store", str(store), "--cn", f"device-{name}",
            "--validity-days", "30", "--cert-out", str(cert), "--key-out", str(key), "--json",
            env=env,
        )
        dep.devices[name] = Device(json.loads(out.stdout)["id"], cert, key)
    if "revoked" in dep.devices:
        cli("cert", "revoke", dep.devices["revoked"].id, "--store", str(store), env=env)
    cli("host", "enable", HOST, "--store", str(store), env=env)
    return dep


@contextlib.contextmanager
def echo_origin() -> Iterator[int]:
    from edgerules.proxy.echo import EchoOrigin
    from edgerules.proxy.server import ServerThread

    thread = ServerThread(EchoOrigin()).start()
    try:
        assert thread.port is not None
        yield thread.port
    finally:
        thread.stop(1.0)


@dataclass
class Proxy:
    proc: subprocess.Popen[str]
    port: int
    stderr: list[str]

    def log(self) -> str:
        return "".join(self.stderr)


def start_proxy(
    store: Path | str, origin: int, *extra: str, prefix: Sequence[str] = (),
    env: dict[str, str] | None = None, timeout: float = 30.0,
) -> Proxy | subprocess.CompletedProcess[str]:
    """``edgerules proxy`` on 127.0.0.1:0 with the mTLS-required rules. Returns a running
    ``Proxy``, or the finished process when it exits before listening."""
    cmd = [
        *prefix, str(EDGERULES), "proxy", "--listen", "127.0.0.1:0",
        "--upstream", f"http://127.0.0.1:{origin}", "--rules", str(RULES),
        "--store", str(store), "--access-log", "off", *extra,
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=env if env is not None else clean_env(),
    )
    lines: list[str] = []
    port: int | None = None
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    for line in proc.stderr:
        lines.append(line)
        if "listening on" in line:
            port = int(line.split("https://127.0.0.1:")[1].split()[0])
            break
        if time.monotonic() > deadline:
            break
    if port is None:
        proc.kill()
        proc.wait(10)
        return subprocess.CompletedProcess(cmd, proc.returncode, "", "".join(lines))

    def drain() -> None:  # keep reading so the proxy never blocks on a full pipe
        with contextlib.suppress(Exception):
            for line in proc.stderr:  # type: ignore[union-attr]
                lines.append(line)

    threading.Thread(target=drain, daemon=True).start()
    return Proxy(proc, port, lines)


@contextlib.contextmanager
def running_proxy(store: Path | str, origin: int, *extra: str, **kw: object) -> Iterator[Proxy]:
    proxy = start_proxy(store, origin, *extra, **kw)  # type: ignore[arg-type]
    assert isinstance(proxy, Proxy), f"the proxy did not start: {proxy.stderr}"
    try:
        yield proxy
    finally:
        if proxy.proc.poll() is None:
            proxy.proc.terminate()
            try:
                proxy.proc.wait(10)
            except subprocess.TimeoutExpired:
                proxy.proc.kill()
                proxy.proc.wait(5)


class Client:
    """One keep-alive HTTPS connection to the proxy, SNI ``api.localhost``."""

    def __init__(self, port: int, device: Device | None = None, timeout: float = 10) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if device is not None:
            ctx.load_cert_chain(device.cert, device.key)
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname=HOST)
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn.sock = self.sock

    def get(self, path: str = "/") -> int:
        self.conn.request("GET", path, headers={"Host": HOST})
        resp = self.conn.getresponse()
        resp.read()
        return resp.status

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def status(port: int, device: Device | None = None) -> int:
    """The answer to one request on a new connection."""
    with Client(port, device) as client:
        return client.get()


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.02) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until true (for effects another process causes); not a timed
    assertion: the bound is generous and only stops a hang."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
