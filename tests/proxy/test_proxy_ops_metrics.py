"""ProxyMetrics on its own: bounded labels whatever the records say, counters that never
go down, a valid exposition (parsed back with prometheus_client's parser)."""

from __future__ import annotations

import gc
from types import SimpleNamespace

from ops_helpers import parse_metrics, value

from edgerules.proxy.metrics import MAX_RULE_LABELS, ProxyMetrics
from edgerules.proxy.readiness import StoreStatus
from edgerules.proxy.reload import RulesState


def record(decision="allow", rule=None, duration_ms=1.0):
    return {"decision": decision, "rule": rule, "duration_ms": duration_ms}


def auth(presented=True, verified=True, revoked=False, reason=""):
    return SimpleNamespace(presented=presented, verified=verified, revoked=revoked,
                           failure_reason=reason)


def test_a_flood_of_distinct_rule_refs_does_not_grow_the_series() -> None:
    metrics = ProxyMetrics(rule_refs={"known_a", "known_b"})
    for i in range(10_000):
        metrics.request(record("block", f"attacker-{i}"))
        metrics.request(record(f"outcome-{i}", "known_a"))
    metrics.request(record("block", "known_b"))
    series = parse_metrics(metrics.render())["edgerules_requests_total"]
    assert series == {
        (("outcome", "block"), ("rule", "other")): 10_000,
        (("outcome", "other"), ("rule", "known_a")): 10_000,
        (("outcome", "block"), ("rule", "known_b")): 1,
    }


def test_rule_labels_are_capped_even_for_loaded_rulesets() -> None:
    metrics = ProxyMetrics(rule_refs=(f"r{i}" for i in range(3 * MAX_RULE_LABELS)))
    for i in range(3 * MAX_RULE_LABELS):
        metrics.request(record("block", f"r{i}"))
    series = parse_metrics(metrics.render())["edgerules_requests_total"]
    assert len(series) <= MAX_RULE_LABELS + 1
    assert sum(series.values()) == 3 * MAX_RULE_LABELS  # nothing lost, only lumped


def test_refs_of_a_reloaded_ruleset_are_added_and_old_ones_kept() -> None:
    metrics = ProxyMetrics(rule_refs={"old"})
    metrics.request(record("block", "new"))
    metrics.add_rule_refs({"new"})
    metrics.request(record("block", "new"))
    metrics.request(record("block", "old"))
    series = parse_metrics(metrics.render())["edgerules_requests_total"]
    assert series[(("outcome", "block"), ("rule", "other"))] == 1
    assert series[(("outcome", "block"), ("rule", "new"))] == 1
    assert series[(("outcome", "block"), ("rule", "old"))] == 1


def test_failure_reasons_are_the_validators_texts_or_other() -> None:
    metrics = ProxyMetrics()
    metrics.validated(None, auth(verified=False, reason="certificate has expired"))
    for i in range(500):
        metrics.validated(None, auth(verified=False, reason=f"made up {i}"))
    metrics.validated(None, auth(revoked=True))
    metrics.validated(None, auth(presented=False, verified=False))
    metrics.validated(None, object())  # nothing to read: absent, never an exception
    m = parse_metrics(metrics.render())
    v = "edgerules_client_cert_validations_total"
    assert len(m[v]) == 4
    assert value(m, v, result="failed", reason="certificate has expired") == 1
    assert value(m, v, result="failed", reason="other") == 500
    assert value(m, v, result="revoked", reason="") == 1
    assert value(m, v, result="absent", reason="") == 2


def test_a_record_without_the_usual_keys_is_counted_not_raised() -> None:
    metrics = ProxyMetrics()
    metrics.request({})
    metrics.request({"decision": ["unhashable"], "rule": {"x": 1}, "duration_ms": "slow"})
    m = parse_metrics(metrics.render())
    # the unhashable values are lumped into other/other
    assert sum(m["edgerules_requests_total"].values()) >= 1
    assert value(m, "edgerules_request_duration_seconds_count") == 0


def test_latency_histogram_buckets_are_cumulative_in_seconds() -> None:
    metrics = ProxyMetrics()
    for ms in (0.1, 3.0, 3.0, 40.0, 100_000.0):
        metrics.request(record(duration_ms=ms))
    m = parse_metrics(metrics.render())
    b = "edgerules_request_duration_seconds_bucket"
    assert value(m, b, le="0.0005") == 1
    assert value(m, b, le="0.005") == 3
    assert value(m, b, le="0.05") == 4
    assert value(m, b, le="30.0") == 4
    assert value(m, b, le="+Inf") == 5
    assert abs(value(m, "edgerules_request_duration_seconds_sum") - 100.0461) < 1e-9


class Cache:
    def __init__(self, hits, misses):
        self.hits, self.misses = hits, misses


class Validator:
    def __init__(self, hits, misses):
        self.cache = Cache(hits, misses)


def test_cache_counters_never_go_down_when_a_validator_is_replaced() -> None:
    metrics = ProxyMetrics()
    first = Validator(5, 5)
    metrics.validated(first, auth())
    assert metrics.cache_counts() == (5, 5)
    del first  # the store's trust changed: a new validator replaces it
    gc.collect()
    second = Validator(1, 3)
    metrics.validated(second, auth())
    assert metrics.cache_counts() == (6, 8)
    m = parse_metrics(metrics.render())
    assert value(m, "edgerules_validator_cache_hit_ratio") == 6 / 14


def test_sources_are_read_at_scrape_time_and_a_failing_one_is_skipped() -> None:
    metrics = ProxyMetrics()
    metrics.sources.update(
        {
            "server_stats": lambda: {"connections": 3, "rejected": 1, "tls_failures": 2,
                                     "open_connections": 1},
            "access_log_dropped": lambda: 7,
            "diagnostics_dropped": lambda: 1 / 0,
            "store": lambda: StoreStatus(True, True, {"trust": 4, "revocation": 9}, 0.25, None),
            "rules": lambda: RulesState(version="abc", generation=3, loaded_at=1.0,
                                        reloads_ok=2, reloads_rejected=5),
        }
    )
    m = parse_metrics(metrics.render())
    assert value(m, "edgerules_connections_total") == 3
    assert value(m, "edgerules_connections_rejected_total") == 1
    assert value(m, "edgerules_tls_handshake_failures_total") == 2
    assert value(m, "edgerules_open_connections") == 1
    assert value(m, "edgerules_log_lines_dropped_total", log="access") == 7
    assert (("log", "diagnostics"),) not in m["edgerules_log_lines_dropped_total"]
    assert value(m, "edgerules_store_state_version", counter="revocation") == 9
    assert value(m, "edgerules_store_last_sync_age_seconds") == 0.25
    assert value(m, "edgerules_store_reachable") == 1
    assert value(m, "edgerules_ruleset_info", version="abc", generation="3") == 1
    assert value(m, "edgerules_ruleset_reloads_total", result="rejected") == 5
