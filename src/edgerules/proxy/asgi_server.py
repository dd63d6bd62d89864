"""``edgerules serve``: an ASGI application run in-process behind edgerules' mTLS terminator.

Owns: the HTTP/1.1 server side for an ASGI app — connections (limit and eviction,
timeouts, lifetime caps), the h11 loop, the ASGI ``http`` scope with the ``tls``
extension filled, ``receive``/``send``, lifespan and graceful shutdown. TLS is the
proxy's (:class:`~edgerules.proxy.tls.ServerTLS`, :class:`~edgerules.proxy.tls.TLSStream`);
the trust state and off-loop validation are the proxy's too
(:class:`~edgerules.proxy.certstate.TrustState`,
:class:`~edgerules.proxy.certstate.ValidationPool`); what a request means and whether it
passes is the enforcement core's (:class:`~edgerules.enforcement.gate.Gate`), exactly as
for the middleware.

Invariants (the proxy's issue 9 guarantees 1–3, docs/security.md):

* The handshake completes whatever the client presents (the proxy's TLS layer). The
  chain is validated after the handshake in a worker thread, never on the event loop,
  within ``validation_budget`` (over it: presented, not verified, reason
  ``certificate validation timed out``).
* Every request is decided with the trust and revocation state read from the store at
  most ``poll_interval`` ago: the connection's verdict is stamped with the SNI's
  validator and the revocation version it was computed under and recomputed (off the
  loop) when either moved — a revoke, restore, ``host disable``/``enable`` or CA change
  reaches open keep-alive connections. mTLS switched on for an SNI whose handshake asked
  for no certificate: 421 and closed. The request's ``tls`` extension and
  ``scope["edgerules.client_auth"]`` are the current verdict's. A store that cannot be
  read leaves the last state seen in force.
* A connection serves at most ``max_connection_requests`` requests and no new request
  after ``max_connection_age`` seconds (the last response says ``Connection: close``).
* Idle connections cannot lock clients out: the first request head must be complete
  within ``first_request_timeout`` of the handshake; at ``max_connections`` a newcomer
  evicts the oldest connection not in a request (those that never sent one first); when
  every connection is in a request the newcomer is answered 503 with ``Retry-After``
  (a bounded overflow), then refused.
* The ``tls`` extension follows the ASGI TLS extension: ``server_cert`` (PEM),
  ``client_cert_chain`` (PEM, leaf first, as sent; empty without a certificate),
  ``client_cert_name`` (RFC 4514 subject, or None), ``client_cert_error`` (the
  validator's reason when a certificate was presented and not verified, else None),
  ``tls_version`` (0x0303 / 0x0304), ``cipher_suite`` (the IANA 16-bit number).
* Blocked requests never reach the application; allowed ones carry
  ``scope["edgerules.decision"|"edgerules.verdict"|"edgerules.client_auth"]`` like the
  middleware's. Client-sent certificate headers are removed (there is no trusted proxy
  in front of ``serve``).
* A ``Host`` naming an mTLS host other than the SNI is answered 421 before anything runs
  (the same rule as the proxy: the certificate belongs to the SNI's host).
* Whatever one connection or one application call does (bad TLS, bad HTTP, an exception
  in the app) only that connection is affected: 500 if no response started, else the
  connection is closed so the truncation is visible.
* WebSocket upgrades are not served (HTTP/1.1 only); such requests reach the app as
  plain ``http`` requests, as with any HTTP/1.1 server without WebSocket support.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import h11
from OpenSSL import crypto

from edgerules.enforcement.gate import Gate
from edgerules.proxy.accesslog import AccessLog
from edgerules.proxy.certstate import TrustState, ValidationPool
from edgerules.proxy.config import DEFAULT_POLL_INTERVAL, Limits, check_poll_interval
from edgerules.proxy.tls import ServerTLS, TLSError, TLSInfo, TLSStream, close_transport
from edgerules.tls import NOT_REQUESTED

__all__ = ["ASGIServer", "run_asgi_server"]

log = logging.getLogger("edgerules.serve")

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]

_TLS_VERSION_NUMBERS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
_MAX_BODY_DRAIN = 1024 * 1024  # unread request body discarded to keep a connection alive
_LINGER_SECONDS = 2.0
_SWITCH_INTERVAL = 0.0005  # seconds; see run_asgi_server (the proxy's value)


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class _TLSStream(TLSStream):
    """The proxy's stream, plus the negotiated cipher suite's IANA number (the ASGI
    extension's ``cipher_suite``) read from OpenSSL once after the handshake."""

    async def handshake(self) -> TLSInfo:
        info = await super().handshake()
        info.extra["cipher_suite"] = _cipher_suite_id(self._conn)
        info.extra["server_cert"] = _server_cert_pem(self._conn)
        return info


_CIPHER_IDS: dict[str, int] = {}


def _cipher_ids() -> dict[str, int]:
    """OpenSSL cipher name -> IANA number, from the linked OpenSSL's own table (Python's
    ``ssl`` reports each suite's id; pyOpenSSL exposes only names)."""
    if not _CIPHER_IDS:
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with contextlib.suppress(ssl.SSLError):
            ctx.set_ciphers("ALL:@SECLEVEL=0")
        for cipher in ctx.get_ciphers():
            _CIPHER_IDS[cipher["name"]] = cipher["id"] & 0xFFFF
    return _CIPHER_IDS


def _cipher_suite_id(conn: Any) -> int | None:
    name = conn.get_cipher_name()
    return _cipher_ids().get(name) if name else None  # unknown: the extension allows None


def _server_cert_pem(conn: Any) -> str | None:
    cert = conn.get_certificate()
    if cert is None:
        return None
    return crypto.dump_certificate(crypto.FILETYPE_PEM, cert).decode("ascii")


def _pem(der: bytes) -> str:
    import base64
    import textwrap

    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode("ascii"), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"


def tls_extension(info: TLSInfo, client_auth: Any) -> dict[str, Any]:
    """The ASGI ``tls`` extension for one connection."""
    chain = [_pem(der) for der in info.chain_der]
    name = error = None
    if chain and getattr(client_auth, "presented", False):
        try:
            value = client_auth.fields().get("cf.tls_client_auth.cert_subject_dn_rfc2253", b"")
            name = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        except Exception:
            name = None
        if not getattr(client_auth, "verified", False):
            error = getattr(client_auth, "failure_reason", "") or "certificate not verified"
    return {
        "server_cert": info.extra.get("server_cert"),
        "client_cert_chain": chain,
        "client_cert_name": name or None,
        "client_cert_error": error,
        "tls_version": _TLS_VERSION_NUMBERS.get(info.version),
        "cipher_suite": info.extra.get("cipher_suite"),
    }


class ASGIServer:
    """One listening ``serve`` server. ``await start()`` then ``await shutdown()``."""

    def __init__(
        self,
        app: ASGIApp,
        gate: Gate,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 8443,
        cert_file: str | None = None,
        key_file: str | None = None,
        dev_cert_hostnames: tuple[str, ...] = ("localhost", "*.localhost"),
        store: Any = None,
        limits: Limits | None = None,
        access_log: AccessLog | None = None,
        lifespan: bool = True,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        mtls_lookup: Callable[[str], Any] | None = None,
        revocation_version: Callable[[], int] | None = None,
    ) -> None:
        check_poll_interval(poll_interval)
        self.app = app
        self.gate = gate
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.store = store
        self.limits = limits or Limits()
        self.access_log = access_log if access_log is not None else AccessLog(None)
        self.use_lifespan = lifespan
        # The proxy's machinery (issue 9 items 1 and 2): the current validator per SNI and
        # revocation version (``mtls_lookup``/``revocation_version`` replace the store's
        # for embedding and tests), and validation in worker threads within a budget.
        self.trust = TrustState(
            store=store,
            lookup=mtls_lookup,
            revocation_version=revocation_version,
            poll_interval=poll_interval,
        )
        self.validation = ValidationPool(budget=self.limits.validation_budget)
        self.tls = ServerTLS(
            cert_file=cert_file,
            key_file=key_file,
            dev_cert_hostnames=dev_cert_hostnames,
            mtls_lookup=self.validator_for,
        )
        self.state: dict[str, Any] = {}
        self._server: asyncio.AbstractServer | None = None
        self._conns: dict[asyncio.Task[Any], _Connection] = {}
        # Connections not in a request, oldest first (issue 9 item 3): those that never
        # sent a request, then keep-alive ones between requests.
        self._fresh: dict[_Connection, None] = {}
        self._between: dict[_Connection, None] = {}
        self._overflow: set[asyncio.Task[Any]] = set()  # beyond the limit: answered 503
        self.max_overflow = self.limits.max_connections // 16 + 8
        self.stats = {"evicted": 0, "rejected": 0, "overflow_503": 0, "reverified": 0}
        self._lifespan: _Lifespan | None = None
        self._stopped: asyncio.Event | None = None
        self.draining = False
        self.port: int | None = None
        self.connections = 0

    def validator_for(self, host: str | None) -> Any:
        """The hostname's validator (mTLS enabled in the store) or None, as of at most
        ``poll_interval`` ago (``certstate.TrustState``)."""
        return self.trust.validator_for(host)

    async def start(self) -> int:
        self._stopped = asyncio.Event()
        if self.use_lifespan:
            self._lifespan = _Lifespan(self.app, self.state)
            await self._lifespan.startup()
        self._server = await asyncio.start_server(
            self._on_client,
            self.listen_host,
            self.listen_port,
            backlog=min(self.limits.max_connections, 1024),
            reuse_address=True,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def wait_stopped(self) -> None:
        assert self._stopped is not None
        await self._stopped.wait()

    async def shutdown(self, grace: float | None = None) -> None:
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
        for task in list(self._overflow):
            task.cancel()
        tasks = [*self._conns, *self._overflow]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        self.validation.close()
        if self._lifespan is not None:
            await self._lifespan.shutdown()
        self.access_log.close()
        if self._stopped is not None:
            self._stopped.set()

    def _evict_one(self) -> bool:
        """Close the oldest connection that is not in a request; False if there is none."""
        for table in (self._fresh, self._between):
            for victim in table:
                victim.evict()
                self.stats["evicted"] += 1
                return True
        return False

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A TCP connection was accepted: admit it as the proxy does (issue 9 item 3) —
        at the limit it evicts the oldest connection not in a request; when every one is
        in a request it is answered 503 (a bounded overflow), else refused."""
        if self.draining:
            close_transport(writer)
            return
        task = asyncio.current_task()
        assert task is not None
        overflow = False
        if len(self._conns) >= self.limits.max_connections and not self._evict_one():
            if len(self._overflow) >= self.max_overflow:
                self.stats["rejected"] += 1
                close_transport(writer)
                return
            overflow = True
        conn = _Connection(self, reader, writer, task, overflow=overflow)
        if overflow:
            self._overflow.add(task)
        else:
            self._conns[task] = conn
        try:
            await conn.run()
        except asyncio.CancelledError:
            pass  # shutdown or eviction
        except Exception:
            log.exception("unexpected error on a client connection")
        finally:
            close_transport(writer)
            conn.forget()
            self._overflow.discard(task)


class _Lifespan:
    """The ASGI lifespan protocol; an app that does not speak it is run without it."""

    def __init__(self, app: ASGIApp, state: dict[str, Any]) -> None:
        self.app = app
        self.state = state
        self.supported = True
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.3"},
                 "state": self.state}
        try:
            await self.app(scope, self._to_app.get, self._from_app.put)
        except Exception as exc:
            self.supported = False
            await self._from_app.put({"type": "lifespan.unsupported", "error": exc})

    async def startup(self) -> None:
        from edgerules.errors import ConfigError

        self._task = asyncio.ensure_future(self._run())
        await self._to_app.put({"type": "lifespan.startup"})
        message = await self._from_app.get()
        if message["type"] == "lifespan.startup.failed":
            raise ConfigError(f"the application's startup failed: {message.get('message', '')}")
        if message["type"] == "lifespan.unsupported":
            log.debug("the application does not support lifespan: %s", message.get("error"))

    async def shutdown(self) -> None:
        if not self.supported or self._task is None or self._task.done():
            return
        await self._to_app.put({"type": "lifespan.shutdown"})
        try:
            message = await asyncio.wait_for(self._from_app.get(), 10.0)
            if message["type"] == "lifespan.shutdown.failed":
                log.error("the application's shutdown failed: %s", message.get("message", ""))
        except TimeoutError:
            log.error("the application did not complete its lifespan shutdown in 10 s")
            self._task.cancel()


class _ClientGone(Exception):
    def __init__(self, status: int | None = None, message: str = "") -> None:
        super().__init__(message)
        self.status = status


class _Connection:
    """One client connection: its TLS stream, its certificate verdict (kept current with
    the trust and revocation state, as the proxy's ``_ClientConnection``) and its h11
    request loop."""

    def __init__(
        self,
        server: ASGIServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        task: asyncio.Task[Any] | None = None,
        *,
        overflow: bool = False,
    ) -> None:
        self.server = server
        self.limits = server.limits
        self.reader = reader
        self.writer = writer
        self.task = task
        self.overflow = overflow  # beyond the connection limit: answer 503 and close
        self.idle = True  # no request is being handled (shutdown and eviction may cancel)
        self.started = time.monotonic()
        self.handshake_done = self.started
        self.expires = self.started + self.limits.max_connection_age
        self.requests = 0
        self._last = False  # the request being answered is the connection's last
        if not overflow:
            server._fresh[self] = None
        peer = writer.get_extra_info("peername") or ("0.0.0.0", 0)
        sock = writer.get_extra_info("sockname") or ("0.0.0.0", 0)
        self.client = (str(peer[0]), int(peer[1]))
        self.server_addr = (str(sock[0]), int(sock[1]))
        server.connections += 1
        self.id = server.connections
        self.stream: TLSStream | None = None
        self.h: h11.Connection | None = None
        self.tls: TLSInfo | None = None
        # The verdict and the trust state it was computed under (issue 9 item 1): the
        # SNI's validator (None: no mTLS) and the revocation version.
        self.client_auth: Any = NOT_REQUESTED
        self.validator: Any = None
        self.revocation_version = 0
        self.cert_requested = False  # the current state asks this host for a certificate
        self._extension: tuple[Any, dict[str, Any]] | None = None

    # -- slots (issue 9 item 3) ------------------------------------------------------------
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
        if self.task is not None:
            self.task.cancel()

    def forget(self) -> None:
        """Release the slot (idempotent)."""
        server = self.server
        server._fresh.pop(self, None)
        server._between.pop(self, None)
        if self.task is not None and server._conns.get(self.task) is self:
            del server._conns[self.task]

    @property
    def extension(self) -> dict[str, Any]:
        """The ``tls`` extension for the current verdict (recomputed when it changes)."""
        cached = self._extension
        if cached is None or cached[0] is not self.client_auth:
            assert self.tls is not None
            cached = self._extension = (self.client_auth, tls_extension(self.tls, self.client_auth))
        return cached[1]

    # -- connection ------------------------------------------------------------------------
    async def run(self) -> None:
        ssl_conn, info = self.server.tls.new_connection()
        stream = _TLSStream(ssl_conn, info, self.reader, self.writer,
                            write_timeout=self.limits.body_timeout)
        self.stream = stream
        try:
            await asyncio.wait_for(stream.handshake(), self.limits.handshake_timeout)
        except (TLSError, OSError, TimeoutError) as exc:
            log.info("TLS handshake with %s failed: %s", self.client[0], exc or type(exc).__name__)
            return
        except Exception as exc:  # the store lookup raised inside the SNI callback
            log.warning("TLS handshake with %s aborted: %s", self.client[0], exc)
            return
        self.handshake_done = time.monotonic()
        self.tls = info
        self.h = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_header_bytes)
        if self.overflow:
            await self._answer_overflow()
            return
        # The verdict is computed under the state the handshake saw (the validator the
        # SNI callback chose) and the revocation version read before validating; in a
        # worker thread within the validation budget (issue 9 item 2), never on the loop.
        self.validator = info.validator if info.cert_requested else None
        self.cert_requested = info.cert_requested
        self.revocation_version = self.server.trust.revocation_version()
        try:
            if self.validator is not None:
                self.client_auth = await self.server.validation.validate(
                    self.validator, info.chain_der, info.sni, source=self.client[0])
        except Exception:
            log.exception("client certificate validation failed unexpectedly; closing")
            await stream.close()
            return
        linger = False
        try:
            while not self.server.draining:
                request = await self._read_request()
                if request is None:
                    break
                self._busy()
                keep_alive = await self._handle(request)
                self.requests += 1
                self._between_requests()
                if not keep_alive or self._last or self.server.draining:
                    linger = self.h.their_state is not h11.DONE
                    break
                if self.h.our_state is h11.DONE and self.h.their_state is h11.DONE:
                    self.h.start_next_cycle()
                else:
                    linger = True
                    break
        except _ClientGone:
            pass
        except (TLSError, OSError, TimeoutError) as exc:
            log.debug("connection from %s ended: %s", self.client[0], exc)
        await stream.close(linger=_LINGER_SECONDS if linger else 0.0)

    async def _answer_overflow(self) -> None:
        """Every slot is in a request: read this connection's first request head and
        answer 503 with Retry-After (instead of resetting a client that cannot know why)."""
        assert self.stream is not None
        self.server.stats["overflow_503"] += 1
        request = await self._read_request()
        if request is not None:
            await self._send_simple(
                503, b"503 Service Unavailable\nEvery connection slot is busy; retry shortly.\n",
                close=True, extra=[(b"retry-after", b"1")])
        linger = self.h is not None and self.h.their_state is not h11.DONE
        await self.stream.close(linger=_LINGER_SECONDS if linger and request else 0.0)

    async def _current_client_auth(self, request: h11.Request, started: float) -> bool:
        """Bring the connection's verdict up to the current trust and revocation state
        (issue 9 item 1), as the proxy does. Cheap when nothing moved: two in-memory reads
        and two comparisons. Returns False when the connection cannot be judged any more
        (answered 421, to be closed)."""
        tls = self.tls
        assert tls is not None
        trust = self.server.trust
        validator = trust.validator_for(tls.sni)
        version = trust.revocation_version()
        if validator is self.validator and version == self.revocation_version:
            return True
        self.server.stats["reverified"] += 1
        if validator is None:
            # mTLS is off for the SNI now: judged as a new connection would be.
            self.client_auth = NOT_REQUESTED
            self.cert_requested = False
        elif not tls.cert_requested:
            # mTLS is on now, but this handshake asked for no certificate: the client
            # must connect again to be asked (as for a Host naming another mTLS host).
            await self._send_simple(
                421, b"this host now requires a client certificate, which this "
                b"connection's handshake did not ask for: connect again\n", close=True)
            self._log(request, 421, "error", None, started)
            return False
        else:
            self.client_auth = await self.server.validation.validate(
                validator, tls.chain_der, tls.sni, source=self.client[0])
            self.cert_requested = True
        self.validator, self.revocation_version = validator, version
        return True

    # -- reading -----------------------------------------------------------------------
    def _next_event(self) -> Any:
        assert self.h is not None
        try:
            return self.h.next_event()
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint if exc.error_status_hint in (400, 431) else 400
            raise _ClientGone(status, str(exc)) from None

    async def _recv(self, timeout: float) -> bytes:
        assert self.stream is not None
        async with asyncio.timeout(timeout):
            return await self.stream.recv()

    async def _read_request(self) -> h11.Request | None:
        assert self.h is not None
        limits = self.limits
        first = self.requests == 0
        try:
            event = self._next_event()
            if event is h11.NEED_DATA:
                # Waiting for a request, silently closed on timeout (issue 9 item 3): the
                # first one must come soon after the handshake (an idle newcomer holds a
                # slot), a later one within the keep-alive idle time, and none after the
                # age cap.
                now = time.monotonic()
                if first:
                    wait = limits.first_request_timeout - (now - self.handshake_done)
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
                self.h.receive_data(data)
                # Once a request started, its whole head must arrive in header_timeout
                # (the first one also within first_request_timeout of the handshake).
                head_time = limits.header_timeout
                if first:
                    head_time = min(head_time, max(
                        0.0, limits.first_request_timeout
                        - (time.monotonic() - self.handshake_done)))
                async with asyncio.timeout(head_time):
                    while (event := self._next_event()) is h11.NEED_DATA:
                        data = await self.stream.recv()  # type: ignore[union-attr]
                        if not data:
                            return None  # closed mid-head: nobody to answer
                        self.h.receive_data(data)
        except TimeoutError:
            await self._send_simple(408, b"request head not received in time\n", close=True)
            return None
        except _ClientGone as gone:
            if gone.status is not None:
                await self._send_simple(gone.status, f"{gone}\n".encode(), close=True)
            return None
        if not isinstance(event, h11.Request):
            return None
        size = len(event.method) + len(event.target) + 12
        size += sum(len(n) + len(v) + 4 for n, v in event.headers.raw_items())
        if size > self.limits.max_header_bytes or len(event.headers) > self.limits.max_header_count:
            await self._send_simple(431, b"request header fields too large\n", close=True)
            return None
        names = {name for name, _ in event.headers}
        if b"transfer-encoding" in names and b"content-length" in names:
            await self._send_simple(400, b"Content-Length and Transfer-Encoding together\n",
                                    close=True)
            return None
        return event

    # -- writing -----------------------------------------------------------------------
    async def _write(self, *events: Any) -> None:
        assert self.h is not None and self.stream is not None
        try:
            data = b"".join(self.h.send(e) or b"" for e in events)
        except h11.LocalProtocolError as exc:
            raise _ClientGone(None, f"cannot send: {exc}") from None
        try:
            await self.stream.send(data)
        except (TLSError, OSError, TimeoutError) as exc:
            raise _ClientGone(None, f"client write failed: {exc}") from None

    async def _send_simple(self, status: int, body: bytes, *, close: bool = False,
                           content_type: bytes = b"text/plain; charset=utf-8",
                           extra: list[tuple[bytes, bytes]] | None = None) -> bool:
        if self.h is None or self.h.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return False
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
                   (b"cache-control", b"no-store")]
        if extra:
            headers.extend(extra)
        if close or self._last or self.server.draining:
            headers.append((b"connection", b"close"))
        try:
            await self._write(h11.Response(status_code=status, headers=headers,
                                           reason=_reason(status)),
                              h11.Data(data=body), h11.EndOfMessage())
        except _ClientGone:
            return False
        return True

    # -- one request ---------------------------------------------------------------------
    async def _handle(self, request: h11.Request) -> bool:
        started = time.monotonic()
        tls = self.tls
        assert tls is not None and self.h is not None
        # Defence in depth (issue 9 item 1): a connection serves a bounded number of
        # requests for a bounded time; the last response says "Connection: close".
        self._last = (self.requests + 1 >= self.limits.max_connection_requests
                      or started >= self.expires)
        try:
            # Issue 9 item 1: the current trust and revocation state, two in-memory reads.
            if not await self._current_client_auth(request, started):
                return False
        except Exception:  # the store lookup or the validator failed: fail closed
            log.exception("re-checking the client certificate failed; answering 500")
            await self._send_simple(500, b"certificate check failed\n", close=True)
            self._log(request, 500, "error", None, started)
            return False
        host = _host_of(request)
        if host and host != tls.sni:
            try:
                other_mtls = self.server.validator_for(host) is not None
            except Exception:
                log.exception("mTLS lookup for the Host header failed; answering 500")
                await self._send_simple(500, b"mTLS lookup failed\n", close=True)
                return False
            if other_mtls:
                await self._send_simple(
                    421, b"this host requires a client certificate, which this connection's "
                    b"TLS server name did not ask for: connect again with the host's name as SNI\n",
                    close=True)
                self._log(request, 421, "error", None, started)
                return False
        try:
            result = self.server.gate.process(
                method=request.method, target=request.target,
                http_version=request.http_version, headers=list(request.headers.raw_items()),
                peer=self.client[0], server=self.server_addr, scheme="https",
                tls_version=_TLS_VERSION_NUMBERS.get(tls.version), tls_reported=True,
                client_auth=self.client_auth, cert_requested=self.cert_requested,
                tls_cipher=tls.cipher, sni=tls.sni,
            )
        except Exception:
            log.exception("rule evaluation failed; answering 500")
            await self._send_simple(500, b"rule evaluation failed\n", close=True)
            self._log(request, 500, "error", None, started)
            return False
        if result.blocked:
            complete = await self._body_already_complete()
            await self._send_simple(result.status, result.body, close=not complete,
                                    content_type=result.content_type)
            self._log(request, result.status, result.verdict.outcome, result.verdict, started)
            return complete
        return await self._run_app(request, result, started)

    async def _body_already_complete(self) -> bool:
        while True:
            try:
                event = self._next_event()
            except _ClientGone:
                return False
            if isinstance(event, h11.EndOfMessage):
                return True
            if not isinstance(event, h11.Data):
                return False

    def _scope(self, request: h11.Request, result: Any) -> dict[str, Any]:
        target = request.target
        raw_path, _, query = target.partition(b"?")
        if not raw_path.startswith(b"/"):  # absolute-form / asterisk-form
            if b"://" in raw_path:
                rest = raw_path.split(b"://", 1)[1]
                raw_path = b"/" + rest.split(b"/", 1)[1] if b"/" in rest else b"/"
            elif raw_path != b"*":
                raw_path = b"/" + raw_path
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": request.http_version.decode("ascii", "replace"),
            "method": request.method.decode("ascii", "replace"),
            "scheme": "https",
            "path": unquote(raw_path.decode("latin-1"), encoding="utf-8", errors="replace"),
            "raw_path": raw_path,
            "query_string": query,
            "root_path": "",
            "headers": [(n.lower(), v) for n, v in result.headers],
            "client": self.client,
            "server": self.server_addr,
            "state": dict(self.server.state),
            "extensions": {"tls": dict(self.extension)},
        }
        scope.update(result.app_items())
        return scope

    async def _run_app(self, request: h11.Request, result: Any, started: float) -> bool:
        assert self.h is not None
        h = self.h
        scope = self._scope(request, result)
        response_started = False
        response_done = False
        status = 0
        sent_bytes = 0
        body_done = False
        disconnected = asyncio.Event()

        async def receive() -> dict[str, Any]:
            nonlocal body_done
            if body_done or response_done:
                await disconnected.wait()
                return {"type": "http.disconnect"}
            if h.client_is_waiting_for_100_continue and h.our_state is h11.SEND_RESPONSE:
                await self._write(h11.InformationalResponse(status_code=100, headers=[]))
            while True:
                event = self._next_event()
                if event is h11.NEED_DATA:
                    try:
                        data = await self._recv(self.limits.body_timeout)
                    except TimeoutError:
                        raise _ClientGone(408, "request body not received in time") from None
                    if not data:
                        disconnected.set()
                        return {"type": "http.disconnect"}
                    h.receive_data(data)
                    continue
                if isinstance(event, h11.Data):
                    return {"type": "http.request", "body": bytes(event.data), "more_body": True}
                if isinstance(event, h11.EndOfMessage):
                    body_done = True
                    return {"type": "http.request", "body": b"", "more_body": False}
                disconnected.set()
                return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal response_started, response_done, status, sent_bytes
            kind = message.get("type")
            if response_done:
                return  # after the response (or a disconnect) sends are ignored
            if kind == "http.response.start":
                if response_started:
                    raise RuntimeError("http.response.start sent twice")
                response_started = True
                status = int(message["status"])
                headers = [(bytes(n), bytes(v)) for n, v in message.get("headers", ())]
                if self._last or self.server.draining:
                    headers.append((b"connection", b"close"))
                event = h11.Response(status_code=status, headers=headers, reason=_reason(status))
                self._pending = [event]
            elif kind == "http.response.body":
                if not response_started:
                    raise RuntimeError("http.response.body before http.response.start")
                body = bytes(message.get("body", b""))
                events: list[Any] = list(getattr(self, "_pending", []))
                self._pending = []
                if body:
                    events.append(h11.Data(data=body))
                    sent_bytes += len(body)
                if not message.get("more_body", False):
                    events.append(h11.EndOfMessage())
                    response_done = True
                try:
                    await self._write(*events)
                except _ClientGone:
                    response_done = True
                    disconnected.set()
                    raise OSError("client disconnected") from None
            else:
                raise RuntimeError(f"unexpected ASGI message {kind!r}")

        self._pending: list[Any] = []
        try:
            await self.server.app(scope, receive, send)
        except _ClientGone as gone:
            if gone.status is not None and not response_started:
                await self._send_simple(gone.status, f"{gone}\n".encode(), close=True)
            self._log(request, gone.status or 499, "allow", result.verdict, started)
            return False
        except Exception:
            if not response_started:
                log.exception("the application raised; answering 500")
                await self._send_simple(500, b"Internal Server Error\n", close=True)
                self._log(request, 500, "error", result.verdict, started)
            elif not response_done:
                log.exception("the application raised mid-response; closing the connection")
            return False
        finally:
            disconnected.set()
        if not response_started:
            log.error("the application returned without a response; answering 500")
            await self._send_simple(500, b"Internal Server Error\n", close=True)
            self._log(request, 500, "error", result.verdict, started)
            return False
        if not response_done:
            if self._pending:  # start sent, no body message: an empty body
                with contextlib.suppress(_ClientGone):
                    await self._write(*self._pending, h11.EndOfMessage())
                self._pending = []
            else:
                log.error("the application did not finish its response; closing")
                self._log(request, status, "allow", result.verdict, started)
                return False
        self._log(request, status, "allow", result.verdict, started, sent_bytes)
        return await self._drain_body()

    async def _drain_body(self) -> bool:
        """Read what is left of the request body (the app did not) so the connection can
        serve the next request; False (close) past a limit."""
        assert self.h is not None
        drained = 0
        while self.h.their_state is h11.SEND_BODY:
            event = self._next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await self._recv(self.limits.body_timeout)
                except TimeoutError:
                    return False
                if not data:
                    return False
                drained += len(data)
                if drained > _MAX_BODY_DRAIN:
                    return False
                self.h.receive_data(data)
            elif not isinstance(event, h11.Data | h11.EndOfMessage):
                return False
        return self.h.our_state is h11.DONE and self.h.their_state is h11.DONE

    def _log(self, request: h11.Request, status: int, decision: str, verdict: Any,
             started: float, nbytes: int = 0) -> None:
        auth = self.client_auth
        tls = self.tls
        self.server.access_log.write({
            "client": self.client[0],
            "conn": self.id,
            "sni": tls.sni if tls else None,
            "host": _host_of(request) or None,
            "method": request.method.decode("ascii", "replace"),
            "path": request.target.split(b"?", 1)[0].decode("ascii", "replace"),
            "decision": decision,
            "rule": getattr(verdict, "rule_ref", None),
            "cert_presented": bool(getattr(auth, "presented", False)),
            "cert_verified": bool(getattr(auth, "verified", False)),
            "cert_revoked": bool(getattr(auth, "revoked", False)),
            "status": status,
            "bytes": nbytes,
            "duration_ms": round((time.monotonic() - started) * 1000, 3),
            "tls_version": tls.version if tls else None,
        })


def _host_of(request: h11.Request) -> str:
    for name, value in request.headers:
        if name == b"host":
            host = value.decode("latin-1").strip().lower()
            if host.startswith("["):
                return host.split("]", 1)[0] + "]"
            return host.rsplit(":", 1)[0].rstrip(".") if ":" in host else host.rstrip(".")
    return ""


def run_asgi_server(server: ASGIServer, *, on_ready: Callable[[int], None] | None = None) -> int:
    """Run until SIGTERM/SIGINT, then shut down gracefully. Returns the exit status."""
    # Certificate validation runs in worker threads; while one runs Python code it holds
    # the GIL and the event loop waits up to the switch interval for it after every
    # system call: 0.5 ms instead of 5 ms bounds that wait (as ``run_proxy`` does).
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

    return asyncio.run(main())
