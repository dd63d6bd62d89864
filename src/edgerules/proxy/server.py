"""The proxy server: accepts TCP, terminates TLS, speaks HTTP/1.1 (h11), decides, forwards.

Owns: connection lifecycle (limit and eviction, handshake, keep-alive loop, timeouts,
lifetime caps), the client-certificate verdict of a connection (path validation once,
after the handshake, off the event loop; re-checked against the current trust and
revocation state on every request), the per request decision and forwarding, error
responses, graceful shutdown and the access log records.

Invariants:
* Whatever happens on one connection (bad TLS record, malformed HTTP, slow client,
  exception in our code) only that connection is closed; the server keeps serving.
* A request is answered at most once; when a response cannot be completed (origin dies
  mid-body) the client connection is closed so the truncation is visible.
* Client-sent certificate headers never reach the origin (``forwarding``).
* Header names and values are validated once, by h11, when they are parsed (from the
  client or the origin); events the proxy builds from them are created with h11's
  ``_parsed=True`` (no second regex pass), so everything else the proxy adds to a head
  must be ASCII it produced itself (``forwarding``; ``config`` checks the upstream path).
* The proxy and the origin frame every request alike: a head with both
  ``Content-Length`` and ``Transfer-Encoding``, or an HTTP/1.0 head with
  ``Transfer-Encoding``, is refused (400, closed); h11 refuses the other ambiguous
  framings; ``Connection`` tokens never remove framing headers (``forwarding``).
* A ``Host`` naming an mTLS host other than the SNI is refused (421, closed) before any
  rule runs (``_misdirected``): the certificate verdict belongs to the SNI's host.
* Every request is decided with the trust and revocation state read from the store at
  most ``poll_interval`` ago (``certstate.TrustState``): the connection's verdict is
  stamped with the validator and revocation version it was computed under and
  recomputed when either moved (issue 9 item 1). A connection serves at most
  ``max_connection_requests`` requests and ``max_connection_age`` seconds.
* Idle connections cannot lock clients out (issue 9 item 3): at ``max_connections`` a
  new connection evicts the oldest connection that is not in a request (those that
  never sent one first); when every connection is in a request, the newcomer is
  answered 503 (a bounded overflow), never silently reset while slots are idle.
* Metrics observe the server through ``self.observer`` (``proxy.observer``): one call
  per completed handshake, per certificate validation and per access-log record.
* During shutdown no new connection is accepted, idle keep-alive connections are
  closed, in-flight requests finish (with ``Connection: close``) within the grace time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import h11

from edgerules.enforcement.decision import AllowAll, Decider, Verdict, block_page
from edgerules.enforcement.forwarding import (
    certificate_headers,
    client_response_headers,
    origin_request_headers,
)
from edgerules.enforcement.request_fields import RequestInfo
from edgerules.proxy.accesslog import AccessLog
from edgerules.proxy.certstate import TrustState, ValidationPool
from edgerules.proxy.config import ProxyConfig
from edgerules.proxy.observer import NullObserver, ProxyObserver
from edgerules.proxy.tls import ServerTLS, TLSError, TLSInfo, TLSStream, close_transport
from edgerules.proxy.upstream import UpstreamConnection, UpstreamError, UpstreamPool
from edgerules.tls import NOT_REQUESTED

__all__ = ["ProxyServer", "ServerThread", "run_proxy"]

log = logging.getLogger("edgerules.proxy")

# How long a connection closed with request input unread keeps discarding it (after
# our response and FIN) so that the client can read the response before any reset.
_LINGER_SECONDS = 2.0
_SWITCH_INTERVAL = 0.0005  # seconds; see run_proxy


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class _ClientGone(Exception):
    """The client went away, timed out or broke the protocol; close its connection."""

    def __init__(self, status: int | None = None, message: str = "") -> None:
        super().__init__(message)
        self.status = status  # a status still worth sending (400/408/431), or None


def _cert_serial(client_auth: Any) -> str | None:
    if client_auth is None or not getattr(client_auth, "presented", False):
        return None
    try:
        value = client_auth.fields().get("cf.tls_client_auth.cert_serial", b"")
    except Exception:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return value or None


def _cert_status(client_auth: Any) -> str:
    """Workers' ``certVerified`` wording: SUCCESS, NONE, FAILED:<reason> (+ revoked)."""
    if client_auth is None or not getattr(client_auth, "presented", False):
        return "NONE"
    if getattr(client_auth, "verified", False):
        return "SUCCESS, REVOKED" if getattr(client_auth, "revoked", False) else "SUCCESS"
    reason = getattr(client_auth, "failure_reason", "")
    return f"FAILED:{reason}" if reason else "FAILED"


class ProxyServer:
    """One listening proxy. Use ``await start()`` then ``await shutdown()``."""

    def __init__(
        self,
        config: ProxyConfig,
        decider: Decider | None = None,
        *,
        store: Any = None,
        mtls_lookup: Callable[[str | None], Any] | None = None,
        revocation_version: Callable[[], int] | None = None,
        access_log: AccessLog | None = None,
        observer: ProxyObserver | None = None,
    ) -> None:
        self.config = config
        self.limits = config.limits
        self.decider: Decider = decider if decider is not None else AllowAll()
        self.store = store
        # ``mtls_lookup`` (embedding, tests) replaces the store's hostname lookup;
        # ``revocation_version`` then says when revocation answers may have changed.
        self.trust = TrustState(
            store=store,
            lookup=mtls_lookup,
            revocation_version=revocation_version,
            poll_interval=config.poll_interval,
        )
        self.validation = ValidationPool(budget=self.limits.validation_budget)
        self.access_log = access_log if access_log is not None else AccessLog(None)
        # Metrics (proxy.observer): told of handshakes, validations and access-log records.
        self.observer: ProxyObserver = observer if observer is not None else NullObserver()
        self.tls = ServerTLS(
            cert_file=config.cert_file,
            key_file=config.key_file,
            dev_cert_hostnames=config.dev_cert_hostnames,
            mtls_lookup=self.validator_for,
        )
        up = config.upstream_parsed
        self.pool = UpstreamPool(
            up,
            connect_timeout=self.limits.connect_timeout,
            max_idle=self.limits.upstream_max_idle,
            idle_ttl=self.limits.upstream_idle_ttl,
        )
        self.not_requested = NOT_REQUESTED
        self._server: asyncio.AbstractServer | None = None
        self._conns: dict[asyncio.Task[Any], _ClientConnection] = {}
        # Connections not in a request, in the order they became so (evicted oldest
        # first): those that never sent a request, then keep-alive ones between requests.
        self._fresh: dict[_ClientConnection, None] = {}
        self._between: dict[_ClientConnection, None] = {}
        self._overflow = 0  # connections beyond the limit, being answered 503
        self.max_overflow = self.limits.max_connections // 16 + 8
        self.draining = False
        self.port: int | None = None
        self.stats = {
            "connections": 0,
            "rejected": 0,
            "evicted": 0,
            "overflow_503": 0,
            "tls_failures": 0,
            "requests": 0,
            "reverified": 0,
        }
        self._stopped: asyncio.Event | None = None  # created in start(), on the loop

    # -- mTLS lookup ---------------------------------------------------------------
    def validator_for(self, sni: str | None) -> Any:
        """The hostname's validator (mTLS enabled) or None, as of ``poll_interval`` ago."""
        return self.trust.validator_for(sni)

    def metrics(self) -> dict[str, int]:
        """Counters for monitoring (``stats`` plus what other parts count)."""
        return {
            **self.stats,
            "open_connections": len(self._conns),
            "access_log_dropped": self.access_log.dropped,
            "validation_timeouts": self.validation.timeouts,
            "store_read_errors": self.trust.read_errors,
        }

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> int:
        self._stopped = asyncio.Event()
        self._server = await asyncio.start_server(
            self._on_client,
            self.config.listen_host,
            self.config.listen_port,
            backlog=min(self.limits.max_connections, 1024),
            reuse_address=True,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def wait_stopped(self) -> None:
        assert self._stopped is not None
        await self._stopped.wait()

    async def shutdown(self, grace: float | None = None) -> None:
        """Stop accepting, close idle connections, let in-flight requests finish."""
        if self.draining:
            if self._stopped is not None:
                await self._stopped.wait()
            return
        self.draining = True
        grace = self.limits.shutdown_grace if grace is None else grace
        if self._server is not None:
            self._server.close()
        for task, conn in list(self._conns.items()):
            if conn.idle:
                task.cancel()
        tasks = list(self._conns)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        self.pool.close()
        self.validation.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        self.access_log.close()
        if self._stopped is not None:
            self._stopped.set()

    # -- connection slots (issue 9 item 3) --------------------------------------------
    def _evict_one(self) -> bool:
        """Close the oldest connection that is not in a request; False if there is none."""
        for table in (self._fresh, self._between):
            for victim in table:
                victim.evict()
                self.stats["evicted"] += 1
                return True
        return False

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.draining:
            close_transport(writer)
            return
        overflow = False
        if len(self._conns) >= self.limits.max_connections and not self._evict_one():
            if self._overflow >= self.max_overflow:
                self.stats["rejected"] += 1
                close_transport(writer)
                return
            overflow = True  # every slot is in a request: answer this one 503
        task = asyncio.current_task()
        assert task is not None
        conn = _ClientConnection(self, reader, writer, task, overflow=overflow)
        if overflow:
            self._overflow += 1
        else:
            self._conns[task] = conn
        try:
            await conn.run()
        except asyncio.CancelledError:
            pass  # shutdown, idle close or eviction: the transport is closed below
        except Exception:
            log.exception("unexpected error on a client connection")
        finally:
            close_transport(writer)
            conn.forget()
            if overflow:
                self._overflow -= 1


class _ClientConnection:
    def __init__(
        self,
        server: ProxyServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        task: asyncio.Task[Any],
        *,
        overflow: bool = False,
    ) -> None:
        self.server = server
        self.limits = server.limits
        self.reader = reader
        self.writer = writer
        self.task = task
        self.overflow = overflow  # beyond the connection limit: answer 503 and close
        self.idle = True  # True while no request is being handled (shutdown may cancel)
        self.started = time.monotonic()
        self.expires = self.started + self.limits.max_connection_age
        # The trust state this connection's verdict was computed under (issue 9 item 1):
        # the hostname's validator (None: no mTLS) and the revocation version.
        self.validator: Any = None
        self.revocation_version = 0
        self.cert_requested = False  # the current state asks this host for a certificate
        if not overflow:
            server._fresh[self] = None
        peer = writer.get_extra_info("peername") or ("0.0.0.0", 0)
        sock = writer.get_extra_info("sockname") or ("0.0.0.0", 0)
        self.client_ip = str(peer[0])
        self.server_ip = str(sock[0])
        self.server_port = int(sock[1])
        self.requests = 0
        server.stats["connections"] += 1
        self.id = server.stats["connections"]  # for the access log: requests sharing a connection
        self.stream: TLSStream | None = None
        self.h: h11.Connection | None = None
        self.client_auth: Any = None
        self.tls_info: TLSInfo | None = None
        self._out: list[bytes] = []  # serialized client output not yet written
        self._timed_out = False  # a 408 was due: close without lingering
        self._last = False  # the request being answered is the connection's last

    # -- slots: which connections may be evicted (issue 9 item 3) ------------------
    def _busy(self) -> None:
        """A request started: not evictable until it is answered."""
        self.idle = False
        self.server._fresh.pop(self, None)
        self.server._between.pop(self, None)

    def _between_requests(self) -> None:
        self.idle = True
        if not self.overflow:
            self.server._between[self] = None  # newest last

    def evict(self) -> None:
        """Close this connection now, for a newcomer (it is in no request)."""
        self.forget()
        close_transport(self.writer)
        self.task.cancel()

    def forget(self) -> None:
        """Release the slot (idempotent)."""
        server = self.server
        server._fresh.pop(self, None)
        server._between.pop(self, None)
        if server._conns.get(self.task) is self:
            del server._conns[self.task]

    # -- connection ----------------------------------------------------------------
    async def run(self) -> None:
        ssl_conn, info = self.server.tls.new_connection()
        stream = TLSStream(
            ssl_conn, info, self.reader, self.writer, write_timeout=self.limits.body_timeout
        )
        self.stream = stream
        accepted = time.monotonic()
        try:
            await asyncio.wait_for(stream.handshake(), self.limits.handshake_timeout)
        except (TLSError, OSError, TimeoutError) as exc:
            self.server.stats["tls_failures"] += 1
            log.info("TLS handshake with %s failed: %s", self.client_ip, exc or type(exc).__name__)
            return
        except Exception as exc:  # e.g. the store lookup raised inside the SNI callback
            self.server.stats["tls_failures"] += 1
            log.warning("TLS handshake with %s aborted: %s", self.client_ip, exc)
            return
        self.tls_info = info
        observer = self.server.observer
        observer.handshake(time.monotonic() - accepted)
        self.h = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_header_bytes)
        if self.overflow:
            await self._answer_overflow()
            return
        # The verdict is computed under the state the handshake saw (the validator the
        # SNI callback chose) and the revocation version read before validating.
        self.validator = info.validator if info.cert_requested else None
        self.cert_requested = info.cert_requested
        self.revocation_version = self.server.trust.revocation_version()
        try:
            if self.validator is None:
                self.client_auth = self.server.not_requested
            else:
                self.client_auth = await self.server.validation.validate(
                    self.validator, info.chain_der, info.sni, source=self.client_ip
                )
        except Exception:
            log.exception("client certificate validation failed unexpectedly; closing")
            await stream.close()
            return
        if self.validator is not None:
            observer.validated(self.validator, self.client_auth)
        try:
            while not self.server.draining:
                request = await self._read_request()
                if request is None:
                    break
                keep_alive = await self._handle(request)
                self.requests += 1
                self.server.stats["requests"] += 1
                self._between_requests()
                if not keep_alive or self._last or self.server.draining:
                    break
                h = self.h
                if h.our_state is h11.DONE and h.their_state is h11.DONE:
                    h.start_next_cycle()
                else:
                    break
        except _ClientGone:
            pass
        except (TLSError, OSError, TimeoutError) as exc:
            log.debug("connection from %s ended: %s", self.client_ip, exc)
        await stream.close(linger=_LINGER_SECONDS if self._input_unread() else 0.0)

    async def _answer_overflow(self) -> None:
        """Every slot is in a request: read this connection's first request head and
        answer 503 (instead of resetting a client that cannot know why)."""
        self.server.stats["overflow_503"] += 1
        assert self.stream is not None
        request = await self._read_request()
        if request is not None:
            self._busy()
            await self._send_simple(
                503,
                b"text/plain; charset=utf-8",
                b"503 Service Unavailable\nEvery connection slot is busy; retry shortly.\n",
                close=True,
                extra=[(b"Retry-After", b"1")],
            )
        await self.stream.close(linger=_LINGER_SECONDS if self._input_unread() else 0.0)

    async def _current_client_auth(self, info: RequestInfo) -> bool:
        """Bring the connection's verdict up to the current trust and revocation state
        (issue 9 item 1). Cheap when nothing moved: two comparisons. Returns False when
        the connection cannot be judged any more (answered 421 and to be closed)."""
        tls = self.tls_info
        assert tls is not None
        server = self.server
        validator = server.trust.validator_for(tls.sni)
        version = server.trust.revocation_version()
        if validator is self.validator and version == self.revocation_version:
            return True
        server.stats["reverified"] += 1
        if validator is None:
            # mTLS is off for the SNI now: judged as a new connection would be.
            self.client_auth = server.not_requested
            self.cert_requested = False
        elif not tls.cert_requested:
            # mTLS is on now, but this handshake asked for no certificate: the client
            # must connect again to be asked (as for a Host naming another mTLS host).
            await self._send_error(
                421,
                "this host now requires a client certificate, which this connection's "
                "handshake did not ask for: connect again",
                close=True,
                info=info,
            )
            return False
        else:
            self.client_auth = await server.validation.validate(
                validator, tls.chain_der, tls.sni, source=self.client_ip
            )
            self.cert_requested = True
            server.observer.validated(validator, self.client_auth)
        self.validator, self.revocation_version = validator, version
        return True

    def _input_unread(self) -> bool:
        """Whether the client may still be sending what we will not read: a request body
        left unread (answered early: blocked, refused, 502) or bytes after a bad head."""
        h = self.h
        if h is None or self._timed_out:
            return False  # a client too slow for our timeouts gets no extra time
        return h.their_state in (h11.SEND_BODY, h11.ERROR) or bool(h.trailing_data[0])

    # -- reading from the client ---------------------------------------------------
    async def _recv(self, timeout: float) -> bytes:
        assert self.stream is not None
        # asyncio.timeout, not wait_for: no task per read (docs/proxy-bench.md).
        async with asyncio.timeout(timeout):
            return await self.stream.recv()

    def _next_event(self) -> Any:
        assert self.h is not None
        try:
            return self.h.next_event()
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint if exc.error_status_hint in (400, 431) else 400
            raise _ClientGone(status, str(exc)) from None

    async def _read_request(self) -> h11.Request | None:
        """The next request head, or None when the connection should just close."""
        limits = self.limits
        first = self.requests == 0
        try:
            event = self._next_event()
            if event is not h11.NEED_DATA:
                self._busy()  # a pipelined request was already buffered
            else:
                # Waiting for a request, silently closed on timeout: the first one must
                # come soon after the handshake (an idle newcomer holds a slot), a later
                # one within the keep-alive idle time, and none after the age cap.
                now = time.monotonic()
                if first:
                    wait = limits.first_request_timeout - (now - self.started)
                else:
                    wait = min(limits.idle_timeout, self.expires - now)
                if wait <= 0:
                    return None
                try:
                    data = await self._recv(wait)
                except TimeoutError:
                    return None
                if not data:
                    return None
                self._busy()
                self.h.receive_data(data)  # type: ignore[union-attr]
                # Once a request started, its whole head must arrive in header_timeout
                # (the first one within first_request_timeout of the handshake): a
                # slowloris client trickling bytes cannot hold the connection.
                head_time = limits.header_timeout
                if first:
                    head_time = min(
                        head_time,
                        max(0.0, limits.first_request_timeout - (time.monotonic() - self.started)),
                    )
                async with asyncio.timeout(head_time):
                    while True:
                        event = self._next_event()
                        if event is not h11.NEED_DATA:
                            break
                        data = await self.stream.recv()  # type: ignore[union-attr]
                        self.h.receive_data(data)  # type: ignore[union-attr]
        except TimeoutError:
            await self._send_error(408, "request head not received in time", close=True)
            return None
        except _ClientGone as gone:
            if gone.status is not None:
                await self._send_error(gone.status, gone.args[0] if gone.args else "", close=True)
            return None
        if isinstance(event, h11.Request):
            # h11 bounds only a head that arrives in pieces; one that arrived whole in a
            # single read is measured here (request line + header lines).
            size = len(event.method) + len(event.target) + 12
            size += sum(len(n) + len(v) + 4 for n, v in event.headers.raw_items())
            if size > self.limits.max_header_bytes:
                await self._send_error(431, "request header fields too large", close=True)
                return None
            if len(event.headers) > self.limits.max_header_count:
                await self._send_error(431, "too many header fields", close=True)
                return None
            names = {name for name, _ in event.headers}
            if b"transfer-encoding" in names and b"content-length" in names:
                # h11 frames by Transfer-Encoding; an origin framing by Content-Length
                # would read the rest as another request (TE.CL smuggling). RFC 9112
                # §6.1 allows refusing and requires closing the connection either way.
                await self._send_error(
                    400, "Content-Length and Transfer-Encoding together", close=True
                )
                return None
            if b"transfer-encoding" in names and event.http_version == b"1.0":
                # RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty
                # framing (1.0 origins do not know chunked): refuse, then close.
                await self._send_error(
                    400, "Transfer-Encoding in an HTTP/1.0 request", close=True
                )
                return None
            return event
        return None  # ConnectionClosed or similar

    async def _client_body_event(self) -> Any:
        while True:
            event = self._next_event()
            if event is not h11.NEED_DATA:
                return event
            try:
                data = await self._recv(self.limits.body_timeout)
            except TimeoutError:
                raise _ClientGone(408, "request body not received in time") from None
            self.h.receive_data(data)  # type: ignore[union-attr]

    # -- writing to the client -----------------------------------------------------
    def _queue(self, event: Any) -> None:
        """Serialize an event for the client without writing it yet."""
        assert self.h is not None
        try:
            data = self.h.send(event)
        except h11.LocalProtocolError as exc:
            raise _ClientGone(None, f"cannot send to client: {exc}") from None
        if data:
            self._out.append(data)

    async def _flush(self) -> None:
        """Write everything queued as one TLS write (one syscall for small responses)."""
        if not self._out:
            return
        assert self.stream is not None
        data = b"".join(self._out)
        self._out.clear()
        try:
            await self.stream.send(data)
        except (TLSError, OSError, TimeoutError) as exc:
            raise _ClientGone(None, f"client write failed: {exc}") from None

    async def _send(self, event: Any) -> None:
        self._queue(event)
        await self._flush()

    def _can_respond(self) -> bool:
        return self.h is not None and self.h.our_state in (h11.IDLE, h11.SEND_RESPONSE)

    async def _send_simple(
        self,
        status: int,
        content_type: bytes,
        body: bytes,
        *,
        close: bool = False,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> bool:
        if not self._can_respond():
            return False
        headers = [
            (b"Content-Type", content_type),
            (b"Content-Length", str(len(body)).encode()),
            (b"Cache-Control", b"no-store"),
        ]
        if extra:
            headers.extend(extra)
        if close or self._last or self.server.draining:
            headers.append((b"Connection", b"close"))
        try:
            self._queue(
                h11.Response(
                    status_code=status, headers=headers, reason=_reason(status), _parsed=True
                )
            )
            self._queue(h11.Data(data=body))
            self._queue(h11.EndOfMessage())
            await self._flush()
        except _ClientGone:
            return False
        return True

    async def _send_error(
        self, status: int, detail: str, *, close: bool, info: RequestInfo | None = None
    ) -> None:
        if status == 408:
            self._timed_out = True
        reason = _reason(status).decode() or "Error"
        body = f"{status} {reason}\n{detail}\n".encode("utf-8", "replace")
        sent = await self._send_simple(status, b"text/plain; charset=utf-8", body, close=close)
        if sent and status in (400, 405, 408, 421, 431):
            # Protocol-level errors are requests too: keep the one-line-per-request log.
            self._log(
                info, None, status, len(body), time.monotonic(), decision="error", error=detail
            )

    # -- one request ---------------------------------------------------------------
    async def _handle(self, request: h11.Request) -> bool:
        """Answer one request; returns whether the connection may be kept alive."""
        started = time.monotonic()
        tls = self.tls_info
        assert tls is not None
        # Defence in depth (issue 9 item 1): a connection serves a bounded number of
        # requests for a bounded time; the last response says "Connection: close".
        self._last = (
            self.requests + 1 >= self.limits.max_connection_requests or started >= self.expires
        )
        if request.method == b"CONNECT":
            # A reverse proxy does not tunnel; h11 would also switch protocols on a 2xx.
            await self._send_error(405, "CONNECT is not supported", close=True)
            return False
        info = RequestInfo(
            method=request.method,
            target=request.target,
            http_version=request.http_version,
            headers=list(request.headers.raw_items()),
            client_ip=self.client_ip,
            server_ip=self.server_ip,
            server_port=self.server_port,
            scheme="https",
            tls_version=tls.version,
            tls_cipher=tls.cipher,
            sni=tls.sni,
        )
        try:
            if not await self._current_client_auth(info):
                return False
        except Exception:  # the store lookup or the validator failed: fail closed
            log.exception("re-checking the client certificate failed; answering 500")
            return await self._internal_error(info, started, "certificate check failed")
        try:
            misdirected = self._misdirected(info)
        except Exception:  # the store lookup failed: answer like a failing rule
            log.exception("mTLS lookup for the Host header failed; answering 500")
            return await self._internal_error(info, started, "mTLS lookup failed")
        if misdirected:
            await self._send_error(
                421,
                "this host requires a client certificate, which this connection's TLS "
                "server name did not ask for: connect again with the host's name as SNI",
                close=True,
                info=info,
            )
            return False
        try:
            verdict = self.server.decider.decide(info, self.client_auth)
        except Exception:
            log.exception("rule evaluation failed; answering 500")
            return await self._internal_error(info, started, "rule evaluation failed")
        if verdict.outcome != "allow":
            return await self._answer_blocked(info, verdict, started)
        return await self._forward(info, verdict, started)

    async def _internal_error(self, info: RequestInfo, started: float, detail: str) -> bool:
        """Answer 500 and close (our side failed, the request may be fine); logged."""
        await self._send_error(500, detail, close=True)
        self._log(info, None, 500, 0, started, decision="error", error=detail)
        return False

    def _misdirected(self, info: RequestInfo) -> bool:
        """Whether the Host names an mTLS host other than the SNI (RFC 9110 §15.5.20).

        The certificate is asked for (and validated) per connection, by SNI; rules and
        the origin go by Host. A client could present the SNI of a plain host, skip the
        CertificateRequest, then name an mTLS host; or name a second mTLS host, whose
        CAs may differ from those the certificate was checked against. Either is refused
        with 421 before any rule runs. A Host naming a plain host on an mTLS connection
        is served (nothing is hidden from its rules)."""
        tls = self.tls_info
        assert tls is not None
        host = info.hostname().decode("ascii", "replace")
        if not host or host == tls.sni:
            return False
        return self.server.validator_for(host) is not None

    async def _request_body_done(self) -> bool:
        """Consume an already-buffered empty body; True when the request is complete."""
        while True:
            event = self._next_event()
            if isinstance(event, h11.EndOfMessage):
                return True
            if not isinstance(event, h11.Data):
                return False  # NEED_DATA: body still on the wire

    async def _answer_blocked(self, info: RequestInfo, verdict: Verdict, started: float) -> bool:
        status, ctype, body = block_page(
            verdict,
            self.client_auth,
            accept=info.header(b"accept") or b"",
            cert_requested=self.cert_requested,
        )
        try:
            complete = await self._request_body_done()
        except _ClientGone:
            complete = False
        # An unread request body would be parsed as the next request: close instead.
        await self._send_simple(status, ctype, body, close=not complete)
        self._log(info, verdict, status, len(body), started)
        return complete

    async def _forward(self, info: RequestInfo, verdict: Verdict, started: float) -> bool:
        config = self.server.config
        up = config.upstream_parsed
        hostname = info.hostname().decode("ascii", "replace")
        policy = config.forwarding_for(hostname)
        headers = info.header_map()
        chunked = b"transfer-encoding" in headers
        has_body = chunked or any(
            v.strip() not in (b"0", b"") for v in headers.get(b"content-length", ())
        )
        cert_headers = certificate_headers(
            self.client_auth, policy, first_request=self.requests == 0
        )
        out_headers = origin_request_headers(
            info.headers,
            client_ip=self.client_ip,
            original_host=info.host_header(),
            upstream_netloc=up.netloc,
            preserve_host=config.preserve_host,
            cert_headers=cert_headers,
            chunked_body=chunked,
        )
        target = (
            (up.base_path.encode() + info.origin_target()) if up.base_path else info.origin_target()
        )
        # _parsed=True: h11 skips re-validating what it validated when it parsed the
        # client's request (names, values, target) — the headers we add are ASCII we
        # built (addresses, Base64, hex, escaped DNs). It still checks the framing
        # headers. The profile showed the regex validation as h11's largest cost.
        upstream_request = h11.Request(
            method=info.method, target=target, headers=out_headers, _parsed=True
        )
        if not has_body:
            try:
                if not await self._request_body_done():
                    has_body = True  # framing said empty but h11 disagrees: stream it
            except _ClientGone as gone:
                await self._send_error(gone.status or 400, str(gone), close=True)
                return False
        pool = self.server.pool
        timeout = self.limits.upstream_timeout
        conn: UpstreamConnection | None = None
        response: h11.Response | None = None
        for attempt in (0, 1):
            try:
                conn, reused = await pool.acquire(fresh=attempt > 0)
            except UpstreamError as err:
                return await self._upstream_failed(info, verdict, err, started)
            try:
                if has_body:
                    await conn.send(upstream_request, timeout=timeout)
                    await self._pump_request_body(conn)
                else:
                    await conn.send(upstream_request, h11.EndOfMessage(), timeout=timeout)
                while True:
                    event = await conn.next_event(timeout)
                    if isinstance(event, h11.Response):
                        response = event
                        break
                    if isinstance(event, h11.ConnectionClosed):
                        raise UpstreamError(502, "upstream closed the connection")
                    # InformationalResponse (1xx): not relayed
                break
            except UpstreamError as err:
                conn.close()
                if attempt == 0 and reused and not has_body and err.before_response:
                    continue  # a stale pooled connection: retry once on a fresh one
                return await self._upstream_failed(info, verdict, err, started)
            except _ClientGone as gone:
                conn.close()
                if gone.status is not None:
                    await self._send_error(gone.status, str(gone), close=True)
                return False
        assert conn is not None and response is not None
        # -- relay the response ----------------------------------------------------
        resp_headers = client_response_headers(response.headers.raw_items())
        if self.server.draining or self._last:
            resp_headers.append((b"Connection", b"close"))
        sent = 0
        try:
            # Head and body are queued and written together: a small response leaves in
            # one TLS write; a streamed one is flushed whenever the origin makes us wait.
            self._queue(
                h11.Response(
                    status_code=response.status_code,
                    headers=resp_headers,  # validated by h11 when the origin's were parsed
                    reason=response.reason or _reason(response.status_code),
                    _parsed=True,
                )
            )
            while True:
                event = await conn.next_event(timeout, before_wait=self._flush)
                if isinstance(event, h11.Data):
                    sent += len(event.data)
                    self._queue(h11.Data(data=event.data))
                elif isinstance(event, h11.EndOfMessage):
                    self._queue(h11.EndOfMessage())
                    await self._flush()
                    break
                else:
                    raise UpstreamError(502, "upstream response ended early", before_response=False)
        except UpstreamError as err:
            # Headers already went out: the only honest signal left is closing.
            conn.close()
            self._log(info, verdict, response.status_code, sent, started, error=err.message)
            return False
        except _ClientGone:
            conn.close()
            self._log(info, verdict, response.status_code, sent, started, error="client went away")
            return False
        pool.release(conn)
        self._log(info, verdict, response.status_code, sent, started)
        return True

    async def _pump_request_body(self, conn: UpstreamConnection) -> None:
        assert self.h is not None
        timeout = self.limits.upstream_timeout
        if self.h.client_is_waiting_for_100_continue:
            await self._send(h11.InformationalResponse(status_code=100, headers=[]))
        while True:
            event = await self._client_body_event()
            if isinstance(event, h11.Data):
                await conn.send(h11.Data(data=event.data), timeout=timeout)
            elif isinstance(event, h11.EndOfMessage):
                await conn.send(h11.EndOfMessage(), timeout=timeout)
                return
            else:
                raise _ClientGone(None, "client closed during the request body")

    async def _upstream_failed(
        self, info: RequestInfo, verdict: Verdict, err: UpstreamError, started: float
    ) -> bool:
        log.warning(
            "upstream error for %s %s: %s",
            info.method.decode(),
            info.origin_target().decode("ascii", "replace"),
            err.message,
        )
        if err.status == 504:
            body = b"504 Gateway Timeout\nThe origin server did not answer in time.\n"
        else:
            body = b"502 Bad Gateway\nThe origin server could not be reached or answered badly.\n"
        complete = self.h is not None and self.h.their_state is h11.DONE
        await self._send_simple(err.status, b"text/plain; charset=utf-8", body, close=not complete)
        self._log(info, verdict, err.status, len(body), started, error=err.message)
        return complete

    # -- access log ----------------------------------------------------------------
    def _log(
        self,
        info: RequestInfo | None,
        verdict: Verdict | None,
        status: int,
        nbytes: int,
        started: float,
        *,
        decision: str | None = None,
        error: str | None = None,
    ) -> None:
        auth = self.client_auth
        tls = self.tls_info
        record: dict[str, Any] = {
            "client": self.client_ip,
            "conn": self.id,
            "sni": tls.sni if tls else None,
            "host": info.hostname().decode("ascii", "replace") if info else None,
            "method": info.method.decode("ascii", "replace") if info else None,
            "path": info.path_query()[0].decode("ascii", "replace") if info else None,
            "decision": decision or (verdict.outcome if verdict else None),
            "rule": verdict.rule_ref if verdict else None,
            "cert_presented": bool(getattr(auth, "presented", False)),
            "cert_verified": bool(getattr(auth, "verified", False)),
            "cert_revoked": bool(getattr(auth, "revoked", False)),
            "cert_serial": _cert_serial(auth),
            "cert_status": _cert_status(auth),
            "status": status,
            "bytes": nbytes,
            "duration_ms": round((time.monotonic() - started) * 1000, 3),
            "tls_version": tls.version if tls else None,
            "ruleset": verdict.ruleset if verdict else None,
        }
        if error:
            record["upstream_error" if status in (502, 504) else "error"] = error
        self.server.access_log.write(record)
        self.server.observer.request(record)


# -- running -------------------------------------------------------------------------
class ServerThread:
    """Runs a ``ProxyServer`` (or any ``start``/``shutdown`` server) on an event loop in a
    background thread: for tests and the demo. ``stop()`` always joins the thread."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.port: int | None = None
        self.thread = threading.Thread(target=self._run, name="edgerules-proxy", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.port = self.loop.run_until_complete(self.server.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                pending = asyncio.all_tasks(self.loop)
                for task in pending:
                    task.cancel()
                if pending:
                    self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()

    def start(self) -> ServerThread:
        self.thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self, grace: float = 5.0) -> None:
        if not self.thread.is_alive():
            return
        try:
            self.call(self.server.shutdown(grace), timeout=grace + 10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(15)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def event_loop_factory(kind: str = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop for ``run_proxy``: ``uvloop`` (libuv; measured cheaper per request,
    docs/proxy-bench.md) when installed and ``kind`` is ``auto`` or ``uvloop``, else
    asyncio's own (``None``). ``kind == "uvloop"`` without uvloop is a ConfigError."""
    if kind == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if kind == "uvloop":
            from edgerules.errors import ConfigError

            raise ConfigError("--loop uvloop: uvloop is not installed") from None
        return None
    return uvloop.new_event_loop  # type: ignore[no-any-return]


def run_proxy(
    server: ProxyServer, *, on_ready: Callable[[int], None] | None = None, loop: str = "auto"
) -> int:
    """Run until SIGTERM/SIGINT, then shut down gracefully. Returns the exit status."""
    factory = event_loop_factory(loop)

    # Certificate validation runs in worker threads (``certstate``); when one is in Python
    # code it holds the GIL, and the event loop waits up to the switch interval for it
    # after every system call. 0.5 ms instead of 5 ms bounds that wait (issue 9 item 2).
    sys.setswitchinterval(_SWITCH_INTERVAL)

    async def main() -> int:
        port = await server.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, lambda: asyncio.ensure_future(server.shutdown()))
        if on_ready is not None:
            on_ready(port)
        await server.wait_stopped()
        return 0

    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())
