"""Issue 9 item 7 (docs/security.md row 7), the counting half: when the access log's
queue is full, the records dropped are counted, exactly, in ``AccessLog.dropped`` and in
``ProxyServer.metrics()["access_log_dropped"]``.

``tests/security/test_9_7_logging.py`` shows that clients keep being served while the
log reader stalls; this shows that nothing is lost silently: once the reader catches up,
every request is either a log line or one count in ``dropped``. The log goes to a pipe
that nobody reads until the requests are done (a stalled log shipper)."""

from __future__ import annotations

import contextlib
import os
import threading

from proxy_attack_helpers import echo_origin
from proxy_helpers import PLAIN_HOST, Client

from edgerules.proxy.accesslog import AccessLog
from edgerules.proxy.config import ProxyConfig
from edgerules.proxy.server import ProxyServer, ServerThread

QUEUE = 20


class StalledPipe:
    """A pipe whose read end nobody reads until ``drain()``; then everything written
    (until every write end is closed) is collected in ``data``."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self.data = b""
        self._reader: threading.Thread | None = None

    def writer(self):
        return os.fdopen(self.write_fd, "w")  # AccessLog writes through a duplicate

    def drain(self) -> None:
        def read() -> None:
            while chunk := os.read(self.read_fd, 65536):
                self.data += chunk

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()

    def lines(self, timeout: float = 20.0) -> list[bytes]:
        assert self._reader is not None
        self._reader.join(timeout)  # EOF: the log closed its descriptor
        assert not self._reader.is_alive(), "the access log never closed its descriptor"
        os.close(self.read_fd)
        return self.data.splitlines()


def test_access_log_counts_every_record_it_drops():
    pipe = StalledPipe()
    with pipe.writer() as stream:
        log = AccessLog(stream, max_queue=QUEUE, close_timeout=20)
    records = 3000  # ~100 bytes each: several times what a pipe holds
    for i in range(records):
        log.write({"path": f"/r{i}", "padding": "x" * 64})
    assert log.dropped > 0  # the pipe is full, the queue is full: records were dropped
    pipe.drain()
    log.close()
    lines = pipe.lines()
    assert log.written == len(lines)
    assert len(lines) + log.dropped == records  # each one written or counted, never both


def test_proxy_metrics_report_the_access_log_drops():
    pipe = StalledPipe()
    with pipe.writer() as stream:
        log = AccessLog(stream, max_queue=QUEUE, close_timeout=20)
    with echo_origin() as (origin_thread, _origin):
        server = ProxyServer(
            ProxyConfig(upstream=f"http://127.0.0.1:{origin_thread.port}", listen_port=0),
            access_log=log,
        )
        thread = ServerThread(server).start()
        stopped = False
        try:
            assert thread.port is not None
            requests = 800  # ~300 bytes of log each: several times what a pipe holds
            with Client(thread.port, sni=PLAIN_HOST) as client:
                statuses = {client.request("GET", f"/r{i}")[0] for i in range(requests)}
            assert statuses == {200}
            dropped = server.metrics()["access_log_dropped"]
            assert dropped > 0
            assert dropped == log.dropped
            pipe.drain()
            thread.stop(5.0)  # closes the access log: what is queued is written
            stopped = True
            lines = pipe.lines()
            assert all(line.startswith(b"{") and line.endswith(b"}") for line in lines)
            assert len(lines) + log.dropped == requests
            assert server.metrics()["access_log_dropped"] == log.dropped
        finally:
            if not stopped:
                with contextlib.suppress(Exception):
                    pipe.drain()
                thread.stop(5.0)
