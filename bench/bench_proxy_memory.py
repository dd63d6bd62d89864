"""Memory per idle keep-alive connection of the proxy, split into Python objects and the
rest (issue 14 point 4: ≤ 32 KB per idle connection).

The proxy runs in this process exactly as ``edgerules proxy`` builds it (same argument
parser, ``rules/mtls-required.json``, a store with mTLS on the host, access log off,
uvloop), its event loop in a thread; the echo origin and the client run as
subprocesses. The client opens ``--connections`` TLS connections with a managed-CA
client certificate, sends one request on each, reads the answer and holds them open.
Measured after a warm-up, in two steps (tracemalloc's own bookkeeping would inflate RSS):

* RSS growth of this process while ``--connections`` connections are opened and held
  (everything: OpenSSL, pyOpenSSL/cffi, the loop's transports, Python objects,
  allocator overhead) — the figure ``bench_proxy_load.py --memory-only`` gives against a
  separate proxy process;
* then, with ``tracemalloc`` on, as many connections again: Python allocations still
  live, per connection, by source file (the largest ones listed). RSS minus that is C
  memory (mostly OpenSSL's) and the allocator's overhead.

    .venv/bin/python bench/bench_proxy_memory.py [--connections 1000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from bench_proxy_load import HOST, RULES, rss_kib, server_certificate  # noqa: E402

CLIENT = r"""
import socket, ssl, sys
port, count, cert, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.load_cert_chain(cert, key)
request = b"GET /bench HTTP/1.1\r\nHost: %s\r\n\r\n" % sys.argv[5].encode()
socks = []
for line in sys.stdin:
    n = int(line)
    for _ in range(n):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), 10),
                            server_hostname=sys.argv[5])
        s.sendall(request)
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(65536)
        socks.append(s)
    print(len(socks), flush=True)
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args(argv)

    from edgerules.cli.proxy_cmd import build_server, register
    from edgerules.proxy.server import ServerThread, event_loop_factory
    from edgerules.store import open_store

    with tempfile.TemporaryDirectory(prefix="edgerules-mem-") as tmp_name:
        tmp = Path(tmp_name)
        cert, key = server_certificate(tmp)
        store = open_store(str(tmp / "store.db"), create=True)
        issued = store.issue_certificate(common_name="mem", validity_days=30)
        store.enable_hostnames([HOST])
        store.close()
        (tmp / "c.crt").write_text(issued.record.certificate)
        (tmp / "c.key").write_text(issued.private_key or "")
        origin = subprocess.Popen([sys.executable, "-m", "edgerules.proxy.echo"],
                                  stdout=subprocess.PIPE, text=True)
        client = None
        try:
            assert origin.stdout is not None
            origin_port = int(origin.stdout.readline().rsplit(":", 1)[1])
            top = argparse.ArgumentParser()
            sub = top.add_subparsers()
            register(sub)
            ns = top.parse_args(["proxy", "--listen", "127.0.0.1:0", "--upstream",
                                 f"http://127.0.0.1:{origin_port}", "--rules", str(RULES),
                                 "--store", str(tmp / "store.db"), "--cert", str(cert),
                                 "--key", str(key), "--access-log", "off",
                                 "--max-connections", str(2 * args.connections + 100)])
            server = build_server(ns)
            thread = ServerThread(server, event_loop_factory("auto")).start()
            client = subprocess.Popen(
                [sys.executable, "-c", CLIENT, str(thread.port), str(args.connections),
                 str(tmp / "c.crt"), str(tmp / "c.key"), HOST],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert client.stdin is not None and client.stdout is not None

            def hold(n: int) -> None:
                client.stdin.write(f"{n}\n")  # type: ignore[union-attr]
                client.stdin.flush()  # type: ignore[union-attr]
                client.stdout.readline()  # type: ignore[union-attr]

            hold(20)  # warm-up: code paths, the validator's cache, pools
            time.sleep(0.5)
            # 1. RSS, without tracemalloc (which adds its own bookkeeping per block)
            rss0 = rss_kib([os.getpid()])
            hold(args.connections)
            time.sleep(1.0)
            rss1 = rss_kib([os.getpid()])
            # 2. Python objects: as many connections again, traced
            tracemalloc.start(1)
            snap0 = tracemalloc.take_snapshot()
            hold(args.connections)
            time.sleep(1.0)
            snap1 = tracemalloc.take_snapshot()
            tracemalloc.stop()
            held = len(server._conns)
            client.stdin.close()
            client.wait(30)
            thread.stop()
        finally:
            if client is not None and client.poll() is None:
                client.kill()
            origin.terminate()
            origin.wait(10)
    n = args.connections
    stats = snap1.compare_to(snap0, "filename")
    python_kib = sum(s.size_diff for s in stats) / 1024 / n
    rss = (rss1 - rss0) / n
    print(f"{n} idle keep-alive connections measured (RSS: the first {n}; Python objects: the "
          f"next {n}, traced; {held} open in the proxy at the end), each after one request")
    print(f"RSS growth:                 {rss:6.1f} KiB per connection")
    print(f"Python objects (live):      {python_kib:6.1f} KiB per connection")
    print(f"the rest (C, allocator):    {rss - python_kib:6.1f} KiB per connection\n")
    print("largest Python allocations per connection, by file:")
    for s in stats[: args.top]:
        name = s.traceback[0].filename
        short = name.split("site-packages/")[-1].split("src/")[-1]
        print(f"  {s.size_diff / n:8.0f} B  {s.count_diff / n:5.1f} blocks  {short}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
