"""Fuzz target: no rule and no request value may cost more than 1 s or 256 MB.

Generates rules built to be expensive — big and nested counted repetitions, Unicode
classes, many regexes or-ed together, wildcards full of ``*``, ``url_decode`` in repeat
mode, function chains — and 16 KB request values built to hurt them (long runs of one
letter, nested ``%25``, multi-byte text, random bytes). Every compile and every
evaluation is timed in CPU time; the process's resident memory is read after each.

A rule may be refused (``ParseError``/``RuleTypeError`` with a span: the budget doing its
job); any other exception, a compile or evaluation over ``MAX_SECONDS``, or resident
memory growing more than ``MAX_RSS`` over the start is a failure.

    .venv/bin/python fuzz/fuzz_budget.py [--cases N] [--seed S]

``fuzz/run.py --budget`` runs it too; ``tests/test_engine_limits.py`` runs a few cases.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from edgerules.errors import ParseError, RuleTypeError
from edgerules.lang.engine import _compile
from edgerules.lang.scheme import default_scheme

MAX_SECONDS = 1.0
MAX_RSS = 256 << 20
VALUE_BYTES = 16 * 1024


def rss() -> int:
    """Resident memory of this process in bytes (Linux), 0 where unknown."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * 4096
    except OSError:  # pragma: no cover - not Linux
        return 0


_COUNTS = (1, 2, 9, 10, 99, 100, 280, 500, 999, 1000, 1001, 5000, 90000, 100000)
_ATOMS = ("a", "[a-z]", ".", "\\\\w", "\\\\d", "[^x]", "(?:ab)", "(?:a|b)", "[[[a]]]", "é")
_UNICODE_ATOMS = ("\\\\w", "\\\\pL", ".", "[\\\\w\\\\d]", "\\\\p{Greek}")


def _regex(rng: random.Random, depth: int = 0) -> str:
    """A regex as it appears between the quotes of a rule (backslashes doubled)."""
    utf8 = depth == 0 and rng.random() < 0.3
    atoms = _UNICODE_ATOMS if utf8 else _ATOMS
    parts = []
    for _ in range(rng.randint(1, 3)):
        if depth < 3 and rng.random() < 0.3:
            atom = "(?:" + _regex(rng, depth + 1) + ")"
        else:
            atom = rng.choice(atoms)
        r = rng.random()
        if r < 0.6:
            lo = rng.choice(_COUNTS)
            atom += rng.choice((f"{{{lo}}}", f"{{0,{lo}}}", f"{{{lo},}}"))
        elif r < 0.8:
            atom += rng.choice("*+?")
        parts.append(atom)
    body = "".join(parts)
    if rng.random() < 0.2:
        body = "[" * rng.randint(1, 800) + "a" + "]" * rng.randint(1, 800)
    if rng.random() < 0.3:
        body += "!"
    return ("(?u)" if utf8 else "") + body


def _condition(rng: random.Random) -> str:
    kind = rng.random()
    field = rng.choice(("http.host", "http.request.uri.path", "http.user_agent"))
    if kind < 0.6:
        return f'{field} matches "{_regex(rng)}"'
    if kind < 0.7:
        return f'{field} wildcard "{"*a" * rng.randint(1, 600)}"'
    if kind < 0.8:
        return f'url_decode({field}, "{rng.choice(("r", "ru", "u"))}") contains "A"'
    if kind < 0.9:
        return f'regex_replace({field}, "{_regex(rng)}", "x") eq "x"'
    return f'lower(url_decode(lower({field}), "r")) matches "{_regex(rng)}"'


def rule(rng: random.Random) -> str:
    n = rng.choice((1, 1, 2, 5, 20, 64, 65, 120))
    return " or ".join(_condition(rng) for _ in range(n))[:4096]


def values(rng: random.Random) -> list[str]:
    n = VALUE_BYTES
    return [
        "a" * n,
        "a" * (n - 1) + "!",
        "%" + "25" * ((n - 3) // 2) + "41",
        "é" * (n // 2),
        "ab" * (n // 2),
        "".join(rng.choice("a%25u+Zé!") for _ in range(n)),
        bytes(rng.getrandbits(8) for _ in range(n)).decode("latin-1"),
    ]


@dataclass
class Finding:
    what: str
    rule: str
    seconds: float = 0.0
    rss_growth: int = 0


def check(text: str, inputs: list[str], *, limit: float = MAX_SECONDS,
          rss_base: int | None = None) -> Finding | None:
    """Compile ``text`` and evaluate it on each input; a ``Finding`` when a bound is broken."""
    scheme = default_scheme()
    base = rss() if rss_base is None else rss_base

    def timed(fn: Callable[[], object]) -> float:
        t0 = time.process_time()
        fn()
        return time.process_time() - t0

    try:
        box: list[object] = []
        spent = timed(lambda: box.append(_compile(text, scheme, None, None)))
    except (ParseError, RuleTypeError):
        return None  # refused: fine, as long as it was quick (timed below)
    except Exception as exc:
        return Finding(f"compile raised {exc!r}", text)
    if spent > limit:
        return Finding("compile too slow", text, spent)
    flt = box[0]
    for value in inputs:
        fields = {"http.host": value, "http.request.uri.path": value, "http.user_agent": value}
        try:
            spent = timed(lambda fields=fields: flt.matches(fields))  # type: ignore[attr-defined]
        except Exception as exc:
            return Finding(f"evaluation raised {exc!r}", text)
        if spent > limit:
            return Finding(f"evaluation too slow on a {len(value)}-character value", text, spent)
    growth = rss() - base
    if growth > MAX_RSS:
        return Finding("memory", text, rss_growth=growth)
    return None


def run(cases: int, seed: int) -> int:
    rng = random.Random(seed)
    inputs = values(rng)
    base = rss()
    worst = 0.0
    for k in range(cases):
        text = rule(rng)
        t0 = time.process_time()
        found = check(text, inputs, rss_base=base)
        worst = max(worst, time.process_time() - t0)
        if found is not None:
            print(f"FAILED case {k}: {found.what} ({found.seconds:.2f} s, "
                  f"+{found.rss_growth >> 20} MB): {found.rule[:300]!r}", file=sys.stderr)
            return 1
    print(f"{cases} rules, each compiled and evaluated on {len(inputs)} values of "
          f"{VALUE_BYTES} bytes: slowest case {worst:.2f} s CPU, resident memory "
          f"+{(rss() - base) >> 20} MB")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    return run(args.cases, args.seed)


if __name__ == "__main__":
    raise SystemExit(main())
