"""What metrics cost the proxy per request (issue 13 item 5), group ``ops``.

Per request the server calls ``observer.request(record)`` once (``proxy.observer``);
with ``--admin-listen`` the observer is ``ProxyMetrics``. Compared in one run, in CPU
time per request (``time.process_time``), interleaved rounds, best of each:

* ``null``: ``NullObserver.request`` (no ``--admin-listen``): the floor, a method call.
* ``ours``: ``ProxyMetrics.request``: requests by outcome and rule + the latency
  histogram, plain counters (``proxy.metrics``).
* ``prometheus_client``: the best alternative, the same two updates through
  prometheus_client's own objects (``Counter.labels(...).inc()`` +
  ``Histogram.observe()``), which take a lock and build a label tuple per update.

Plus one per connection: ``handshake`` (histogram) + ``validated`` (counter, cache
tracking) for ours. Run:

    .venv/bin/python bench/bench_ops.py
    .venv/bin/python -m pytest bench/bench_ops.py -p no:cacheprovider --benchmark-enable

Targets are reported, never asserted (timing must not decide whether tests pass).
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from edgerules.proxy.metrics import LATENCY_BUCKETS, ProxyMetrics
from edgerules.proxy.observer import NullObserver

# A record as the server builds it (the keys the metrics read, and the others).
RECORD = {
    "client": "127.0.0.1", "conn": 7, "sni": "api.example.com", "host": "api.example.com",
    "method": "GET", "path": "/v1/items", "decision": "block", "rule": "mtls_enforce",
    "cert_presented": True, "cert_verified": True, "cert_revoked": False,
    "cert_serial": "40A68CDB7DEE8128E44849E1D8ADFA458032DEF4", "cert_status": "SUCCESS",
    "status": 403, "bytes": 123, "duration_ms": 1.234, "tls_version": "TLSv1.3",
    "ruleset": "0123456789abcdef",
}
AUTH = SimpleNamespace(presented=True, verified=True, revoked=False, failure_reason="")


class _Validator:
    cache = SimpleNamespace(hits=0, misses=0)


VALIDATOR = _Validator()

NULL = NullObserver()
OURS = ProxyMetrics(rule_refs={"mtls_enforce"})
_REG = CollectorRegistry()
PC_REQUESTS = Counter("r", "r", ["outcome", "rule"], registry=_REG)
PC_LATENCY = Histogram("d", "d", buckets=LATENCY_BUCKETS, registry=_REG)


def null_request() -> None:
    NULL.request(RECORD)


def ours_request() -> None:
    OURS.request(RECORD)


def pc_request() -> None:
    # What a prometheus_client-native observer would do with the same record.
    record = RECORD
    PC_REQUESTS.labels(record["decision"], record["rule"]).inc()
    PC_LATENCY.observe(record["duration_ms"] / 1000.0)


def ours_connection() -> None:
    OURS.handshake(0.0021)
    OURS.validated(VALIDATOR, AUTH)


def _cpu_per_call(fn, number: int) -> float:
    start = time.process_time()
    for _ in range(number):
        fn()
    return (time.process_time() - start) / number


def measure(rounds: int = 9, number: int = 200_000) -> dict[str, float]:
    """Best-of-``rounds`` CPU seconds per call, rounds interleaved across the paths."""
    plan = {
        "null": null_request,
        "ours": ours_request,
        "prometheus_client": pc_request,
        "ours per connection": ours_connection,
    }
    best = dict.fromkeys(plan, float("inf"))
    for _ in range(rounds):
        for name, fn in plan.items():
            best[name] = min(best[name], _cpu_per_call(fn, number))
    return best


@pytest.mark.benchmark(group="ops")
def test_bench_null_observer(benchmark) -> None:
    benchmark(null_request)


@pytest.mark.benchmark(group="ops")
def test_bench_proxy_metrics_request(benchmark) -> None:
    before = OURS._requests["block"].get("mtls_enforce", 0)
    benchmark(ours_request)
    assert OURS._requests["block"]["mtls_enforce"] > before


@pytest.mark.benchmark(group="ops")
def test_bench_prometheus_client_request(benchmark) -> None:
    benchmark(pc_request)
    assert PC_REQUESTS.labels("block", "mtls_enforce")._value.get() >= 1


@pytest.mark.benchmark(group="ops")
def test_bench_proxy_metrics_connection(benchmark) -> None:
    benchmark(ours_connection)


if __name__ == "__main__":
    t = measure()
    print(f"CPU time per call, best of 9 interleaved rounds of 200,000 (Python {__import__('sys').version.split()[0]})")
    for name, seconds in t.items():
        ratio = "" if name == "ours per connection" else f"  {seconds / t['ours']:.2f} x ours"
        print(f"  {name:<22} {seconds * 1e9:8.0f} ns{ratio}")
    print(f"  metrics cost per request (ours - null): {(t['ours'] - t['null']) * 1e9:.0f} ns")
