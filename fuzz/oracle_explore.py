"""Large differential exploration: edgerules' front end against Cloudflare's wirefilter.

    .venv/bin/python fuzz/oracle_explore.py [--generated 80000] [--mutations 20000] [--seed 1]

Judges (fuzz/wirefilter_oracle.py) every expression of tests/cases/*.toml, ``--generated``
expressions drawn from the grammar-and-scheme strategy, and ``--mutations`` near-misses
of the case expressions, then prints the agreement figures (raw agreement, and agreement
once the documented deviations are set aside) and the unexplained disagreements (each
with both messages). Exit status 1 when any disagreement is unexplained. The figure in
docs/conformance.md comes from this script.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hypothesis import HealthCheck, Phase, given, seed, settings

import wirefilter_oracle as oracle


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generated", type=int, default=80_000)
    ap.add_argument("--mutations", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--show", type=int, default=20, help="unexplained cases to print")
    args = ap.parse_args(argv)

    counts: Counter[str] = Counter()
    by_source: dict[str, Counter[str]] = {}
    unexplained: list[oracle.Verdict] = []
    started = time.monotonic()

    def record(source: str, text: str) -> None:
        v = oracle.judge(text)
        c = by_source.setdefault(source, Counter())
        c["total"] += 1
        c["accepted by both" if v.ours is None and v.agree else "rejected by both" if v.agree else "disagree"] += 1
        if not v.agree:
            counts[v.deviation or "UNEXPLAINED"] += 1
            if v.deviation is None:
                unexplained.append(v)

    for text in oracle.case_expressions():
        record("case files", text)
    for text in oracle.mutations(args.mutations, args.seed):
        record("mutations", text)

    @settings(
        max_examples=args.generated,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @seed(args.seed)  # the same expressions on every run with the same --seed
    @given(oracle.expressions())
    def explore(text: str) -> None:
        record("generated", text)

    if args.generated:
        explore()

    total = sum(c["total"] for c in by_source.values())
    disagree = sum(c["disagree"] for c in by_source.values())
    print(f"{total} expressions in {time.monotonic() - started:.0f} s")
    for source, c in by_source.items():
        print(
            f"  {source:<11} {c['total']:>7}  accepted by both {c['accepted by both']:>6}  "
            f"rejected by both {c['rejected by both']:>6}  disagree {c['disagree']:>5}"
        )
    agree = total - disagree
    print(f"raw agreement: {agree}/{total} = {100 * agree / total:.2f} %")
    print(
        f"agreement outside the documented deviations: {total - counts['UNEXPLAINED']}/{total}"
        f" = {100 * (total - counts['UNEXPLAINED']) / total:.3f} %"
    )
    print("disagreements by deviation:")
    for key, n in counts.most_common():
        print(f"  {key:<24} {n}")
    for v in unexplained[: args.show]:
        print(v.report())
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
