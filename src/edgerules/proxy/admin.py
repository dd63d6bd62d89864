"""The admin listener: ``/healthz``, ``/readyz``, ``/metrics`` and ``POST /reload`` over
plain HTTP, on its own socket (``--admin-listen``), never on the proxy's public one.

Owns: binding the admin address (loopback only unless explicitly allowed), the HTTP/1.1
exchange (h11) and its limits, routing to the handlers ``proxy.ops`` gives it.

Invariants:

* A non-loopback address (``0.0.0.0``, a public address, a host name other than
  ``localhost``) is refused with a ``ConfigError`` unless ``allow_remote`` is set: the
  admin port has no authentication, and ``POST /reload`` changes what the proxy enforces.
* Whatever a client sends, it costs bounded memory and time: at most ``MAX_CONNECTIONS``
  admin connections (more are closed at accept), a request head of at most
  ``MAX_HEAD_BYTES`` (431), received within ``HEAD_TIMEOUT`` seconds in total (408: a
  client trickling bytes cannot hold a slot), no request body (413: no endpoint takes
  one; the connection is closed without reading it), one request per connection
  (``Connection: close``). Unknown paths are 404, other methods 405.
* A handler that raises answers 500 and is logged; the listener keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus

import h11

from edgerules.errors import ConfigError

__all__ = ["AdminServer", "Handler", "Response", "check_admin_address"]

log = logging.getLogger("edgerules.proxy")

MAX_CONNECTIONS = 16
MAX_HEAD_BYTES = 8 * 1024
HEAD_TIMEOUT = 5.0
WRITE_TIMEOUT = 10.0

Response = tuple[int, str, bytes]  # status, content type, body
Handler = Callable[[], Awaitable[Response]]


def check_admin_address(host: str, *, allow_remote: bool) -> str:
    """The address to bind; a non-loopback one only with ``allow_remote``."""
    if host.lower() == "localhost":
        return "127.0.0.1"
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        if allow_remote:
            return host
        raise ConfigError(
            f"--admin-listen {host!r}: give a loopback IP address (127.0.0.1, ::1) or "
            "localhost; another host name needs --admin-allow-remote"
        ) from None
    if not addr.is_loopback and not allow_remote:
        raise ConfigError(
            f"--admin-listen {host}: not a loopback address. The admin endpoints have no "
            "authentication (and POST /reload changes what is enforced): bind 127.0.0.1, "
            "or add --admin-allow-remote if a firewall protects this address"
        )
    return host


class AdminServer:
    """``routes``: ``{(method, path): handler}``; HEAD is served by the GET handler."""

    def __init__(
        self,
        host: str,
        port: int,
        routes: Mapping[tuple[str, str], Handler],
        *,
        allow_remote: bool = False,
    ) -> None:
        self.host = check_admin_address(host, allow_remote=allow_remote)
        self.requested_port = port
        self.routes = dict(routes)
        self._sock: socket.socket | None = None
        self._server: asyncio.AbstractServer | None = None
        self._open = 0
        self.port: int | None = None
        self.max_connections = MAX_CONNECTIONS
        self.head_timeout = HEAD_TIMEOUT

    def bind(self) -> int:
        """Bind and listen now (before the proxy serves: a busy port is a start-up error,
        and connections made before ``start`` wait in the backlog)."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.requested_port))
            sock.listen(64)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"cannot listen on admin address {self.host}:{self.requested_port}: "
                f"{exc.strerror or exc}"
            ) from None
        self._sock = sock
        self.port = sock.getsockname()[1]
        return self.port

    async def start(self) -> int:
        if self._sock is None:
            self.bind()
        self._server = await asyncio.start_server(self._on_client, sock=self._sock)
        assert self.port is not None
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        elif self._sock is not None:
            self._sock.close()

    async def shutdown(self, grace: float | None = None) -> None:
        """``close`` under the name ``ServerThread`` uses (admin answers are short)."""
        await self.close()

    # -- one connection ---------------------------------------------------------------
    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._open >= self.max_connections:
            writer.transport.abort()
            return
        self._open += 1
        try:
            await self._serve(reader, writer)
        except Exception:
            log.exception("admin connection failed")
        finally:
            self._open -= 1
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        try:
            async with asyncio.timeout(self.head_timeout):
                event = await self._read_head(conn, reader)
        except TimeoutError:
            await self._send(conn, writer, "GET", (408, "text/plain", b"request head too slow\n"))
            return
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint if exc.error_status_hint in (400, 431) else 400
            await self._send(conn, writer, "GET", (status, "text/plain", b"bad request\n"))
            return
        if event is None:
            return
        method = event.method.decode("ascii", "replace")
        path = event.target.decode("ascii", "replace").split("?", 1)[0]
        length = dict(event.headers).get(b"content-length", b"0")
        if b"transfer-encoding" in dict(event.headers) or length.strip() not in (b"", b"0"):
            await self._send(conn, writer, method, (413, "text/plain", b"no request body here\n"))
            return
        handler = self.routes.get(("GET" if method == "HEAD" else method, path))
        if handler is None:
            allowed = sorted(m for m, p in self.routes if p == path)
            if allowed:
                allow = ", ".join(allowed + (["HEAD"] if "GET" in allowed else []))
                await self._send(
                    conn, writer, method, (405, "text/plain", b"method not allowed\n"),
                    extra=[(b"Allow", allow.encode())],
                )
            else:
                await self._send(conn, writer, method, (404, "text/plain", b"not found\n"))
            return
        try:
            response = await handler()
        except Exception:
            log.exception("admin endpoint %s %s failed", method, path)
            response = (500, "text/plain", b"internal error\n")
        await self._send(conn, writer, method, response)

    @staticmethod
    async def _read_head(conn: h11.Connection, reader: asyncio.StreamReader) -> h11.Request | None:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(4096)
                conn.receive_data(data)  # b"" = the client closed: ConnectionClosed next
                continue
            if isinstance(event, h11.Request):
                size = len(event.target) + sum(len(n) + len(v) + 4 for n, v in event.headers)
                if size > MAX_HEAD_BYTES:
                    raise h11.RemoteProtocolError("head too large", error_status_hint=431)
                return event
            return None

    @staticmethod
    async def _send(
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        method: str,
        response: Response,
        *,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        status, ctype, body = response
        if conn.our_state is not h11.SEND_RESPONSE:
            # The head never parsed: answer with a fresh state machine.
            conn = h11.Connection(h11.SERVER)
            conn.receive_data(b"GET / HTTP/1.1\r\nHost: admin\r\n\r\n")
            conn.next_event()
        headers = [
            (b"Content-Type", ctype.encode()),
            (b"Content-Length", str(len(body)).encode()),
            (b"Cache-Control", b"no-store"),
            (b"Connection", b"close"),
            *(extra or []),
        ]
        try:
            reason = HTTPStatus(status).phrase.encode()
        except ValueError:
            reason = b""
        data = conn.send(h11.Response(status_code=status, headers=headers, reason=reason))
        if method != "HEAD":
            data += conn.send(h11.Data(data=body))
        data += conn.send(h11.EndOfMessage()) or b""
        with contextlib.suppress(OSError, TimeoutError):
            writer.write(data)
            async with asyncio.timeout(WRITE_TIMEOUT):
                await writer.drain()
