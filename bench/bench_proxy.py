"""Load benchmark of the mTLS proxy: N concurrent keep-alive mTLS clients for a bounded
time on loopback; reports requests/s, p50/p99 latency, errors and that every request got
an answer. Three runs in the same invocation:

* ``proxy + rules``: ``edgerules proxy`` with ``rules/mtls-required.json`` and a store
  (mTLS on ``api.localhost``), clients presenting a valid managed-CA certificate;
* ``proxy, no rules``: the same proxy without ``--rules`` (handshake + validator +
  forwarding, no rule evaluation);
* ``origin direct``: the echo origin over plain HTTP (the ceiling of this machine).

The proxy and the origin run as subprocesses; the load client is asyncio in this process
(so the three compete for the same cores — compare ratios, not absolute numbers).
``.venv/bin/python bench/bench_proxy.py --seconds 5 --concurrency 50``. Under pytest
(``make test``, benchmarking disabled) ``test_proxy_roundtrip`` runs one request through
an in-process proxy; ``make bench`` times it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "rules" / "mtls-required.json"
HOST = "api.localhost"


def _cpu_seconds(pid: int) -> float:
    """user+system CPU time of a process (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _measure(
    pid: int, port: int, ctx: ssl.SSLContext | None, seconds: float, concurrency: int
) -> dict[str, float]:
    before = _cpu_seconds(pid)
    result = asyncio.run(_load(port, ctx, seconds, concurrency))
    used = _cpu_seconds(pid) - before
    result["cpu_ms_per_req"] = used * 1000 / result["requests"] if result["requests"] else 0.0
    return result


def _spawn(args: list[str], marker: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stream = proc.stderr if "proxy" in args else proc.stdout
    assert stream is not None
    for line in stream:
        if marker in line:
            port = int(line.split("127.0.0.1:", 1)[1].split()[0].rstrip("/"))
            return proc, port
    raise RuntimeError(f"{args} did not start: {proc.stderr.read() if proc.stderr else ''}")


async def _client(
    port: int, ctx: ssl.SSLContext | None, deadline: float, lat: list[float], errors: list[str]
) -> int:
    answered = 0
    request = f"GET /bench HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: bench\r\n\r\n".encode()
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname=HOST if ctx else None
        )
    except (OSError, ssl.SSLError) as exc:
        errors.append(f"connect: {exc}")
        return 0
    try:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            status = int(head.split(b" ", 2)[1])
            if status != 200:
                errors.append(f"status {status}")
            lat.append(time.perf_counter() - t0)
            answered += 1
    except (OSError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        writer.close()
    return answered


async def _load(
    port: int, ctx: ssl.SSLContext | None, seconds: float, concurrency: int
) -> dict[str, float]:
    lat: list[float] = []
    errors: list[str] = []
    start = time.perf_counter()
    deadline = start + seconds
    answered = await asyncio.gather(
        *(_client(port, ctx, deadline, lat, errors) for _ in range(concurrency))
    )
    elapsed = time.perf_counter() - start
    lat.sort()
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [0.0] * 99
    return {
        "requests": float(sum(answered)),
        "rps": sum(answered) / elapsed,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "errors": float(len(errors)),
        "first_error": errors[0] if errors else "",  # type: ignore[dict-item]
    }


def _keep_best(best: dict[str, dict[str, float]], label: str, result: dict[str, float]) -> None:
    previous = best.get(label)
    errors = result["errors"] + (previous["errors"] if previous else 0)
    if previous is None or result["rps"] > previous["rps"]:
        best[label] = result
    best[label]["errors"] = errors  # errors of every repetition count


def run(seconds: float, concurrency: int, repeats: int = 2) -> list[tuple[str, dict[str, float]]]:
    from edgerules.store import open_store

    results: list[tuple[str, dict[str, float]]] = []
    procs: list[subprocess.Popen[str]] = []
    with tempfile.TemporaryDirectory(prefix="edgerules-bench-") as tmp_name:
        tmp = Path(tmp_name)
        store = open_store(str(tmp / "store.db"), create=True)
        issued = store.issue_certificate(common_name="bench", validity_days=30)
        store.enable_hostnames([HOST])
        store.close()
        (tmp / "c.crt").write_text(issued.record.certificate)
        (tmp / "c.key").write_text(issued.private_key or "")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(tmp / "c.crt", tmp / "c.key")
        try:
            origin, origin_port = _spawn(
                [sys.executable, "-m", "edgerules.proxy.echo"], "listening on"
            )
            procs.append(origin)
            base = [
                sys.executable,
                "-m",
                "edgerules",
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                f"http://127.0.0.1:{origin_port}",
                "--store",
                str(tmp / "store.db"),
                "--access-log",
                "off",
            ]
            # Alternate the runs (A B C A B C ...) and keep each one's best: the machine is
            # shared, so a single run mostly measures the neighbours.
            configs = [("proxy + rules", ["--rules", str(RULES)]), ("proxy, no rules", [])]
            best: dict[str, dict[str, float]] = {}
            for _ in range(repeats):
                for label, extra in configs:
                    proxy, port = _spawn(base + extra, "listening on")
                    procs.append(proxy)
                    _keep_best(best, label, _measure(proxy.pid, port, ctx, seconds, concurrency))
                    proxy.terminate()
                    proxy.wait(15)
                label = "origin direct (HTTP)"
                _keep_best(
                    best, label, _measure(origin.pid, origin_port, None, seconds, concurrency)
                )
            results = list(best.items())
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        p.wait(5)
                if p.poll() is None:
                    p.kill()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2, help="alternating repetitions; best kept")
    args = parser.parse_args(argv)
    results = run(args.seconds, args.concurrency, args.repeats)
    print(
        f"{args.concurrency} concurrent keep-alive clients, {args.seconds:g} s per run, "
        f"best of {args.repeats} alternating runs, {os.cpu_count()} CPUs\n"
    )
    print(
        f"{'run':<22} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'server CPU ms/req':>18}"
    )
    for label, r in results:
        print(
            f"{label:<22} {r['requests']:>9.0f} {r['rps']:>8.0f} {r['p50_ms']:>8.2f} "
            f"{r['p99_ms']:>8.2f} {r['errors']:>7.0f} {r['cpu_ms_per_req']:>18.3f}"
        )
    for label, r in results:
        if r["errors"]:
            print(f"  {label}: first error: {r['first_error']}")
    ok = all(r["errors"] == 0 and r["requests"] > 0 for _, r in results)
    if not ok:
        print("ERRORS (see above)")
        return 1
    rules, norules, direct = (r["rps"] for _, r in results)
    print(
        f"\nrules on / rules off: {rules / norules:.2f}   proxy+rules / origin direct: {rules / direct:.2f}"
    )
    cpu = [r["cpu_ms_per_req"] for _, r in results]
    if cpu[1]:
        print(f"proxy CPU per request, rules on / rules off: {cpu[0] / cpu[1]:.2f}")
    print("every request answered, no errors")
    return 0


# -- pytest (make test: runs once; make bench: timed) -------------------------------------
def test_proxy_roundtrip(benchmark, tmp_path):
    import http.client
    import socket

    from edgerules.enforcement.decision import RulesetDecider
    from edgerules.proxy.config import ProxyConfig
    from edgerules.proxy.echo import EchoOrigin
    from edgerules.proxy.server import ProxyServer, ServerThread
    from edgerules.rulesets import Ruleset
    from edgerules.store import open_store

    store = open_store(str(tmp_path / "s.db"), create=True)
    issued = store.issue_certificate(common_name="bench", validity_days=30)
    store.enable_hostnames([HOST])
    (tmp_path / "c.crt").write_text(issued.record.certificate)
    (tmp_path / "c.key").write_text(issued.private_key or "")
    with ServerThread(EchoOrigin()) as origin:
        assert origin.port is not None
        config = ProxyConfig(upstream=f"http://127.0.0.1:{origin.port}", listen_port=0)
        with ServerThread(
            ProxyServer(config, RulesetDecider(Ruleset.load(RULES)), store=store)
        ) as proxy:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.load_cert_chain(tmp_path / "c.crt", tmp_path / "c.key")
            sock = ctx.wrap_socket(
                socket.create_connection(("127.0.0.1", proxy.port)), server_hostname=HOST
            )
            conn = http.client.HTTPConnection("127.0.0.1", proxy.port)
            conn.sock = sock

            def roundtrip() -> int:
                conn.request("GET", "/bench", headers={"Host": HOST})
                resp = conn.getresponse()
                resp.read()
                return resp.status

            assert benchmark(roundtrip) == 200
            sock.close()
    store.close()


if __name__ == "__main__":
    raise SystemExit(main())
