"""Run the engine benchmarks and print the ratio table.

Usage::

    .venv/bin/python bench/report.py [--json FILE] [--from-json FILE] [extra pytest args]

Runs ``pytest bench/bench_engine.py --benchmark-enable --benchmark-json=FILE`` (unless
``--from-json`` points at an existing result), then prints, per workload, the median time
of the hand-written function, of ``Filter.execute`` on a prebuilt Context and of
``Filter.matches(dict)``, their ratios to the hand-written time, the geometric means of
the ratios (targets: ≤ 1.5 for execute, ≤ 3 for matches), and parse+compile time per
typical rule (target: < 100 µs). The statistic is the minimum by default (the machine
is shared, and the minimum is the least noisy estimate of a function's own cost);
``--stat median`` shows medians.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(json_path: Path, extra: list[str]) -> None:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(ROOT / "bench" / "bench_engine.py"),
        "-q",
        "-p",
        "no:cacheprovider",
        "--benchmark-enable",
        "--benchmark-only",
        "--benchmark-disable-gc",
        "--benchmark-min-rounds=2000",
        f"--benchmark-json={json_path}",
        *extra,
    ]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def table(data: dict, stat: str = "min") -> str:
    by_group: dict[str, dict[str, float]] = {}
    compile_times: dict[str, float] = {}
    check_times: dict[str, float] = {}
    for bench in data["benchmarks"]:
        name = bench["name"]  # test_execute[workload]
        kind = name.split("[")[0].removeprefix("test_")
        workload = name.split("[")[1].rstrip("]")
        value = bench["stats"][stat]
        if kind == "compile":
            compile_times[workload] = value
        elif kind == "check_compile":
            check_times[workload] = value
        else:
            by_group.setdefault(workload, {})[kind] = value
    lines = [
        "| workload | hand-written | execute(Context) | ratio | matches(dict) | ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    ex_ratios: list[float] = []
    m_ratios: list[float] = []
    for workload, t in by_group.items():
        if not {"hand", "execute", "matches"} <= t.keys():
            continue
        rx = t["execute"] / t["hand"]
        rm = t["matches"] / t["hand"]
        ex_ratios.append(rx)
        m_ratios.append(rm)
        lines.append(
            f"| {workload} | {t['hand'] * 1e9:,.0f} ns | {t['execute'] * 1e9:,.0f} ns | "
            f"{rx:.2f}× | {t['matches'] * 1e9:,.0f} ns | {rm:.2f}× |"
        )

    def geo(xs: list[float]) -> float:
        return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")

    lines.append(
        f"| **geometric mean** | | | **{geo(ex_ratios):.2f}×** (target ≤ 1.5) | | "
        f"**{geo(m_ratios):.2f}×** (target ≤ 3) |"
    )
    out = "\n".join(lines)
    if compile_times:
        out += "\n\n| rule | parse+check+compile | of which check+compile |\n| --- | ---: | ---: |\n"
        out += "\n".join(
            f"| {k} | {v * 1e6:.1f} µs | {check_times.get(k, float('nan')) * 1e6:.1f} µs |"
            for k, v in compile_times.items()
        )
        mean = sum(compile_times.values()) / len(compile_times)
        cmean = sum(check_times.values()) / len(check_times) if check_times else float("nan")
        out += f"\n| **mean** | **{mean * 1e6:.1f} µs** (target < 100 µs) | **{cmean * 1e6:.1f} µs** |"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="where to keep the pytest-benchmark JSON")
    parser.add_argument("--from-json", type=Path, help="print the table of an existing run")
    parser.add_argument("--stat", choices=("min", "median", "mean"), default="min")
    args, extra = parser.parse_known_args(argv)
    if args.from_json:
        data = json.loads(args.from_json.read_text())
    else:
        if args.json:
            path = args.json
        else:
            fd, name = tempfile.mkstemp(suffix=".json")
            os.close(fd)
            path = Path(name)
        run(path, extra)
        data = json.loads(path.read_text())
    print(f"Python {data.get('machine_info', {}).get('python_version', '?')}, "
          f"{data.get('machine_info', {}).get('cpu', {}).get('brand_raw', '')}".rstrip(", "))
    print(f"statistic: {args.stat}")
    print(table(data, args.stat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
