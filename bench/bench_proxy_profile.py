"""Where the proxy's CPU goes per request: a cProfile of the serving loop only (start-up
excluded), grouped by component, under the C load client (issue 14 point 1).

The proxy runs in this process exactly as ``edgerules proxy`` builds it (same argument
parser, ``rules/mtls-required.json``, a store with mTLS on the host, access log off),
its event loop in a thread; the echo origin and ``bench/loadclient.c`` run as
subprocesses. The profiler is switched on inside the loop's thread after a warm-up and
off before the load ends. cProfile inflates Python call costs (roughly 2x), so read the
shares, not the absolute times; the un-profiled CPU per request is measured first.

On uvloop (the default, as the CLI) the event loop and its transports are C code that
cProfile does not see: the loop's own time is missing from the total, and the ``send``
system call inside ``transport.write`` is counted in the caller's self time
(``proxy/tls.py`` ``_flush`` for the client, ``proxy/upstream.py`` ``write`` for the
origin), i.e. in the TLS and upstream groups. ``--loop asyncio`` shows the system calls
and the loop as groups of their own.

    .venv/bin/python bench/bench_proxy_profile.py [--mode keepalive|new] [--no-cert]
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from bench_proxy_load import HOST, RULES, build_loadclient, server_certificate  # noqa: E402

# component -> path fragments (first match wins; checked in this order)
GROUPS = [
    ("TLS (pyOpenSSL + proxy/tls.py)", ("OpenSSL/", "proxy/tls.py", "_cffi", "_openssl")),
    ("waiting (proxy/waiter.py)", ("proxy/waiter.py",)),
    ("socket syscalls", ("method 'send'", "method 'recv'", "sendmsg", "recv_into")),
    ("HTTP parse/serialise (proxy/http1.py)", ("h11/", "proxy/http1.py")),
    ("upstream client", ("proxy/upstream.py",)),
    ("rule evaluation (rulesets, lang)", ("edgerules/rulesets/", "edgerules/lang/")),
    ("rule fields + context", ("enforcement/request_fields.py",)),
    ("forwarding headers", ("enforcement/forwarding.py", "enforcement/decision.py", "tls/auth.py", "tls/headers.py")),
    ("certificate state (9.1)", ("proxy/certstate.py", "store/")),
    ("access log", ("proxy/accesslog.py",)),
    ("proxy/server.py (request loop)", ("proxy/server.py",)),
    ("asyncio + event loop", ("asyncio/", "selectors.py", "method 'poll'", "method 'control'", "uvloop")),
]


def group_of(file: str, name: str) -> str:
    where = f"{file}:{name}"
    for group, parts in GROUPS:
        if any(p in where for p in parts):
            return group
    return "other"


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["keepalive", "new"], default="keepalive")
    parser.add_argument("--no-cert", action="store_true", help="blocked requests (no certificate)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop",
                        help="event loop (the CLI's default is uvloop when installed)")
    args = parser.parse_args(argv)

    from edgerules.cli.proxy_cmd import build_server, register
    from edgerules.proxy.server import ServerThread, event_loop_factory
    from edgerules.store import open_store

    with tempfile.TemporaryDirectory(prefix="edgerules-prof-") as tmp_name:
        tmp = Path(tmp_name)
        client = build_loadclient(tmp)
        cert, key = server_certificate(tmp)
        store = open_store(str(tmp / "store.db"), create=True)
        issued = store.issue_certificate(common_name="prof", validity_days=30)
        store.enable_hostnames([HOST])
        store.close()
        (tmp / "c.crt").write_text(issued.record.certificate)
        (tmp / "c.key").write_text(issued.private_key or "")
        origin = subprocess.Popen([sys.executable, "-m", "edgerules.proxy.echo"],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert origin.stdout is not None
            origin_port = int(origin.stdout.readline().rsplit(":", 1)[1])
            top = argparse.ArgumentParser()
            sub = top.add_subparsers()
            register(sub)
            ns = top.parse_args(["proxy", "--listen", "127.0.0.1:0", "--upstream",
                                 f"http://127.0.0.1:{origin_port}", "--rules", str(RULES),
                                 "--store", str(tmp / "store.db"), "--cert", str(cert),
                                 "--key", str(key), "--access-log", "off"])
            server = build_server(ns)
            thread = ServerThread(server, event_loop_factory(args.loop)).start()
            expect = "403" if args.no_cert else "200"
            certs = ["-", "-"] if args.no_cert else [str(tmp / "c.crt"), str(tmp / "c.key")]

            def load(seconds: float) -> dict[str, float]:
                import json

                out = subprocess.run(
                    [str(client), "127.0.0.1", str(thread.port), HOST, str(seconds),
                     str(args.concurrency), args.mode, *certs, "/bench", expect],
                    capture_output=True, text=True, check=True)
                return json.loads(out.stdout)

            load(1.0)  # warm-up
            c0 = cpu_seconds()
            plain = load(args.seconds)
            plain_cpu = (cpu_seconds() - c0) * 1000 / plain["requests"]
            prof = cProfile.Profile()
            started = threading.Event()
            thread.loop.call_soon_threadsafe(lambda: (prof.enable(), started.set()))
            started.wait(10)
            profiled = load(args.seconds)
            stopped = threading.Event()
            thread.loop.call_soon_threadsafe(lambda: (prof.disable(), stopped.set()))
            stopped.wait(10)
            thread.stop()
        finally:
            origin.terminate()
            origin.wait(10)
    stats = pstats.Stats(prof)
    by_group: collections.Counter[str] = collections.Counter()
    total = 0.0
    for (file, _line, name), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        by_group[group_of(file, name)] += tt
        total += tt
    n = profiled["requests"]
    label = ("blocked " if args.no_cert else "") + ("keep-alive" if args.mode == "keepalive" else "new connection")
    print(f"{label}, c={args.concurrency}: un-profiled proxy CPU {plain_cpu:.3f} ms/request "
          f"({plain['requests']} requests; this process: the proxy only)")
    print(f"profiled: {n} requests, {total * 1000 / n:.3f} ms/request under cProfile\n")
    print(f"{'component':<38} {'share':>6} {'us/req (profiled)':>18}")
    for group, t in by_group.most_common():
        print(f"{group:<38} {t / total * 100:>5.1f}% {t * 1e6 / n:>18.1f}")
    print()
    stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
