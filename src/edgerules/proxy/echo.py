"""A tiny HTTP/1.1 echo origin (h11 over asyncio) for the demo, the tests and the bench.

Every response is JSON describing what arrived: ``method``, ``target``, ``headers``
(list of [name, value] as received), ``body_length`` and the connection's request
count. Special paths: ``/slow?ms=N`` waits N ms before answering, ``/chunked`` answers
with a chunked body, ``/big?kb=N`` answers N KiB, ``/close`` closes after answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11

__all__ = ["EchoOrigin"]


class EchoOrigin:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.requests: list[dict[str, Any]] = []  # every request seen, newest last
        self.connections = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def shutdown(self, grace: float = 1.0) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        conn = h11.Connection(h11.SERVER)
        count = 0
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    conn.receive_data(data)
                    continue
                if not isinstance(event, h11.Request):
                    break
                body = 0
                while True:
                    ev = conn.next_event()
                    if ev is h11.NEED_DATA:
                        conn.receive_data(await reader.read(65536))
                    elif isinstance(ev, h11.Data):
                        body += len(ev.data)
                    else:
                        break
                count += 1
                record = {
                    "method": event.method.decode(),
                    "target": event.target.decode(),
                    "headers": [
                        [n.decode(), v.decode("latin-1")] for n, v in event.headers.raw_items()
                    ],
                    "body_length": body,
                    "connection_requests": count,
                }
                self.requests.append(record)
                parts = urlsplit(event.target.decode())
                query = parse_qs(parts.query)
                if parts.path == "/slow":
                    await asyncio.sleep(int(query.get("ms", ["1000"])[0]) / 1000)
                payload = json.dumps(record).encode()
                headers = [(b"Content-Type", b"application/json"), (b"X-Origin", b"echo")]
                close = parts.path == "/close"
                if close:
                    headers.append((b"Connection", b"close"))
                if parts.path == "/big":
                    payload = b"x" * (1024 * int(query.get("kb", ["64"])[0]))
                if parts.path != "/chunked":
                    headers.append((b"Content-Length", str(len(payload)).encode()))
                writer.write(conn.send(h11.Response(status_code=200, headers=headers)))
                if parts.path == "/chunked":
                    for i in range(0, len(payload), 7):
                        writer.write(conn.send(h11.Data(data=payload[i : i + 7])))
                else:
                    writer.write(conn.send(h11.Data(data=payload)))
                writer.write(conn.send(h11.EndOfMessage()))
                await writer.drain()
                if conn.our_state is h11.MUST_CLOSE or close:
                    break
                conn.start_next_cycle()
        except (h11.ProtocolError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()


def _main() -> None:  # pragma: no cover - used by bench/bench_proxy.py
    """``python -m edgerules.proxy.echo [PORT]``: serve until killed; prints the port."""
    import sys

    async def serve() -> None:
        origin = EchoOrigin(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
        port = await origin.start()
        print(f"echo origin listening on http://127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":  # pragma: no cover
    _main()
