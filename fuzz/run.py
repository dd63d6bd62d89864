"""``make fuzz``: fuzz the parser for a while (``--budget N``: first the engine's
compile/evaluation budget target, ``fuzz_budget.py``, on N generated rules).

With atheris installed: runs ``fuzz/fuzz_parser.py`` under libFuzzer for ``--seconds``
(default 60). Without it: runs the hypothesis targets of ``fuzz/hypothesis_targets.py``
(any text -> AST or ParseError; generated AST -> format -> parse round trip) with
``--examples`` examples each (default 20,000). Exit status 0 when nothing was found.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_atheris(seconds: int) -> int:
    corpus = HERE / "corpus"
    corpus.mkdir(exist_ok=True)
    cmd = [
        sys.executable,
        str(HERE / "fuzz_parser.py"),
        f"-max_total_time={seconds}",
        "-max_len=4200",
        "-rss_limit_mb=2048",
        str(corpus),
    ]
    print("running:", " ".join(cmd), flush=True)
    return subprocess.call(cmd)


def run_hypothesis(examples: int) -> int:
    sys.path.insert(0, str(HERE))
    from hypothesis import HealthCheck, given, settings

    from hypothesis_targets import check_any_text, check_round_trip, expressions, texts

    config = settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    failures = 0
    for name, strategy, check in (
        ("any text -> AST or ParseError", texts, check_any_text),
        ("format/parse round trip", expressions, check_round_trip),
    ):
        print(f"hypothesis: {name} ({examples} examples)", flush=True)
        try:
            config(given(strategy)(check))()
        except Exception as exc:  # report and keep going with the next target
            failures += 1
            print(f"FAILED: {name}: {exc!r}", file=sys.stderr)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=60, help="atheris run time")
    parser.add_argument(
        "--examples", type=int, default=20_000, help="hypothesis examples per target"
    )
    parser.add_argument(
        "--hypothesis", action="store_true", help="use hypothesis even if atheris is installed"
    )
    parser.add_argument(
        "--budget", type=int, metavar="N", default=0,
        help="also run the engine budget target (fuzz_budget.py) on N generated rules",
    )
    args = parser.parse_args(argv)
    if args.budget:
        sys.path.insert(0, str(HERE))
        import fuzz_budget

        if fuzz_budget.run(args.budget, seed=1):
            return 1
    if not args.hypothesis and importlib.util.find_spec("atheris") is not None:
        return run_atheris(args.seconds)
    print("atheris is not installed: running the hypothesis fuzz targets", flush=True)
    return run_hypothesis(args.examples)


if __name__ == "__main__":
    raise SystemExit(main())
