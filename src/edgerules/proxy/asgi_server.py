"""``edgerules serve``: an ASGI application run in-process behind edgerules' mTLS terminator.

Owns: the HTTP/1.1 server side for an ASGI app — connections, the h11 loop, the ASGI
``http`` scope with the ``tls`` extension filled, ``receive``/``send``, lifespan, limits
and graceful shutdown. TLS is the proxy's (:class:`~edgerules.proxy.tls.ServerTLS`,
:class:`~edgerules.proxy.tls.TLSStream`); what a request means and whether it passes is
the enforcement core's (:class:`~edgerules.enforcement.gate.Gate`), exactly as for the
middleware.

Invariants:

* The handshake completes whatever the client presents (the proxy's TLS layer); the
  validator runs **once per connection** and every request on it shares the verdict.
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
import time
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import h11
from OpenSSL import crypto

from edgerules.enforcement.gate import Gate
from edgerules.proxy.accesslog import AccessLog
from edgerules.proxy.config import Limits
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
        mtls_cache_ttl: float = 2.0,
    ) -> None:
        self.app = app
        self.gate = gate
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.store = store
        self.limits = limits or Limits()
        self.access_log = access_log if access_log is not None else AccessLog(None)
        self.use_lifespan = lifespan
        self._mtls_cache: dict[str, tuple[float, Any]] = {}
        self._mtls_cache_ttl = mtls_cache_ttl
        self.tls = ServerTLS(
            cert_file=cert_file,
            key_file=key_file,
            dev_cert_hostnames=dev_cert_hostnames,
            mtls_lookup=self.validator_for,
        )
        self.state: dict[str, Any] = {}
        self._server: asyncio.AbstractServer | None = None
        self._conns: dict[asyncio.Task[Any], _Connection] = {}
        self._lifespan: _Lifespan | None = None
        self._stopped: asyncio.Event | None = None
        self.draining = False
        self.port: int | None = None
        self.connections = 0

    def validator_for(self, host: str | None) -> Any:
        """The hostname's validator (mTLS enabled in the store) or None; cached briefly."""
        if not host or self.store is None:
            return None
        now = time.monotonic()
        hit = self._mtls_cache.get(host)
        if hit is not None and hit[0] > now:
            return hit[1]
        validator = self.store.validator_for_hostname(host)
        if len(self._mtls_cache) > 10000:
            self._mtls_cache.clear()
        self._mtls_cache[host] = (now + self._mtls_cache_ttl, validator)
        return validator

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
        tasks = list(self._conns)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        if self._lifespan is not None:
            await self._lifespan.shutdown()
        self.access_log.close()
        if self._stopped is not None:
            self._stopped.set()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.draining or len(self._conns) >= self.limits.max_connections:
            close_transport(writer)
            return
        task = asyncio.current_task()
        assert task is not None
        conn = _Connection(self, reader, writer)
        self._conns[task] = conn
        try:
            await conn.run()
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("unexpected error on a client connection")
        finally:
            close_transport(writer)
            self._conns.pop(task, None)


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
    def __init__(
        self, server: ASGIServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.limits = server.limits
        self.reader = reader
        self.writer = writer
        self.idle = True
        peer = writer.get_extra_info("peername") or ("0.0.0.0", 0)
        sock = writer.get_extra_info("sockname") or ("0.0.0.0", 0)
        self.client = (str(peer[0]), int(peer[1]))
        self.server_addr = (str(sock[0]), int(sock[1]))
        server.connections += 1
        self.id = server.connections
        self.stream: TLSStream | None = None
        self.h: h11.Connection | None = None
        self.tls: TLSInfo | None = None
        self.client_auth: Any = NOT_REQUESTED
        self.extension: dict[str, Any] = {}

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
        self.tls = info
        try:
            if info.cert_requested and info.validator is not None:
                self.client_auth = info.validator.validate(list(info.chain_der),
                                                           hostname=info.sni)
        except Exception:
            log.exception("client certificate validation failed unexpectedly; closing")
            await stream.close()
            return
        self.extension = tls_extension(info, self.client_auth)
        self.h = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_header_bytes)
        linger = False
        try:
            while not self.server.draining:
                request = await self._read_request()
                if request is None:
                    break
                self.idle = False
                keep_alive = await self._handle(request)
                self.idle = True
                if not keep_alive or self.server.draining:
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
        try:
            event = self._next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await self._recv(self.limits.idle_timeout)
                except TimeoutError:
                    return None
                if not data:
                    return None
                self.h.receive_data(data)
                async with asyncio.timeout(self.limits.header_timeout):
                    while (event := self._next_event()) is h11.NEED_DATA:
                        self.h.receive_data(await self.stream.recv())  # type: ignore[union-attr]
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
                           content_type: bytes = b"text/plain; charset=utf-8") -> bool:
        if self.h is None or self.h.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return False
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
                   (b"cache-control", b"no-store")]
        if close or self.server.draining:
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
                client_auth=self.client_auth, cert_requested=tls.cert_requested,
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
                if self.server.draining:
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
