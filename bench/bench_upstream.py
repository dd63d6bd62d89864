"""Upstream client benchmark: the proxy's pooled client (``edgerules.proxy.upstream``)
against an ``aiohttp.ClientSession`` with a ``TCPConnector`` pool, same origin, same run.

Three groups, each holding both clients:

* ``upstream-sequential``: small GET requests (51-byte body) one after the other on a
  keep-alive connection (a batch of 50 per benchmark call);
* ``upstream-concurrent``: 32 concurrent small GET requests (one ``gather`` per call; both
  pools hold 32 keep-alive connections after the first call);
* ``upstream-stream-1mib``: one GET whose 1 MiB body (``Content-Length``) is consumed
  chunk by chunk as it arrives, never assembled.

The origin is a minimal ``asyncio.Protocol`` HTTP/1.1 server (canned responses, no h11,
so that its cost is small next to the clients') in a **subprocess** on 127.0.0.1, port 0:
the client process measures only the client, and the CPU time of the client process per
request is reported next to the wall time. The aiohttp session is configured the way the
proxy would have to use it: no automatic ``Accept``/``Accept-Encoding``/``User-Agent``
headers, no automatic decompression, 5 s connect / 30 s read timeouts (the proxy's
defaults), ``limit=32`` connections. Both clients send ``Host`` and nothing else.

Under pytest (``make test``: ``--benchmark-disable``) each benchmark body runs once and
asserts the responses (status, body bytes / length, that the big body came in several
chunks; the warm-up call checks the full 1 MiB content by CRC-32). Timings:

    .venv/bin/python -m pytest bench/bench_upstream.py -p no:cacheprovider --benchmark-enable
    .venv/bin/python bench/bench_upstream.py [--repeats 7] [--seconds 0.4]   # table

The script mode alternates the two clients within each repetition (so load from other
processes hits both alike) and prints the median, minimum and maximum µs per request,
the client-process CPU µs per request, and the aiohttp/pool ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

SMALL_PATH = "/small"
BIG_PATH = "/big"
SMALL_BODY = b'{"ok":true,"origin":"edgerules-bench","n":1234567}\n'
BIG_BODY = bytes(range(256)) * 4096  # 1 MiB, position-dependent so misordering shows
BIG_CRC = zlib.crc32(BIG_BODY)
SEQUENTIAL = 50  # requests per sequential batch
CONCURRENCY = 32
CONNECT_TIMEOUT = 5.0  # the proxy's defaults (Limits.connect_timeout / upstream_timeout)
READ_TIMEOUT = 30.0


# -- origin (runs in a subprocess) ---------------------------------------------------------
def _canned(body: bytes, content_type: bytes) -> bytes:
    head = (
        b"HTTP/1.1 200 OK\r\nServer: bench-origin\r\nContent-Type: " + content_type + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    return head + body


_RESPONSES = {
    SMALL_PATH.encode(): _canned(SMALL_BODY, b"application/json"),
    BIG_PATH.encode(): _canned(BIG_BODY, b"application/octet-stream"),
}
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


class _OriginProtocol(asyncio.Protocol):
    """Bodiless requests only (GET); pipelining-safe; keep-alive until the client closes."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            parts = head.split(b" ", 2)
            target = parts[1].split(b"?", 1)[0] if len(parts) == 3 else b""
            self.transport.write(_RESPONSES.get(target, _NOT_FOUND))


def _serve_origin() -> None:
    """``bench_upstream.py --origin``: print the port, serve until stdin reaches EOF."""

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_OriginProtocol, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        done = asyncio.Event()
        loop.add_reader(sys.stdin.fileno(), done.set)  # parent exited or closed the pipe
        await done.wait()
        server.close()

    asyncio.run(serve())


@contextlib.contextmanager
def origin_process() -> Iterator[int]:
    """Start the origin subprocess and yield its port; closing its stdin stops it."""
    with subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--origin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            line = proc.stdout.readline()
            if not line.strip():
                raise RuntimeError("the bench origin did not start")
            yield int(line)
        finally:
            proc.stdin.close()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- the two clients, same interface -------------------------------------------------------
class PoolClient:
    """The proxy's own client, used only through ``UpstreamPool``'s API, the way
    ``server.py`` uses it (acquire, one write of the head, the response head, body
    pieces, release). (Before issue 14 it was built on h11; the figures in
    docs/proxy-bench.md "Upstream client" were measured on that version.)"""

    name = "edgerules pool"

    def __init__(self, port: int) -> None:
        from edgerules.proxy.config import Upstream
        from edgerules.proxy.upstream import UpstreamPool

        self.pool = UpstreamPool(
            Upstream("http", "127.0.0.1", port, ""),
            connect_timeout=CONNECT_TIMEOUT,
            max_idle=CONCURRENCY,
        )
        self.host = f"127.0.0.1:{port}".encode()

    async def _exchange(self, path: str, on_data: Callable[[bytes], None]) -> int:
        conn, _reused = await self.pool.acquire()
        try:
            await conn.write(
                b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + self.host + b"\r\n\r\n",
                timeout=READ_TIMEOUT,
            )
            head = await conn.response_head(b"GET", READ_TIMEOUT)
            while (piece := await conn.body_piece(READ_TIMEOUT)) is not None:
                on_data(piece)
        except BaseException:
            conn.close()
            raise
        self.pool.release(conn)
        return head.status

    async def get(self, path: str) -> tuple[int, bytes]:
        parts: list[bytes] = []
        status = await self._exchange(path, parts.append)
        return status, b"".join(parts)

    async def stream(self, path: str, check: bool = False) -> tuple[int, int, int, int | None]:
        """(status, bytes, chunks, CRC-32 when ``check``): the body is never assembled."""
        acc = [0, 0, 0]  # bytes, chunks, crc

        def on_data(data: bytes) -> None:
            acc[0] += len(data)
            acc[1] += 1
            if check:
                acc[2] = zlib.crc32(data, acc[2])

        status = await self._exchange(path, on_data)
        return status, acc[0], acc[1], acc[2] if check else None

    async def aclose(self) -> None:
        self.pool.close()


class AiohttpClient:
    """``aiohttp.ClientSession`` + ``TCPConnector`` configured as the proxy would need it."""

    name = "aiohttp"

    def __init__(self, port: int) -> None:
        import aiohttp

        self.base = f"http://127.0.0.1:{port}"
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CONCURRENCY, keepalive_timeout=20.0),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT
            ),
            auto_decompress=False,
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent"),
        )

    async def get(self, path: str) -> tuple[int, bytes]:
        async with self.session.get(self.base + path) as resp:
            return resp.status, await resp.read()

    async def stream(self, path: str, check: bool = False) -> tuple[int, int, int, int | None]:
        size = chunks = crc = 0
        async with self.session.get(self.base + path) as resp:
            async for data in resp.content.iter_any():
                size += len(data)
                chunks += 1
                if check:
                    crc = zlib.crc32(data, crc)
            return resp.status, size, chunks, crc if check else None

    async def aclose(self) -> None:
        await self.session.close()


CLIENTS: dict[str, Any] = {"pool": PoolClient, "aiohttp": AiohttpClient}


# -- workloads (each asserts what it got; returns the number of requests) ------------------
async def sequential(client: Any, n: int = SEQUENTIAL) -> int:
    for _ in range(n):
        status, body = await client.get(SMALL_PATH)
        assert status == 200 and body == SMALL_BODY, (status, body[:80])
    return n


async def concurrent(client: Any, n: int = CONCURRENCY) -> int:
    results = await asyncio.gather(*(client.get(SMALL_PATH) for _ in range(n)))
    assert all(r == (200, SMALL_BODY) for r in results), results[:2]
    return n


async def stream_big(client: Any, check: bool = False) -> int:
    status, size, chunks, crc = await client.stream(BIG_PATH, check)
    assert status == 200 and size == len(BIG_BODY), (status, size)
    assert chunks > 1, "the 1 MiB body should arrive (and be consumed) in several chunks"
    assert not check or crc == BIG_CRC, "1 MiB body content differs"
    return 1


WORKLOADS: dict[str, Callable[[Any], Awaitable[int]]] = {
    "sequential": sequential,
    "concurrent": concurrent,
    "stream-1mib": stream_big,
}


# -- pytest (make test: each body once; --benchmark-enable: timed) -------------------------
@pytest.fixture(scope="module")
def env() -> Iterator[tuple[asyncio.AbstractEventLoop, dict[str, Any]]]:
    loop = asyncio.new_event_loop()
    with origin_process() as port:

        async def make() -> dict[str, Any]:
            return {name: cls(port) for name, cls in CLIENTS.items()}

        clients = loop.run_until_complete(make())
        try:
            yield loop, clients
        finally:
            for client in clients.values():
                loop.run_until_complete(client.aclose())
            loop.run_until_complete(asyncio.sleep(0))  # let transports finish closing
            loop.close()


def _bench(benchmark: Any, env: Any, name: str, workload: str) -> None:
    loop, clients = env
    client = clients[name]
    benchmark.group = f"upstream-{workload}"
    fn = WORKLOADS[workload]
    # Warm-up (opens the pool's connections) and full content check.
    if workload == "stream-1mib":
        loop.run_until_complete(stream_big(client, check=True))
    else:
        loop.run_until_complete(fn(client))
    expected = {"sequential": SEQUENTIAL, "concurrent": CONCURRENCY, "stream-1mib": 1}[workload]
    assert benchmark(lambda: loop.run_until_complete(fn(client))) == expected


@pytest.mark.parametrize("name", list(CLIENTS))
def test_sequential(benchmark: Any, env: Any, name: str) -> None:
    _bench(benchmark, env, name, "sequential")


@pytest.mark.parametrize("name", list(CLIENTS))
def test_concurrent(benchmark: Any, env: Any, name: str) -> None:
    _bench(benchmark, env, name, "concurrent")
    if name == "pool":  # pooling works: no more connections than concurrent requests
        assert env[1][name].pool.opened <= CONCURRENCY + 1


@pytest.mark.parametrize("name", list(CLIENTS))
def test_stream_1mib(benchmark: Any, env: Any, name: str) -> None:
    _bench(benchmark, env, name, "stream-1mib")


# -- script mode: alternating repeated runs, table -----------------------------------------
async def _run(
    port: int, repeats: int, seconds: float
) -> dict[tuple[str, str], list[tuple[float, float]]]:
    clients = {name: cls(port) for name, cls in CLIENTS.items()}
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        for workload, fn in WORKLOADS.items():
            for client in clients.values():  # warm-up: connections open, content checked
                if workload == "stream-1mib":
                    await stream_big(client, check=True)
                else:
                    await fn(client)
            for r in range(repeats):
                order = list(clients) if r % 2 == 0 else list(reversed(clients))
                for name in order:
                    client = clients[name]
                    requests = 0
                    cpu0, t0 = time.process_time(), time.perf_counter()
                    while True:
                        requests += await fn(client)
                        elapsed = time.perf_counter() - t0
                        if elapsed >= seconds:
                            break
                    cpu = time.process_time() - cpu0
                    results.setdefault((workload, name), []).append(
                        (elapsed * 1e6 / requests, cpu * 1e6 / requests)
                    )
    finally:
        for client in clients.values():
            await client.aclose()
        await asyncio.sleep(0)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="alternating runs per client")
    parser.add_argument("--seconds", type=float, default=0.4, help="duration of one run")
    parser.add_argument("--origin", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.origin:
        _serve_origin()
        return 0

    import aiohttp

    load0 = os.getloadavg()
    with origin_process() as port:
        results = asyncio.run(_run(port, args.repeats, args.seconds))
    load1 = os.getloadavg()
    print(
        f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}"
        f" (C parser: {'yes' if not aiohttp.helpers.NO_EXTENSIONS else 'no'}); {os.cpu_count()} CPUs;"
        f" load average {load0[0]:.2f} -> {load1[0]:.2f}"
    )
    print(
        f"{args.repeats} alternating runs of {args.seconds} s per client and workload; "
        "origin in a subprocess; µs per request (wall), CPU = client process only\n"
    )
    header = (
        f"{'workload':<12} {'client':<8} {'wall µs/req: median':>19} {'[min - max]':>17} "
        f"{'req/s':>6} {'CPU µs/req: median':>18} {'min':>6}  {'aiohttp/pool: wall':>17} "
        f"{'CPU':>5} {'CPU min':>7}"
    )
    print(header)
    print("-" * len(header))
    for workload in WORKLOADS:
        stats: dict[str, tuple[float, float, float]] = {}
        for name in CLIENTS:
            wall = [w for w, _ in results[(workload, name)]]
            cpu = [c for _, c in results[(workload, name)]]
            stats[name] = (statistics.median(wall), statistics.median(cpu), min(cpu))
            ratios = ""
            if name == "aiohttp" and "pool" in stats:
                a, h = stats["aiohttp"], stats["pool"]
                ratios = f"{a[0] / h[0]:>17.2f} {a[1] / h[1]:>5.2f} {a[2] / h[2]:>7.2f}"
            spread = f"[{min(wall):.0f} - {max(wall):.0f}]"
            print(
                f"{workload:<12} {name:<8} {stats[name][0]:>19.1f} {spread:>17} "
                f"{1e6 / stats[name][0]:>6.0f} {stats[name][1]:>18.1f} {stats[name][2]:>6.1f}  "
                f"{ratios}".rstrip()
            )
    for name in CLIENTS:
        us = statistics.median(w for w, _ in results[("stream-1mib", name)])
        print(f"stream-1mib, {name}: {1e6 / us:.0f} MiB/s (median wall)")
    print("ratio < 1: aiohttp faster / less CPU than the edgerules pool; every response was checked")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
