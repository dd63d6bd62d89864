"""Propagation benchmark (issue 13.2): how long a revocation made through the CLI takes to
reach proxies that share one PostgreSQL store, on connections already open.

For each of ``--revocations`` rounds: every proxy has one keep-alive HTTPS connection with
the device's certificate open and answering 200; ``edgerules cert revoke ID`` runs (a
separate process, as an operator would); each connection sends requests back to back and
records when it first gets 403. The delay is measured from the moment the CLI printed its
result (after the commit) to that 403. The device is restored (and every connection
back to 200) before the next round. Prints median, p90 and max per fleet size.

    .venv/bin/python bench/bench_propagation.py                      # 3 proxies, 50 revocations
    .venv/bin/python bench/bench_propagation.py --proxies 1 3 10 --revocations 50

Needs PostgreSQL (``$EDGERULES_DEMO_POSTGRES``, default the local server); the fleet and
its database are created and dropped by the run. No test functions: ``make test`` collects
nothing here (timings belong to this script, not to assertions).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from edgerules.demo_fleet import START_HINT, Fleet, server_url, unreachable


def run_fleet(proxies: int, revocations: int) -> dict[str, float]:
    delays: list[float] = []
    misses = 0
    with tempfile.TemporaryDirectory(prefix="edgerules-prop-") as tmp, Fleet(
        server_url(), proxies, Path(tmp)
    ) as fleet:
        fleet.create()
        device = fleet.issue("device-bench")
        fleet.start()
        clients = fleet.connect(device)
        for n in range(revocations):
            for c in clients:  # every open connection admits the device again
                deadline = time.monotonic() + 10
                while c.get() != 200 and time.monotonic() < deadline:
                    time.sleep(0.005)
            got = fleet.time_to_block(clients, ("cert", "revoke", device.id))
            delays.extend(d for d in got if d is not None)
            misses += sum(d is None for d in got)
            fleet.cli("cert", "restore", device.id)
            print(f"  {proxies} proxies, revocation {n + 1}/{revocations}: "
                  + ", ".join("-" if d is None else f"{d * 1000:.1f}" for d in got) + " ms",
                  file=sys.stderr)
        for c in clients:
            c.close()
    ordered = sorted(delays)
    return {
        "proxies": proxies,
        "samples": len(delays),
        "missed": misses,
        "median_ms": statistics.median(ordered) * 1000 if ordered else float("nan"),
        "p90_ms": ordered[int(0.9 * (len(ordered) - 1))] * 1000 if ordered else float("nan"),
        "max_ms": ordered[-1] * 1000 if ordered else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--proxies", type=int, nargs="+", default=[3])
    parser.add_argument("--revocations", type=int, default=50)
    args = parser.parse_args(argv)
    problem = unreachable(server_url())
    if problem is not None:
        print(f"PostgreSQL at {server_url()} is not reachable ({problem}).\n{START_HINT}")
        return 2
    rows = [run_fleet(n, args.revocations) for n in args.proxies]
    print("proxies  revocations  samples  missed  median    p90       max")
    for r in rows:
        print(f"{r['proxies']:<7}  {args.revocations:<11}  {r['samples']:<7}  {r['missed']:<6}  "
              f"{r['median_ms']:6.1f} ms  {r['p90_ms']:6.1f} ms  {r['max_ms']:6.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
