"""Pooled HTTP/1.1 client to the origin: one ``asyncio.Protocol`` per connection, heads
and bodies parsed by :mod:`edgerules.proxy.http1`.

Owns: ``UpstreamPool`` (keep-alive connections to one origin, bounded idle pool with a
TTL) and ``UpstreamConnection`` (one connection: write a request, read the response head
and its body pieces, each wait bounded by a timeout).

Invariants:
* A connection returns to the pool only when the exchange finished cleanly on both sides:
  the request was written whole, the response body was read to its end as framed, the
  response allows keep-alive, and nothing beyond it arrived.
* Every failure surfaces as ``UpstreamError`` carrying the status the client should get
  (502 refused/bad response, 504 timeout) and whether any response byte had arrived.
* The origin's response is held to the same grammar as a client's request (``http1``:
  h11's acceptance); a ``101`` nobody asked for is a bad response (the proxy never
  forwards ``Upgrade``); other ``1xx`` are skipped.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable

from edgerules.proxy import http1
from edgerules.proxy.config import Upstream
from edgerules.proxy.waiter import Waiter, WriteFlow

__all__ = ["UpstreamConnection", "UpstreamError", "UpstreamPool"]

_MAX_HEAD = 64 * 1024  # an origin's response head larger than this is a bad response
_READ_HIGH = 256 * 1024  # buffered response bytes above which the socket is not read


class UpstreamError(Exception):
    """The origin failed; ``status`` is 502 (refused, reset, bad HTTP) or 504 (timeout)."""

    def __init__(self, status: int, message: str, *, before_response: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.before_response = before_response  # no response byte was received yet


class UpstreamConnection(WriteFlow):
    """One connection to the origin (also its own protocol object)."""

    __slots__ = (
        "_drain_waiter", "_read_paused", "_waiter", "_write_paused", "buf", "closed", "eof",
        "got_response_bytes", "idle_since", "reader", "requests", "reusable", "transport",
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.eof = False
        self.closed = False
        self.idle_since = time.monotonic()
        self.requests = 0
        self.got_response_bytes = False
        self.reader: http1.LengthReader | http1.ChunkedReader | http1.EOFReader | None = None
        self.reusable = False
        self._waiter = Waiter()
        self._drain_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._read_paused = False

    # -- asyncio callbacks --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf = self.buf + data if self.buf else data
        self.got_response_bytes = True
        if len(self.buf) > _READ_HIGH and not self._read_paused and self.transport:
            self._read_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = self.closed = True
        self._waiter.close()
        self._fail_drain("upstream connection lost")

    def _wake(self) -> None:
        self._waiter.wake()

    # -- writing ------------------------------------------------------------------------
    async def write(self, data: bytes | list[bytes], *, timeout: float) -> None:
        """Write (one call, no copy for a list); wait only when the transport's buffer is
        over its mark (504 after ``timeout``)."""
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            raise UpstreamError(502, "upstream connection failed: closed")
        if isinstance(data, list):
            transport.writelines(data)
        else:
            transport.write(data)
        if not self._write_paused:
            return
        try:
            await self._wait_drained(timeout)
        except TimeoutError:
            raise UpstreamError(504, "upstream did not accept data in time") from None
        except OSError as exc:
            raise UpstreamError(502, f"upstream connection failed: {exc}") from None

    # -- reading ------------------------------------------------------------------------
    async def _wait(self, timeout: float, before_wait: Callable[[], Awaitable[None]] | None) -> None:
        if before_wait is not None:
            await before_wait()
        if self.buf or self.eof:
            return
        try:
            await self._waiter.wait(timeout)
        except TimeoutError:
            raise UpstreamError(
                504, "upstream timed out", before_response=not self.got_response_bytes
            ) from None

    def _consumed(self) -> None:
        if self._read_paused and len(self.buf) <= _READ_HIGH // 2 and self.transport:
            self._read_paused = False
            self.transport.resume_reading()

    async def response_head(self, method: bytes, timeout: float) -> http1.ResponseHead:
        """The final response head (1xx skipped); its body is then read with
        ``body_piece``."""
        while True:
            end = http1.find_head_end(self.buf)
            if end > 0:
                try:
                    head = http1.parse_response_head(self.buf[:end])
                except http1.ProtocolError as exc:
                    raise self._bad(f"bad response from upstream: {exc}") from None
                self.buf = self.buf[end:]
                if head.status == 101:
                    raise self._bad("bad response from upstream: unexpected 101")
                if head.status >= 200:
                    self.reader = http1.response_reader(head, method)
                    self.reusable = head.keep_alive and not isinstance(self.reader, http1.EOFReader)
                    return head
                continue  # 1xx: not relayed
            if end == 0:
                raise self._bad("bad response from upstream: no response line received")
            if http1.obviously_not_http(self.buf) or len(self.buf) > _MAX_HEAD:
                raise self._bad("bad response from upstream: illegal status line")
            if self.eof:
                raise UpstreamError(
                    502,
                    "upstream closed the connection",
                    before_response=not self.buf and not self.got_response_bytes,
                )
            await self._wait(timeout, None)
            self._consumed()

    def _bad(self, message: str) -> UpstreamError:
        return UpstreamError(502, message, before_response=not self.got_response_bytes)

    def body_now(self) -> bytes:
        """Response body bytes already received (``b""`` when none); at the peer's EOF
        the framing is checked (``reader.done`` says when the body is complete)."""
        reader = self.reader
        assert reader is not None
        buf = self.buf
        if buf:
            try:
                data, self.buf = reader.read(buf)
            except http1.ProtocolError as exc:
                raise UpstreamError(502, f"bad response from upstream: {exc}", before_response=False) from None
            if self._read_paused:
                self._consumed()
            return data
        if self.eof and not reader.done:
            try:
                reader.at_eof()
            except http1.ProtocolError as exc:
                raise UpstreamError(502, f"upstream response ended early: {exc}", before_response=False) from None
        return b""

    async def more(self, timeout: float) -> None:
        """Wait for more response bytes (504 after ``timeout``)."""
        await self._wait(timeout, None)

    async def body_piece(
        self, timeout: float, before_wait: Callable[[], Awaitable[None]] | None = None
    ) -> bytes | None:
        """The next piece of the response body, ``None`` at its end. ``before_wait`` runs
        before blocking on the socket."""
        reader = self.reader
        assert reader is not None
        while True:
            data = self.body_now()
            if data:
                return data
            if reader.done:
                return None
            await self._wait(timeout, before_wait)

    # -- life -----------------------------------------------------------------------------
    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def finished_cleanly(self) -> bool:
        """Whether this connection may serve another request."""
        return (
            self.reusable
            and self.reader is not None
            and self.reader.done
            and not self.buf
            and not self.eof
            and not self.closed
        )

    def looks_alive(self) -> bool:
        # The origin may have closed an idle keep-alive connection; EOF shows up here.
        return not self.eof and not self.closed and not self.buf and self.transport is not None and not self.transport.is_closing()


class UpstreamPool:
    def __init__(
        self,
        upstream: Upstream,
        *,
        connect_timeout: float = 5.0,
        max_idle: int = 32,
        idle_ttl: float = 20.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.upstream = upstream
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
        self.idle_ttl = idle_ttl
        self._idle: deque[UpstreamConnection] = deque()
        self._ssl: ssl.SSLContext | None = None
        if upstream.scheme == "https":
            self._ssl = ssl_context or ssl.create_default_context()
        self.opened = 0  # connections ever opened (tests check pooling)

    async def _connect(self) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _transport, conn = await loop.create_connection(
                    UpstreamConnection,
                    self.upstream.host,
                    self.upstream.port,
                    ssl=self._ssl,
                    server_hostname=self.upstream.host if self._ssl else None,
                )
        except TimeoutError:
            raise UpstreamError(504, "timed out connecting to the upstream") from None
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamError(502, f"cannot connect to the upstream: {exc}") from None
        self.opened += 1
        return conn

    async def acquire(self, *, fresh: bool = False) -> tuple[UpstreamConnection, bool]:
        """A connection and whether it was reused from the pool."""
        if self._idle and not fresh:
            now = time.monotonic()
            while self._idle:
                conn = self._idle.pop()  # most recently used first: least likely to be stale
                if now - conn.idle_since <= self.idle_ttl and conn.looks_alive():
                    conn.got_response_bytes = False
                    conn.reader = None
                    return conn, True
                conn.close()
        return await self._connect(), False

    def release(self, conn: UpstreamConnection) -> None:
        if conn.finished_cleanly() and len(self._idle) < self.max_idle:
            conn.idle_since = time.monotonic()
            conn.requests += 1
            self._idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
