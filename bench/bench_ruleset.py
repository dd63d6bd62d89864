"""Benchmark: evaluating rulesets of 10 … 10,000 rules against one request, compared with
a hand-written Python loop over the same predicates, in the same run.

Two rule mixes:

* ``guarded`` — realistic per-host / per-method / per-certificate-state rules
  (``http.host eq "…" and …``); most rules have a guard the ruleset's rule index can
  use (see ``ruleset._RuleIndex``), so only the rules that can match are evaluated.
* ``unguarded`` — function-heavy rules (``starts_with``, ``contains``, ``ends_with``)
  that no index helps: every rule's closure runs, so this measures the engine's per-rule
  cost against a Python lambda.

The request matches no rule (the worst case: every candidate rule is evaluated). Under
pytest (``make test``: benchmarking disabled, each body runs once) the tests assert that
the ruleset and the hand-written loop decide identically for several requests. Timings:
``make bench`` (pytest-benchmark) or ``.venv/bin/python bench/bench_ruleset.py`` for the
table in docs/rulesets.md.
"""

from __future__ import annotations

import functools
import ipaddress
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from edgerules.rulesets import Ruleset
from edgerules.rulesets.actions import Limits

SIZES = (10, 100, 1000, 10_000)
Pred = Callable[[dict[str, Any]], bool]


def _net(i: int) -> tuple[str, int, int]:
    net = ipaddress.ip_network(f"10.{i % 256}.{(i // 256) % 256}.0/24")
    return str(net), int(net.network_address), int(net.broadcast_address)


def _rule_guarded(i: int) -> tuple[str, Pred]:
    k = i % 4
    if k == 0:
        host = f"h{i}.example.com"
        hb = host.encode()
        return (f'http.host eq "{host}" and not cf.tls_client_auth.cert_verified',
                lambda r: r["http.host"] == hb and not r["cf.tls_client_auth.cert_verified"])
    if k == 1:
        cidr, lo, hi = _net(i)
        return (f'http.request.method eq "POST" and ip.src in {{{cidr}}}',
                lambda r: r["http.request.method"] == b"POST"
                and r["ip.src"].version == 4 and lo <= int(r["ip.src"]) <= hi)
    if k == 2:
        prefix = f"/p{i}/"
        pb = prefix.encode()
        return (f'not cf.tls_client_auth.cert_presented and '
                f'starts_with(http.request.uri.path, "{prefix}")',
                lambda r: not r["cf.tls_client_auth.cert_presented"]
                and r["http.request.uri.path"].startswith(pb))
    path, serial = f"/x{i}", f"{i:040X}"
    xb, sb = path.encode(), serial.encode()
    return (f'http.request.uri.path eq "{path}" or cf.tls_client_auth.cert_serial eq "{serial}"',
            lambda r: r["http.request.uri.path"] == xb or r["cf.tls_client_auth.cert_serial"] == sb)


def _rule_unguarded(i: int) -> tuple[str, Pred]:
    k = i % 4
    if k == 0:
        pb = f"/p{i}/".encode()
        return (f'starts_with(http.request.uri.path, "/p{i}/")',
                lambda r: r["http.request.uri.path"].startswith(pb))
    if k == 1:
        ub = f"bot{i}".encode()
        return (f'http.user_agent contains "bot{i}"', lambda r: ub in r["http.user_agent"])
    if k == 2:
        sb = f".h{i}.example.com".encode()
        return (f'ends_with(http.host, ".h{i}.example.com")',
                lambda r: r["http.host"].endswith(sb))
    cidr, lo, hi = _net(i)
    qb = f"id={i}".encode()
    return (f'ip.src in {{{cidr}}} or http.request.uri.query contains "id={i}"',
            lambda r: (r["ip.src"].version == 4 and lo <= int(r["ip.src"]) <= hi)
            or qb in r["http.request.uri.query"])


MIXES = {"guarded": _rule_guarded, "unguarded": _rule_unguarded}

REQUEST: dict[str, object] = {
    "http.host": "www.example.com",
    "ip.src": "192.0.2.1",
    "http.request.method": "GET",
    "http.request.uri.path": "/index.html",
    "http.request.uri.query": "q=1",
    "http.user_agent": "Mozilla/5.0",
    "cf.tls_client_auth.cert_verified": True,
    "cf.tls_client_auth.cert_presented": True,
    "cf.tls_client_auth.cert_serial": "AB",
}


@functools.cache
def build(mix: str, n: int) -> tuple[Ruleset, tuple[Pred, ...], float]:
    """The ruleset (compiled once per process), the hand-written predicates, and the
    compile CPU time in seconds."""
    make = MIXES[mix]
    pairs = [make(i) for i in range(n)]
    obj = {"name": f"{mix}-{n}", "rules": [
        {"ref": f"r{i}", "expression": text, "action": "block"} for i, (text, _) in enumerate(pairs)
    ]}
    t0 = time.process_time()  # CPU time: other processes on a shared machine add none
    rs = Ruleset.from_dict(obj, limits=Limits.unlimited())
    elapsed = time.process_time() - t0
    return rs, tuple(p for _, p in pairs), elapsed


def hand_request(fields: dict[str, object]) -> dict[str, Any]:
    """The request in the runtime representation a hand-written filter would use."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "ip.src":
            out[key] = ipaddress.ip_address(str(value))
        elif isinstance(value, str):
            out[key] = value.encode()
        else:
            out[key] = value
    return out


def hand_loop(preds: tuple[Pred, ...], request: dict[str, Any]) -> int | None:
    """The baseline: first matching predicate wins (every rule is a block)."""
    for i, pred in enumerate(preds):
        if pred(request):
            return i
    return None


def ruleset_decides(rs: Ruleset, request: dict[str, object]) -> int | None:
    d = rs.evaluate(request)
    return None if d.rule is None else d.rule.index


def _requests(n: int) -> list[dict[str, object]]:
    """No match, and requests matching rules of every template near the end."""
    out = [dict(REQUEST)]
    last = n - 1
    for i in range(max(0, last - 7), n):
        req = dict(REQUEST)
        req.update({
            "http.host": f"h{i}.example.com",
            "cf.tls_client_auth.cert_verified": i % 3 == 0,
            "cf.tls_client_auth.cert_presented": i % 2 == 0,
            "http.request.method": "POST" if i % 5 else "GET",
            "ip.src": f"10.{i % 256}.{(i // 256) % 256}.7",
            "http.request.uri.path": f"/p{i}/x" if i % 2 else f"/x{i}",
            "http.user_agent": f"bot{i}",
            "http.request.uri.query": f"id={i}",
        })
        out.append(req)
    return out


PYTEST_SIZES = [(m, n) for m in MIXES for n in SIZES if not (m == "unguarded" and n > 1000)]


@pytest.mark.parametrize("mix,n", PYTEST_SIZES)
def test_same_decisions(mix: str, n: int) -> None:
    rs, preds, _ = build(mix, n)
    for req in _requests(n):
        assert ruleset_decides(rs, req) == hand_loop(preds, hand_request(req)), req


@pytest.mark.parametrize("mix,n", PYTEST_SIZES)
def test_bench_ruleset(benchmark: Any, mix: str, n: int) -> None:
    rs, _, _ = build(mix, n)
    ctx = rs.context(REQUEST)
    benchmark.group = f"ruleset-{mix}-{n}"
    decision = benchmark(rs.evaluate, ctx)
    assert decision.outcome == "allow"


@pytest.mark.parametrize("mix,n", PYTEST_SIZES)
def test_bench_hand_loop(benchmark: Any, mix: str, n: int) -> None:
    _, preds, _ = build(mix, n)
    req = hand_request(REQUEST)
    benchmark.group = f"ruleset-{mix}-{n}"
    assert benchmark(hand_loop, preds, req) is None


def _best(*fns: Callable[[], object], budget: float = 0.2, rounds: int = 9) -> list[float]:
    """Best per-call time in seconds of each function, measured in interleaved batches
    (so that load from other processes hits all of them alike)."""
    numbers = []
    for fn in fns:
        t0 = time.perf_counter()
        fn()
        once = max(time.perf_counter() - t0, 1e-7)
        numbers.append(max(1, int(budget / rounds / once)))
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for k, (fn, number) in enumerate(zip(fns, numbers, strict=True)):
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            best[k] = min(best[k], (time.perf_counter() - t0) / number)
    return best


def main() -> int:
    print(f"{'mix':<10} {'rules':>6} {'compile s':>9} {'ctx+eval µs':>11} {'eval µs':>9} "
          f"{'hand µs':>9} {'eval/hand':>9} {'µs/rule':>8}")
    for mix in MIXES:
        for n in SIZES:
            rs, preds, compile_s = build(mix, n)
            for req in _requests(n):
                assert ruleset_decides(rs, req) == hand_loop(preds, hand_request(req))
            ctx = rs.context(REQUEST)
            hreq = hand_request(REQUEST)
            t_full, t_eval, t_hand = _best(
                lambda rs=rs: rs.evaluate(REQUEST),
                lambda rs=rs, ctx=ctx: rs.evaluate(ctx),
                lambda preds=preds, hreq=hreq: hand_loop(preds, hreq),
            )
            print(f"{mix:<10} {n:>6} {compile_s:>9.2f} {t_full * 1e6:>11.1f} {t_eval * 1e6:>9.1f} "
                  f"{t_hand * 1e6:>9.1f} {t_eval / t_hand:>9.2f} {t_eval / n * 1e6:>8.3f}")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
