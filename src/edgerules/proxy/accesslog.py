"""Structured access log: one JSON object per request, one line each, written off the
event loop.

Owns: the record layout and how records reach the disk. Keys (always present, ``null``
when unknown): ``time`` (RFC 3339 UTC), ``client`` (address), ``sni``, ``host``,
``method``, ``path``, ``decision`` (allow/block/challenge/error), ``rule`` (ref),
``cert_presented``, ``cert_verified``, ``cert_revoked``, ``cert_serial``, ``cert_status``
(Workers-style ``SUCCESS``/``NONE``/``FAILED:<reason>``, ``, REVOKED`` appended when
revoked), ``status``, ``bytes`` (response body bytes sent), ``duration_ms``,
``upstream_error``, ``ruleset`` (the version of the ruleset that decided the request,
``null`` when none did: docs/operations.md).

Invariants (issue 9 item 7: a stalled log reader must not freeze the proxy):

* ``write`` never blocks and never raises: it appends the record to a bounded in-memory
  queue (``max_queue`` records). When the queue is full the record is **dropped** and
  counted in ``dropped``; nothing else waits.
* One daemon thread formats the queued records (JSON) and writes them in batches with
  ``os.write`` on a file descriptor of its own (a duplicate of stdout for ``-``), so a
  pipe nobody reads, a full disk or a slow NFS mount stalls only that thread.
* ``close`` flushes what it can within ``close_timeout`` seconds and never hangs.
* A log file that cannot be opened is a ``ConfigError`` naming it (at start-up, before
  serving).
"""

from __future__ import annotations

import collections
import datetime as _dt
import json
import logging
import os
import sys
import threading
import time
from typing import IO, Any

from edgerules.errors import ConfigError

__all__ = ["AccessLog"]

log = logging.getLogger("edgerules.proxy")

DEFAULT_MAX_QUEUE = 10_000  # records (a few MB at most) waiting for the writer thread
_WAKE_INTERVAL = 0.05  # seconds the writer sleeps when the queue is empty
_DROP_REPORT_INTERVAL = 10.0  # seconds between two "lines dropped" warnings


def _rfc3339(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AccessLog:
    """``AccessLog(path="-" | FILE)`` or ``AccessLog(stream)``; ``AccessLog(None)`` is off.

    ``records`` (tests): set it to ``[]`` to also capture every record synchronously.
    """

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        path: str | None = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
        close_timeout: float = 2.0,
    ) -> None:
        self._fd: int | None = None
        self._stream: IO[str] | None = None
        self._owned = False
        if path is not None and path != "-":
            try:
                self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            except OSError as exc:
                raise ConfigError(
                    f"cannot open access log {path}: {exc.strerror or exc}"
                ) from None
            self._owned = True
        elif path == "-":
            stream = sys.stdout
        if stream is not None and self._fd is None:
            try:
                stream.flush()
                # Our own descriptor: the writer thread never touches the stream object,
                # whose buffer lock a thread stalled in write() would hold at exit.
                self._fd = os.dup(stream.fileno())
                self._owned = True
            except (AttributeError, OSError, ValueError):
                self._stream = stream  # no file descriptor (StringIO): written directly
        self.stream = stream  # kept for callers that check whether logging is on
        self.enabled = self._fd is not None or stream is not None
        self.records: list[dict[str, Any]] | None = None  # tests may set [] to capture
        self.max_queue = max(1, int(max_queue))
        self.close_timeout = close_timeout
        self.dropped = 0  # records dropped because the queue was full
        self.written = 0  # records handed to the operating system
        self.write_errors = 0
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    # -- producer side (the event loop) ------------------------------------------------
    def write(self, record: dict[str, Any]) -> None:
        """Queue one record (never blocks, never raises)."""
        if "time" not in record:
            record["time"] = time.time()  # formatted by the writer thread
        if self.records is not None:
            self.records.append(record)
        if not self.enabled or self._closing:
            return
        queue = self._queue
        if len(queue) >= self.max_queue:
            self.dropped += 1
            return
        queue.append(record)  # deque.append is atomic: no lock on the hot path
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="edgerules-access-log", daemon=True
        )
        self._thread.start()

    # -- consumer side (the writer thread) --------------------------------------------
    def _format(self, record: dict[str, Any]) -> bytes:
        ts = record.get("time")
        if isinstance(ts, float):
            record = {**record, "time": _rfc3339(ts)}
        return (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode(
            "utf-8", "replace"
        )

    def _drain(self) -> None:
        queue = self._queue
        lines: list[bytes] = []
        while queue and len(lines) < 512:
            try:
                lines.append(self._format(queue.popleft()))
            except IndexError:
                break
            except Exception:  # an unserialisable value: lose this line, not the log
                self.write_errors += 1
        if lines:
            self._emit(b"".join(lines), len(lines))

    def _emit(self, data: bytes, count: int) -> None:
        try:
            if self._fd is not None:
                view = memoryview(data)
                while view:
                    n = os.write(self._fd, view)
                    view = view[n:]
            elif self._stream is not None:
                self._stream.write(data.decode("utf-8"))
                self._stream.flush()
            self.written += count
        except (OSError, ValueError):
            self.write_errors += 1

    def _run(self) -> None:
        reported = 0
        last_report = 0.0
        while True:
            if self._queue:
                self._drain()
            elif self._closing:
                return
            else:
                self._wake.wait(_WAKE_INTERVAL)
                self._wake.clear()
            dropped = self.dropped
            now = time.monotonic()
            if dropped != reported and now - last_report >= _DROP_REPORT_INTERVAL:
                log.warning(
                    "access log: %d records dropped so far (the log reader is slower than "
                    "the traffic; queue limit %d)",
                    dropped,
                    self.max_queue,
                )
                reported, last_report = dropped, now

    def close(self) -> None:
        """Flush within ``close_timeout`` seconds, then release the descriptor."""
        self._closing = True
        thread = self._thread
        if thread is not None:
            self._wake.set()
            thread.join(self.close_timeout)
            if thread.is_alive():
                return  # stalled in write(): leave the daemon thread and its descriptor
        if self.dropped:
            log.warning("access log: %d records dropped (queue full)", self.dropped)
        if self._owned and self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
