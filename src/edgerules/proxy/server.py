"""The proxy server: accepts TCP, terminates TLS, speaks HTTP/1.1, decides, forwards.

Owns: connection lifecycle (limit and eviction, handshake, keep-alive loop, timeouts,
lifetime caps; one ``TLSProtocol`` and one task per connection, no streams), the client-certificate verdict of a connection (path validation once,
after the handshake, off the event loop; re-checked against the current trust and
revocation state on every request), the per request decision and forwarding, error
responses, graceful shutdown and the access log records.

Invariants:
* Whatever happens on one connection (bad TLS record, malformed HTTP, slow client,
  exception in our code) only that connection is closed; the server keeps serving.
* A request is answered at most once; when a response cannot be completed (origin dies
  mid-body) the client connection is closed so the truncation is visible.
* Client-sent certificate headers never reach the origin (``forwarding``).
* Header names and values are validated once, by ``http1`` (h11's grammar), when they
  are parsed (from the client or the origin); heads the proxy builds from them are not
  validated again, so everything else the proxy adds to a head must be ASCII it produced
  itself (``forwarding``; ``config`` checks the upstream path).
* The proxy and the origin frame every request alike: a head with both
  ``Content-Length`` and ``Transfer-Encoding``, or an HTTP/1.0 head with
  ``Transfer-Encoding``, is refused (400, closed); ``http1`` refuses the other ambiguous
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

from edgerules.enforcement.decision import AllowAll, Decider, Verdict, block_page
from edgerules.enforcement.forwarding import (
    ForwardingPolicy,
    certificate_headers,
    client_response_headers,
    origin_request_head,
)
from edgerules.enforcement.request_fields import RequestInfo
from edgerules.proxy import http1
from edgerules.proxy.accesslog import AccessLog
from edgerules.proxy.certstate import TrustState, ValidationPool
from edgerules.proxy.config import ProxyConfig
from edgerules.proxy.observer import NullObserver, ProxyObserver
from edgerules.proxy.tls import ServerTLS, TLSError, TLSInfo, TLSProtocol
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
        self.upstream_netloc = up.netloc.encode("ascii")
        self.upstream_base = up.base_path.encode("ascii")
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
        self._server = await asyncio.get_running_loop().create_server(
            self._new_protocol,
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

    def _new_protocol(self) -> TLSProtocol:
        return TLSProtocol(self.tls, self._on_connection)

    def _on_connection(self, proto: TLSProtocol) -> None:
        """A TCP connection was accepted: admit it (issue 9 item 3) and start its task."""
        if self.draining:
            proto.transport.close()  # type: ignore[union-attr]
            return
        overflow = False
        if len(self._conns) >= self.limits.max_connections and not self._evict_one():
            if self._overflow >= self.max_overflow:
                self.stats["rejected"] += 1
                proto.transport.close()  # type: ignore[union-attr]
                return
            overflow = True  # every slot is in a request: answer this one 503
        conn = _ClientConnection(self, proto, overflow=overflow)
        task = asyncio.get_running_loop().create_task(conn.run())
        conn.task = task
        if overflow:
            self._overflow += 1
        else:
            self._conns[task] = conn


_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _ClientConnection:
    """One client connection: its TLS protocol, its verdict and its request loop.

    Per-connection parts are computed once and reused by every request while they stay
    valid: the connection's rule-field values (``RequestInfo`` template), the verdict of
    a decider that reads only connection-level fields and ``http.host`` (keyed by the
    decider, the ``ClientAuth`` and the host, so a hot reload or a re-verification (issue
    9 item 1) invalidates it), the certificate forwarding headers (keyed by the
    ``ClientAuth`` and the policy) and the block page bytes (keyed by the verdict).
    Each cache holds one entry (a connection normally sees one host and one verdict):
    an idle connection's memory is small (issue 14: ≤ 32 KB per idle connection)."""

    __slots__ = (
        "_bad_input", "_body", "_body_started", "_cert_headers", "_host_policy", "_last",
        "_log_auth", "_page", "_request", "_responded", "_timed_out", "_verdict",
        "cert_requested", "client_auth", "client_ip", "client_ip_bytes", "expires", "id",
        "idle", "limits", "overflow", "proto", "requests", "revocation_version", "server",
        "server_ip", "server_port", "started", "task", "tls_info", "validator",
    )

    def __init__(self, server: ProxyServer, proto: TLSProtocol, *, overflow: bool = False) -> None:
        self.server = server
        self.limits = server.limits
        self.proto = proto
        self.task: asyncio.Task[Any] | None = None
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
        transport = proto.transport
        assert transport is not None
        peer = transport.get_extra_info("peername") or ("0.0.0.0", 0)
        sock = transport.get_extra_info("sockname") or ("0.0.0.0", 0)
        self.client_ip = str(peer[0])
        self.client_ip_bytes = self.client_ip.encode("ascii", "replace")
        self.server_ip = str(sock[0])
        self.server_port = int(sock[1])
        self.requests = 0
        server.stats["connections"] += 1
        self.id = server.stats["connections"]  # for the access log: requests sharing a connection
        self.client_auth: Any = None
        self.tls_info: TLSInfo | None = None
        self._timed_out = False  # a 408 was due: close without lingering
        self._last = False  # the request being answered is the connection's last
        self._bad_input = False  # the client broke HTTP: what follows is not read
        self._request: http1.RequestHead | None = None  # the request being answered
        self._body: http1.LengthReader | http1.ChunkedReader | None = None  # its body
        self._body_started = False  # a body byte was consumed (no 100 Continue any more)
        self._responded = False  # a response to the current request has started
        # per-connection caches (see the class docstring)
        # (decider, ClientAuth, host, verdict) for a connection-level decider; for one
        # reading per-request fields, (decider, ClientAuth, b"", its connection values)
        self._verdict: tuple[Any, Any, bytes, Any] | None = None
        self._cert_headers: tuple[Any, Any, bool, list[tuple[bytes, bytes]]] | None = None
        self._page: tuple[tuple[Any, ...], bytes, int, int] | None = None
        self._log_auth: tuple[Any, dict[str, Any]] | None = None
        self._host_policy: tuple[bytes, ForwardingPolicy] | None = None

    # -- slots: which connections may be evicted (issue 9 item 3) ------------------
    def _busy(self) -> None:
        """A request started: not evictable until it is answered."""
        self.idle = False
        self.server._fresh.pop(self, None)
        self.server._between.pop(self, None)

    def _between_requests(self) -> None:
        self.idle = True
        if not self.proto.buf:
            self.proto.release_buffers()
        if not self.overflow:
            self.server._between[self] = None  # newest last

    def evict(self) -> None:
        """Close this connection now, for a newcomer (it is in no request)."""
        self.forget()
        if self.proto.transport is not None:
            self.proto.transport.close()
        if self.task is not None:
            self.task.cancel()

    def forget(self) -> None:
        """Release the slot (idempotent)."""
        server = self.server
        server._fresh.pop(self, None)
        server._between.pop(self, None)
        if self.task is not None and server._conns.get(self.task) is self:
            del server._conns[self.task]

    # -- connection ----------------------------------------------------------------
    async def run(self) -> None:
        """The connection's task, one coroutine (no wrapper frame held while idle):
        handshake, certificate verdict, requests; it always ends with the transport
        closed and the slot released."""
        try:
            proto = self.proto
            info = proto.info
            assert info is not None
            try:
                async with asyncio.timeout(self.limits.handshake_timeout):
                    await proto.handshake()
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
            observer.handshake(time.monotonic() - self.started)
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
                await proto.close()
                return
            if self.validator is not None:
                observer.validated(self.validator, self.client_auth)
            server = self.server
            try:
                while not server.draining:
                    if not proto.buf:
                        # The wait for the next request is in this frame (as in
                        # _read_request): an idle connection holds no other coroutine.
                        deadline = self._request_deadline()
                        while deadline is not None and not proto.buf:
                            remaining = deadline - time.monotonic()
                            if proto.eof or remaining <= 0:
                                deadline = None
                            else:
                                try:
                                    await proto.wait(remaining)
                                except TimeoutError:
                                    deadline = None
                        if deadline is None:
                            break
                    request = await self._read_request()
                    if request is None:
                        break
                    keep_alive = await self._handle(request) and request.keep_alive
                    # Not kept while the connection waits for its next request (idle memory).
                    request = None
                    self.requests += 1
                    server.stats["requests"] += 1
                    self._between_requests()
                    if not keep_alive or self._last or server.draining:
                        break
                    body = self._body
                    if body is not None and not body.done:
                        break
                    self._request = self._body = None
            except _ClientGone:
                pass
            except (TLSError, OSError, TimeoutError) as exc:
                log.debug("connection from %s ended: %s", self.client_ip, exc)
            await proto.close(linger=_LINGER_SECONDS if self._input_unread() else 0.0)
        except asyncio.CancelledError:
            pass  # shutdown, idle close or eviction: the transport is closed below
        except Exception:
            log.exception("unexpected error on a client connection")
        finally:
            transport = self.proto.transport
            if transport is not None:
                transport.close()
            self.forget()
            if self.overflow:
                self.server._overflow -= 1

    async def _answer_overflow(self) -> None:
        """Every slot is in a request: read this connection's first request head and
        answer 503 (instead of resetting a client that cannot know why)."""
        self.server.stats["overflow_503"] += 1
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
        await self.proto.close(linger=_LINGER_SECONDS if self._input_unread() else 0.0)

    async def _current_client_auth(self, info: RequestInfo) -> bool:
        """Bring the connection's verdict up to the current trust and revocation state
        (issue 9 item 1). Cheap when nothing moved: two comparisons. Returns False when
        the connection cannot be judged any more (answered 421 and to be closed)."""
        tls = self.tls_info
        assert tls is not None
        trust = self.server.trust
        validator = trust.validator_for(tls.sni)
        version = trust.revocation_version()
        if validator is self.validator and version == self.revocation_version:
            return True
        return await self._reverify(info, validator, version)

    async def _reverify(self, info: RequestInfo, validator: Any, version: int) -> bool:
        """The trust or revocation state moved: recompute the verdict (see above)."""
        tls = self.tls_info
        assert tls is not None
        server = self.server
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
        if self._timed_out:
            return False  # a client too slow for our timeouts gets no extra time
        body = self._body
        return self._bad_input or (body is not None and not body.done) or bool(self.proto.buf)

    # -- reading from the client ---------------------------------------------------
    async def _more(self, timeout: float) -> None:
        """Wait for more plaintext (TimeoutError after ``timeout``); _ClientGone at EOF."""
        proto = self.proto
        if proto.eof:
            raise _ClientGone(None, proto.error or "client closed the connection")
        await proto.wait(timeout)

    def _request_deadline(self) -> float | None:
        """Until when the next request may be awaited (None: not any more). Waiting for a
        request, silently closed on timeout: the first one must come soon after the
        handshake (an idle newcomer holds a slot), a later one within the keep-alive
        idle time, and none after the age cap."""
        now = time.monotonic()
        limits = self.limits
        if self.requests == 0:
            wait = limits.first_request_timeout - (now - self.started)
        else:
            wait = min(limits.idle_timeout, self.expires - now)
        return now + wait if wait > 0 else None

    async def _read_request(self) -> http1.RequestHead | None:
        """The next request head, or None when the connection should just close."""
        limits = self.limits
        proto = self.proto
        first = self.requests == 0
        self._responded = self._body_started = False
        try:
            if not proto.buf:
                deadline = self._request_deadline()
                if deadline is None:
                    return None
                while not proto.buf:
                    remaining = deadline - time.monotonic()
                    if proto.eof or remaining <= 0:
                        return None
                    try:
                        await proto.wait(remaining)
                    except TimeoutError:
                        return None
            self._busy()
            end = http1.find_head_end(proto.buf)
            if end < 0:
                # Once a request started, its whole head must arrive in header_timeout
                # (the first one within first_request_timeout of the handshake): a
                # slowloris client trickling bytes cannot hold the connection.
                head_time = limits.header_timeout
                if first:
                    head_time = min(
                        head_time,
                        max(0.0, limits.first_request_timeout - (time.monotonic() - self.started)),
                    )
                deadline = time.monotonic() + head_time
                while end < 0:
                    buf = proto.buf
                    if http1.obviously_not_http(buf):
                        raise http1.ProtocolError("illegal request line")
                    if len(buf) > limits.max_header_bytes:
                        raise http1.ProtocolError("request header fields too large", 431)
                    if proto.eof:
                        return None  # closed mid-head: nobody to answer
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError
                    await proto.wait(remaining)
                    end = http1.find_head_end(proto.buf)
            buf = proto.buf
            head = buf[:end]
            proto.buf = buf[end:]
            proto.consumed()
            request = http1.parse_request_head(head)
        except TimeoutError:
            await self._send_error(408, "request head not received in time", close=True)
            return None
        except http1.ProtocolError as exc:
            self._bad_input = True
            await self._send_error(exc.status, str(exc), close=True)
            return None
        except _ClientGone:
            return None
        self._request = request
        self._body = http1.request_reader(request)
        # A head within the limit in one piece is measured here (request line + fields).
        if request.size > limits.max_header_bytes:
            self._bad_input = True
            await self._send_error(431, "request header fields too large", close=True)
            return None
        if len(request.headers) > limits.max_header_count:
            self._bad_input = True
            await self._send_error(431, "too many header fields", close=True)
            return None
        if request.chunked:
            if request.content_length is not None:
                # An origin framing by Content-Length would read the rest as another
                # request (TE.CL smuggling). RFC 9112 §6.1 allows refusing and requires
                # closing the connection either way.
                self._bad_input = True
                await self._send_error(
                    400, "Content-Length and Transfer-Encoding together", close=True
                )
                return None
            if request.http_version == b"1.0":
                # RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty
                # framing (1.0 origins do not know chunked): refuse, then close.
                self._bad_input = True
                await self._send_error(400, "Transfer-Encoding in an HTTP/1.0 request", close=True)
                return None
        return request

    async def _body_piece(self) -> bytes | None:
        """The next piece of the request body, None at its end."""
        body = self._body
        assert body is not None
        proto = self.proto
        while not body.done:
            if proto.buf:
                try:
                    data, proto.buf = body.read(proto.buf)
                except http1.ProtocolError as exc:
                    self._bad_input = True
                    raise _ClientGone(exc.status, str(exc)) from None
                proto.consumed()
                if data:
                    self._body_started = True
                    return data
                if body.done:
                    break
            try:
                await self._more(self.limits.body_timeout)
            except TimeoutError:
                raise _ClientGone(408, "request body not received in time") from None
            except _ClientGone:
                raise _ClientGone(None, "client closed during the request body") from None
        self._body_started = True
        return None

    def _request_body_done(self) -> bool:
        """Consume an already-buffered body; True when the request is complete."""
        body = self._body
        if body is None or body.done:
            return True
        proto = self.proto
        if proto.buf:
            try:
                _data, proto.buf = body.read(proto.buf)
            except http1.ProtocolError as exc:
                self._bad_input = True
                raise _ClientGone(exc.status, str(exc)) from None
            proto.consumed()
        return body.done

    # -- writing to the client -----------------------------------------------------
    def _send_now(self, data: bytes) -> None:
        """Encrypt and hand to the transport (no waiting; see ``_drain``)."""
        try:
            self.proto.send(data)
        except (TLSError, OSError) as exc:
            raise _ClientGone(None, f"client write failed: {exc}") from None

    async def _drain(self) -> None:
        try:
            await self.proto.drain(self.limits.body_timeout)
        except (OSError, TimeoutError) as exc:
            raise _ClientGone(None, f"client write failed: {exc}") from None

    async def _write(self, data: bytes) -> None:
        """Encrypt and send; wait only while the client is not taking data."""
        proto = self.proto
        try:
            proto.send(data)
            if proto.write_blocked:
                await proto.drain(self.limits.body_timeout)
        except (TLSError, OSError, TimeoutError) as exc:
            raise _ClientGone(None, f"client write failed: {exc}") from None

    def _close_after(self, close: bool) -> bool:
        request = self._request
        return (
            close
            or self._last
            or self.server.draining
            or (request is not None and not request.keep_alive)
        )

    async def _send_simple(
        self,
        status: int,
        content_type: bytes,
        body: bytes,
        *,
        close: bool = False,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> bool:
        if self._responded:
            return False
        self._responded = True
        data = _simple_response(
            status, content_type, body, extra, self._close_after(close), self._request
        )
        try:
            await self._write(data)
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
    def _request_info(self, request: http1.RequestHead) -> RequestInfo:
        tls = self.tls_info
        assert tls is not None
        return RequestInfo(
            method=request.method,
            target=request.target,
            http_version=request.http_version,
            headers=request.headers,
            client_ip=self.client_ip,
            server_ip=self.server_ip,
            server_port=self.server_port,
            scheme="https",
            tls_version=tls.version,
            tls_cipher=tls.cipher,
            sni=tls.sni,
            host=request.host,
        )

    def _decide(self, info: RequestInfo) -> Verdict:
        decider = self.server.decider
        if getattr(decider, "connection_level", False):
            # Only connection-level fields and http.host: the verdict cannot change while
            # the decider, the certificate verdict and the host stay the same.
            host = info.hostname()
            cached = self._verdict
            if (
                cached is not None
                and cached[0] is decider
                and cached[1] is self.client_auth
                and cached[2] == host
            ):
                return cached[3]
            verdict = decider.decide(info, self.client_auth)
            self._verdict = (decider, self.client_auth, host, verdict)
            return verdict
        if hasattr(decider, "decide_with"):
            # A ruleset reading per-request fields: its connection-constant fields are
            # computed once per connection (same cache slot, keyed the same way; the
            # host part is unused).
            cached = self._verdict
            if cached is None or cached[0] is not decider or cached[1] is not self.client_auth:
                cached = self._verdict = (
                    decider, self.client_auth, b"", decider.connection_values(info, self.client_auth)
                )
            return decider.decide_with(cached[3], info)  # type: ignore[no-any-return]
        return decider.decide(info, self.client_auth)

    async def _handle(self, request: http1.RequestHead) -> bool:
        """Answer one request; returns whether the connection may be kept alive."""
        started = time.monotonic()
        # Defence in depth (issue 9 item 1): a connection serves a bounded number of
        # requests for a bounded time; the last response says "Connection: close".
        self._last = (
            self.requests + 1 >= self.limits.max_connection_requests or started >= self.expires
        )
        if request.method == b"CONNECT":
            # A reverse proxy does not tunnel.
            await self._send_error(405, "CONNECT is not supported", close=True)
            return False
        info = self._request_info(request)
        try:
            # Issue 9 item 1: the current trust and revocation state, two in-memory reads.
            trust = self.server.trust
            validator = trust.validator_for(self.tls_info.sni)  # type: ignore[union-attr]
            version = trust.revocation_version()
            if (
                validator is not self.validator or version != self.revocation_version
            ) and not await self._reverify(info, validator, version):
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
            verdict = self._decide(info)
        except Exception:
            log.exception("rule evaluation failed; answering 500")
            return await self._internal_error(info, started, "rule evaluation failed")
        if verdict.outcome != "allow":
            return await self._answer_blocked(request, info, verdict, started)
        return await self._forward(request, info, verdict, started)

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

    async def _answer_blocked(
        self, request: http1.RequestHead, info: RequestInfo, verdict: Verdict, started: float
    ) -> bool:
        try:
            complete = self._request_body_done()
        except _ClientGone:
            complete = False
        # An unread request body would be parsed as the next request: close instead.
        close = self._close_after(not complete)
        html = b"text/html" in (info.header(b"accept") or b"").lower()
        # The page's bytes depend on nothing else (the method too: HEAD gets no body).
        key = (verdict, self.client_auth, html, close, request.method == b"HEAD")
        cached = self._page
        if cached is None or cached[0] != key:
            status, ctype, body = block_page(
                verdict,
                self.client_auth,
                accept=b"text/html" if html else b"",
                cert_requested=self.cert_requested,
            )
            page = _simple_response(status, ctype, body, None, close, request)
            cached = self._page = (key, page, status, len(body))
        _key, page, status, nbytes = cached
        if not self._responded:
            self._responded = True
            try:
                await self._write(page)
            except _ClientGone:
                pass
        self._log(info, verdict, status, nbytes, started)
        return complete and not close

    def _policy(self, hostname: bytes) -> ForwardingPolicy:
        cached = self._host_policy
        if cached is not None and cached[0] == hostname:
            return cached[1]
        policy = self.server.config.forwarding_for(hostname.decode("ascii", "replace"))
        self._host_policy = (hostname, policy)
        return policy

    def _certificate_headers(self, policy: ForwardingPolicy) -> list[tuple[bytes, bytes]]:
        first = self.requests == 0
        cached = self._cert_headers
        if (
            cached is not None
            and cached[0] is self.client_auth
            and cached[1] is policy
            and (cached[2] == first or not policy.cf_client_cert)
        ):
            return cached[3]
        headers = certificate_headers(self.client_auth, policy, first_request=first)
        self._cert_headers = (self.client_auth, policy, first, headers)
        return headers

    async def _forward(
        self, request: http1.RequestHead, info: RequestInfo, verdict: Verdict, started: float
    ) -> bool:
        server = self.server
        config = server.config
        chunked = request.chunked
        has_body = chunked or bool(request.content_length)
        target = info.origin_target()
        if server.upstream_base:
            target = server.upstream_base + target
        head = origin_request_head(
            request.method,
            target,
            request.headers,
            client_ip=self.client_ip_bytes,
            original_host=info.host_header(),
            upstream_netloc=server.upstream_netloc,
            preserve_host=config.preserve_host,
            cert_headers=self._certificate_headers(self._policy(info.hostname())),
            chunked_body=chunked,
        )
        pool = self.server.pool
        timeout = self.limits.upstream_timeout
        conn: UpstreamConnection | None = None
        response: http1.ResponseHead | None = None
        for attempt in (0, 1):
            try:
                conn, reused = await pool.acquire(fresh=attempt > 0)
            except UpstreamError as err:
                return await self._upstream_failed(info, verdict, err, started)
            try:
                await conn.write(head, timeout=timeout)
                if has_body:
                    await self._pump_request_body(conn, request)
                response = await conn.response_head(request.method, timeout)
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
        # Framing towards the client as an HTTP/1.1 server must choose it: the origin's Content-Length when
        # it sent one (and no chunking); otherwise chunked to HTTP/1.1 clients and
        # until-close to HTTP/1.0 ones. HEAD, 204 and 304 carry no body.
        headers = client_response_headers(response.headers)
        send_body = request.method != b"HEAD"
        close = self._close_after(False)
        chunk_out = False
        status = response.status
        if status not in (204, 304) and (response.chunked or response.content_length is None):
            if response.chunked:
                headers = [(n, v) for n, v in headers if n.lower() != b"content-length"]
            if request.http_version >= b"1.1":
                headers.append((b"Transfer-Encoding", b"chunked"))
                chunk_out = send_body
            elif send_body:
                close = True
        if close:
            headers.append((b"Connection", b"close"))
        out = [
            http1.serialise_head(
                b"HTTP/1.1 %d %s" % (status, response.reason or _reason(status)), headers
            )
        ]
        self._responded = True
        sent = 0
        reader = conn.reader
        assert reader is not None
        proto = self.proto
        try:
            # Head and body pieces are gathered and written together: a small response
            # leaves in one TLS write; a streamed one is flushed whenever the origin
            # makes us wait.
            while True:
                piece = conn.body_now()
                if piece:
                    sent += len(piece)
                    if send_body:
                        if chunk_out:
                            out.extend(http1.chunk(piece))
                        else:
                            out.append(piece)
                if reader.done:
                    break
                if not piece:
                    if out:
                        self._send_now(out[0] if len(out) == 1 else b"".join(out))
                        out.clear()
                        if proto.write_blocked:
                            await self._drain()
                    await conn.more(timeout)
            if chunk_out:
                out.append(http1.LAST_CHUNK)
            if out:
                self._send_now(out[0] if len(out) == 1 else b"".join(out))
                if proto.write_blocked:
                    await self._drain()
        except UpstreamError as err:
            # Headers may already be out: the only honest signal left is closing.
            conn.close()
            self._log(info, verdict, status, sent, started, error=err.message)
            return False
        except _ClientGone:
            conn.close()
            self._log(info, verdict, status, sent, started, error="client went away")
            return False
        self.server.pool.release(conn)
        self._log(info, verdict, status, sent, started)
        return not close

    async def _pump_request_body(self, conn: UpstreamConnection, request: http1.RequestHead) -> None:
        timeout = self.limits.upstream_timeout
        if request.expect_continue and not self._body_started:
            await self._write(_CONTINUE)
        chunked = request.chunked
        while True:
            piece = await self._body_piece()
            if piece is None:
                if chunked:
                    await conn.write(http1.LAST_CHUNK, timeout=timeout)
                return
            await conn.write(http1.chunk(piece) if chunked else piece, timeout=timeout)

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
        complete = self._body is None or self._body.done
        await self._send_simple(err.status, b"text/plain; charset=utf-8", body, close=not complete)
        self._log(info, verdict, err.status, len(body), started, error=err.message)
        return complete and not self._close_after(False)

    # -- access log ----------------------------------------------------------------
    def _auth_record(self) -> dict[str, Any]:
        """The certificate part of a log record, computed once per ``ClientAuth``."""
        auth = self.client_auth
        cached = self._log_auth
        if cached is not None and cached[0] is auth:
            return cached[1]
        part = {
            "cert_presented": bool(getattr(auth, "presented", False)),
            "cert_verified": bool(getattr(auth, "verified", False)),
            "cert_revoked": bool(getattr(auth, "revoked", False)),
            "cert_serial": _cert_serial(auth),
            "cert_status": _cert_status(auth),
        }
        self._log_auth = (auth, part)
        return part

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
        server = self.server
        access_log = server.access_log
        observer = server.observer
        if not access_log.enabled and access_log.records is None and type(observer) is NullObserver:
            return  # nobody reads the record: do not build it
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
            **self._auth_record(),
            "status": status,
            "bytes": nbytes,
            "duration_ms": round((time.monotonic() - started) * 1000, 3),
            "tls_version": tls.version if tls else None,
            "ruleset": verdict.ruleset if verdict else None,
        }
        if error:
            record["upstream_error" if status in (502, 504) else "error"] = error
        access_log.write(record)
        observer.request(record)


def _simple_response(
    status: int,
    content_type: bytes,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None,
    close: bool,
    request: http1.RequestHead | None,
) -> bytes:
    """A whole response the proxy answers itself (no body for HEAD, as h11)."""
    headers = [
        (b"Content-Type", content_type),
        (b"Content-Length", b"%d" % len(body)),
        (b"Cache-Control", b"no-store"),
    ]
    if extra:
        headers.extend(extra)
    if close:
        headers.append((b"Connection", b"close"))
    head = http1.serialise_head(b"HTTP/1.1 %d %s" % (status, _reason(status)), headers)
    if request is not None and request.method == b"HEAD":
        return head
    return head + body


# -- running -------------------------------------------------------------------------
class ServerThread:
    """Runs a ``ProxyServer`` (or any ``start``/``shutdown`` server) on an event loop in a
    background thread: for tests and the demo. ``stop()`` always joins the thread."""

    def __init__(
        self, server: Any, loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    ) -> None:
        self.server = server
        self.loop = (loop_factory or asyncio.new_event_loop)()
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
