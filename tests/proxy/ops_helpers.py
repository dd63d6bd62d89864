"""Helpers for the operations tests (hot reload, admin endpoints, metrics): a real
``edgerules proxy`` subprocess whose stderr is followed line by line, an HTTP client for
the admin listener, a Prometheus text parser and an origin that holds a request until
the test releases it."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import h11
from prometheus_client.parser import text_string_to_metric_families


class ProxyProcess:
    """``python -m edgerules proxy --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 ARGS``."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, admin: bool = True) -> None:
        cmd = [sys.executable, "-m", "edgerules", "proxy", "--listen", "127.0.0.1:0"]
        if admin:
            cmd += ["--admin-listen", "127.0.0.1:0"]
        self.proc = subprocess.Popen(
            [*cmd, *args],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=env if env is not None else {**os.environ, "EDGERULES_STORE": ""},
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            line = self.wait_for("admin on http://" if admin else "listening on https://")
            if admin:
                self.admin_port = int(re.search(r"admin on http://127\.0\.0\.1:(\d+)", line)[1])
            listening = self.wait_for("listening on https://")
            self.port = int(re.search(r"https://127\.0\.0\.1:(\d+)", listening)[1])
        except BaseException:
            self.stop()
            raise

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self.lines.append("<exit>")
            self._cond.notify_all()

    def wait_for(self, text: str, *, after: int = 0, timeout: float = 60.0) -> str:
        """The first stderr line from index ``after`` on that contains ``text``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[after:]:
                    if text in line:
                        return line
                    if line == "<exit>":
                        raise AssertionError(f"proxy exited before {text!r}: {self.lines}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {text!r} on stderr: {self.lines}")
                self._cond.wait(left)

    def mark(self) -> int:
        with self._cond:
            return len(self.lines)

    def stderr_since(self, mark: int) -> str:
        with self._cond:
            return "\n".join(self.lines[mark:])

    def hup(self) -> int:
        """Send SIGHUP; returns the stderr mark from before it."""
        mark = self.mark()
        self.proc.send_signal(signal.SIGHUP)
        return mark

    def admin(self, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        return admin_request(self.admin_port, method, path)

    def metrics(self) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        status, _headers, body = self.admin("GET", "/metrics")
        assert status == 200
        return parse_metrics(body)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return self.proc.returncode

    def __enter__(self) -> ProxyProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def admin_request(port: int, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def parse_metrics(body: bytes) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Sample name -> {sorted label pairs: value}, through prometheus_client's parser."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(body.decode("utf-8")):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def value(metrics: dict[str, Any], name: str, **labels: str) -> float:
    return metrics.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def wait_until(predicate: Any, *, timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns a true value (a wait, not a timing assert)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class GatedOrigin:
    """An HTTP/1.1 origin that answers 200 at once, except ``/gated``: that request is
    held until ``release`` is set (``arrived`` says it reached the origin)."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.port: int | None = None
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def shutdown(self, grace: float = 1.0) -> None:
        self.release.set()
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        with contextlib.suppress(Exception):
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    if not data:
                        return
                    conn.receive_data(data)
                    continue
                if isinstance(event, h11.Request):
                    target = event.target
                    while not isinstance(conn.next_event(), h11.EndOfMessage):
                        conn.receive_data(await reader.read(65536))
                    if target.startswith(b"/gated"):
                        self.arrived.set()
                        await asyncio.to_thread(self.release.wait, 60)
                    body = b"origin:" + target
                    writer.write(
                        conn.send(
                            h11.Response(
                                status_code=200,
                                headers=[(b"Content-Length", str(len(body)).encode())],
                            )
                        )
                        + conn.send(h11.Data(data=body))
                        + conn.send(h11.EndOfMessage())
                    )
                    await writer.drain()
                    conn.start_next_cycle()
                    continue
                return
        writer.close()


@contextlib.contextmanager
def gated_origin() -> Iterator[Any]:
    from edgerules.proxy.server import ServerThread

    origin = GatedOrigin()
    thread = ServerThread(origin).start()
    try:
        yield origin
    finally:
        origin.release.set()
        thread.stop(1.0)
