"""Measure the engine against hand-written Python and print the ratio table.

Usage::

    .venv/bin/python bench/report.py [--rounds N] [--stat min|median] [-k SUBSTRING]

For each workload of ``bench/bench_engine.py`` (a realistic ~30-field request, the
fastest hand-written function for the rule) this times, **in CPU time per operation**
(``time.process_time``, so other processes on a shared machine do not inflate it):

* ``hand`` — the hand-written function;
* ``matches`` — ``Filter.matches(dict)`` (goal ≤ 1.5× geometric mean, none > 3×);
* ``ctx+execute`` — ``Filter.execute(scheme.context(dict))``, the Context built inside
  the timed call;
* ``execute`` — ``Filter.execute(ctx)`` on a Context built once (goal ≤ 1.2×);
* ``compile`` — parse + check + compile of the rule text (``engine._compile``, no cache;
  goal ≤ 100 µs).

The four evaluation paths are timed in interleaved batches (each batch a few
milliseconds of calls, GC off), so load from other processes hits all of them alike;
the statistic is the minimum over the rounds by default (the least noisy estimate of a
function's own cost), ``--stat median`` shows medians. Every call wraps the path in
one Python call frame (a bound callable), the hand-written function included, so the
ratios compare like with like. Ratios are per workload; the summary rows give their
geometric mean and the worst.
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

PATHS = ("matches", "context_execute", "lazy_context_execute", "execute")
TITLES = {"matches": "matches", "context_execute": "ctx+execute",
          "lazy_context_execute": "lazy ctx+execute", "execute": "execute"}


def _batch(fn: Callable[[], object], number: int) -> float:
    clock = time.process_time
    t0 = clock()
    for _ in range(number):
        fn()
    return (clock() - t0) / number


def measure(fns: dict[str, Callable[[], object]], rounds: int, budget: float = 0.004
            ) -> dict[str, list[float]]:
    """Per-call CPU seconds of each function, one sample per round, interleaved."""
    numbers = {}
    for name, fn in fns.items():
        fn()
        once = max(_batch(fn, 50), 5e-8)
        numbers[name] = max(20, int(budget / once))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    gc.disable()
    try:
        for _ in range(rounds):
            for name, fn in fns.items():
                samples[name].append(_batch(fn, numbers[name]))
    finally:
        gc.enable()
    return samples


def compile_time(text: str, rounds: int) -> list[float]:
    from edgerules.lang.engine import _compile
    from edgerules.lang.scheme import default_scheme

    scheme = default_scheme()
    out = []
    gc.disable()
    try:
        for _ in range(rounds):
            t0 = time.process_time()
            for _ in range(20):
                _compile(text, scheme, None, None)
            out.append((time.process_time() - t0) / 20)
    finally:
        gc.enable()
    return out


def _geo(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def _t(seconds: float) -> str:
    ns = seconds * 1e9
    return f"{ns / 1000:,.1f} µs" if ns >= 10_000 else f"{ns:,.0f} ns"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--stat", choices=("min", "median"), default="min")
    parser.add_argument("-k", default="", help="only workloads whose name contains this")
    args = parser.parse_args(argv)
    pick = min if args.stat == "min" else statistics.median

    import bench_engine as be

    head = "| workload | hand-written |" + "".join(f" {TITLES[p]} | ratio |" for p in PATHS)
    lines = [head + " compile |", "| --- | ---: |" + " ---: | ---: |" * len(PATHS) + " ---: |"]
    ratios: dict[str, list[float]] = {p: [] for p in PATHS}
    compiles: list[float] = []
    for w in be.W:
        if args.k not in w.name:
            continue
        f = be._check_agreement(w)
        req = w.requests[0]
        ctx = be.SCHEME.context(req)
        context, execute, matches, hand = be.SCHEME.context, f.execute, f.matches, w.hand
        fns: dict[str, Callable[[], object]] = {
            "hand": lambda hand=hand, req=req: hand(req),
            "matches": lambda matches=matches, req=req: matches(req),
            "context_execute": lambda e=execute, c=context, req=req: e(c(req)),
            "lazy_context_execute": lambda e=execute, c=context, req=req: e(c(req, lazy=True)),
            "execute": lambda execute=execute, ctx=ctx: execute(ctx),
        }
        s = {k: pick(v) for k, v in measure(fns, args.rounds).items()}
        row = f"| {w.name} | {_t(s['hand'])} |"
        for p in PATHS:
            r = s[p] / s["hand"]
            ratios[p].append(r)
            row += f" {_t(s[p])} | {r:.2f}× |"
        if w.tree is None:
            c = pick(compile_time(w.expr, max(5, args.rounds // 3)))
            compiles.append(c)
            row += f" {c * 1e6:.0f} µs |"
        else:
            row += " (AST) |"
        lines.append(row)
        print(row, file=sys.stderr)
    geo = "| **geometric mean** | |" + "".join(f" | **{_geo(ratios[p]):.2f}×** |" for p in PATHS)
    worst = "| **worst** | |" + "".join(f" | {max(ratios[p], default=0):.2f}× |" for p in PATHS)
    if compiles:
        geo += f" {sum(compiles) / len(compiles) * 1e6:.0f} µs (mean) |"
        worst += f" {max(compiles) * 1e6:.0f} µs |"
    lines += [geo, worst]
    print(f"Python {sys.version.split()[0]}; CPU time per operation, {args.rounds} interleaved "
          f"rounds, statistic: {args.stat}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
