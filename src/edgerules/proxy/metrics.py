"""The proxy's Prometheus metrics: counted on the request path, exported at scrape time.

Owns: ``ProxyMetrics``, the ``ProxyObserver`` (``proxy.observer``) that counts what the
server reports, and its rendering in the Prometheus text format through
``prometheus_client`` (a custom collector on a private registry: nothing is registered
globally). Metric names and labels are listed in docs/operations.md.

Invariants:

* Cheap on the request path: an observed request costs a few dictionary look-ups and
  integer increments, and one ``bisect`` into a bucket list. No object is created per
  request except the numbers themselves, no lock is taken (the server and the admin
  endpoint run on one event loop; ``prometheus_client``'s own metric objects would take
  a lock per update), and prometheus_client is only used when ``/metrics`` is scraped.
  ``bench/bench_ops.py`` measures it.
* Bounded label cardinality, whatever clients send: ``rule`` takes only the refs of the
  rulesets this process loaded (at most ``MAX_RULE_LABELS``; a ref not among them is
  ``other``, a request no rule decided is ``none``); ``outcome`` only ``OUTCOMES``;
  ``reason`` only the validator's failure texts (``tls.verify.Reason``) or ``other``.
  Nothing derived from a request (host, path, SNI, certificate) becomes a label.
* Never raises into the server: a record without the expected keys is counted as
  ``other``.
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest

from edgerules.proxy.certstate import TIMED_OUT
from edgerules.tls.verify import Reason

__all__ = ["CONTENT_TYPE", "OUTCOMES", "ProxyMetrics"]

# The classic text format (0.0.4), which every Prometheus version reads; newer
# prometheus_client releases call their default "1.0.0" and emit the same text for
# names like ours (plain ASCII).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OUTCOMES = ("allow", "block", "challenge", "error")
MAX_RULE_LABELS = 1000  # distinct rule refs exported; beyond, "other"
# Latency buckets in seconds (upper bounds; +Inf is implied).
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)
_REASONS = frozenset(
    value for name, value in vars(Reason).items() if not name.startswith("_") and isinstance(value, str)
) | {TIMED_OUT}


class _Histogram:
    """Bucket counts over fixed upper bounds, kept in milliseconds (the access log's
    unit: no division per request). Not thread-safe: one event loop updates it."""

    __slots__ = ("bounds_ms", "counts", "sum_ms", "total")

    def __init__(self, bounds_s: Iterable[float]) -> None:
        self.bounds_ms = [b * 1000.0 for b in bounds_s]
        self.counts = [0] * (len(self.bounds_ms) + 1)  # the last one is +Inf
        self.total = 0
        self.sum_ms = 0.0

    def observe_ms(self, value_ms: float) -> None:
        self.counts[bisect.bisect_left(self.bounds_ms, value_ms)] += 1
        self.total += 1
        self.sum_ms += value_ms

    def family(self, name: str, doc: str) -> HistogramMetricFamily:
        buckets = []
        running = 0
        for bound, count in zip(self.bounds_ms, self.counts, strict=False):
            running += count
            buckets.append((_fmt(bound / 1000.0), running))
        buckets.append(("+Inf", self.total))
        return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=self.sum_ms / 1000.0)


def _fmt(bound: float) -> str:
    return repr(float(bound))


class ProxyMetrics:
    """Counts handshakes, validations and requests (``ProxyObserver``) and renders every
    proxy metric in the Prometheus text format.

    Values that already exist elsewhere are read when scraped, through ``sources`` (each
    a callable returning a number or a mapping; a source that raises is skipped):
    ``server_stats`` (connections, rejected, tls_failures, requests, open_connections),
    ``access_log_dropped``, ``diagnostics_dropped``, ``store`` (a ``StoreStatus``) and
    ``rules`` (``reload.RulesState``).
    """

    def __init__(self, *, rule_refs: Iterable[str] = ()) -> None:
        self._rule_label: dict[str | None, str] = {None: "none"}
        self.add_rule_refs(rule_refs)
        # outcome -> rule label -> count; the inner dicts only hold bounded labels.
        self._requests: dict[str, dict[str, int]] = {o: {} for o in (*OUTCOMES, "other")}
        self._request_latency = _Histogram(LATENCY_BUCKETS)
        self._handshake_latency = _Histogram(LATENCY_BUCKETS)
        self._validations: dict[tuple[str, str], int] = {}
        self._validators: weakref.WeakSet[Any] = weakref.WeakSet()
        self._retired_cache = [0, 0]  # hits, misses of validators gone since
        self.sources: dict[str, Callable[[], Any]] = {}
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self)  # type: ignore[arg-type]

    # -- labels ----------------------------------------------------------------------
    def add_rule_refs(self, refs: Iterable[str]) -> None:
        """Allow these rule refs as ``rule`` labels (the refs of a loaded ruleset); refs
        stay allowed after a reload (their counters keep their series)."""
        labels = self._rule_label
        for ref in refs:
            if ref and ref not in labels and len(labels) <= MAX_RULE_LABELS:
                labels[ref] = ref

    # -- ProxyObserver: called by the server on its event loop -------------------------
    def handshake(self, seconds: float) -> None:
        self._handshake_latency.observe_ms(seconds * 1000.0)

    def validated(self, validator: Any, client_auth: Any) -> None:
        try:
            if not getattr(client_auth, "presented", False):
                key = ("absent", "")
            elif getattr(client_auth, "verified", False):
                key = ("revoked", "") if getattr(client_auth, "revoked", False) else ("verified", "")
            else:
                reason = getattr(client_auth, "failure_reason", "")
                key = ("failed", reason if reason in _REASONS else "other")
            self._validations[key] = self._validations.get(key, 0) + 1
            if validator is not None and validator not in self._validators:
                self._track_validator(validator)
        except Exception:  # an observer never raises into the server
            pass

    def request(self, record: dict[str, Any]) -> None:
        try:  # free in CPython 3.11 unless something raises
            by_rule = self._requests.get(record.get("decision"))  # type: ignore[arg-type]
            if by_rule is None:
                by_rule = self._requests["other"]
            rule = self._rule_label.get(record.get("rule"), "other")
        except TypeError:  # an unhashable value: not one of ours
            by_rule, rule = self._requests["other"], "other"
        by_rule[rule] = by_rule.get(rule, 0) + 1
        duration = record.get("duration_ms")
        if duration.__class__ is float or duration.__class__ is int:
            self._request_latency.observe_ms(duration)  # type: ignore[arg-type]

    # -- validator result caches ---------------------------------------------------------
    def _track_validator(self, validator: Any) -> None:
        cache = getattr(validator, "cache", None)
        if cache is None or not hasattr(cache, "hits"):
            return
        self._validators.add(validator)
        # When the validator goes (the store's trust changed), keep its counts: counters
        # never go down.
        weakref.finalize(validator, self._retire, cache)

    def _retire(self, cache: Any) -> None:
        self._retired_cache[0] += int(cache.hits)
        self._retired_cache[1] += int(cache.misses)

    def cache_counts(self) -> tuple[int, int]:
        hits, misses = self._retired_cache
        for validator in list(self._validators):
            hits += int(validator.cache.hits)
            misses += int(validator.cache.misses)
        return hits, misses

    # -- exposition -------------------------------------------------------------------
    def render(self) -> bytes:
        """Every metric in the Prometheus text format (version 0.0.4)."""
        return generate_latest(self._registry)

    def _source(self, name: str) -> Any:
        fn = self.sources.get(name)
        if fn is None:
            return None
        try:
            return fn()
        except Exception:
            return None

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "edgerules_requests",
            "Requests answered, by decision outcome and deciding rule (ref; 'none': no "
            "rule decided; 'other': a ref outside the loaded rulesets)",
            labels=["outcome", "rule"],
        )
        for outcome, by_rule in self._requests.items():
            for rule, count in by_rule.items():
                requests.add_metric([outcome, rule], count)
        yield requests
        yield self._request_latency.family(
            "edgerules_request_duration_seconds",
            "Time from a request head to its last response byte (the access log's duration)",
        )
        yield self._handshake_latency.family(
            "edgerules_tls_handshake_duration_seconds",
            "Time from an accepted connection to its completed TLS handshake",
        )
        validations = CounterMetricFamily(
            "edgerules_client_cert_validations",
            "Client-certificate validations by result (verified, revoked, absent, failed) "
            "and failure reason (the validator's OpenSSL-style text)",
            labels=["result", "reason"],
        )
        for (result, reason), count in self._validations.items():
            validations.add_metric([result, reason], count)
        yield validations
        hits, misses = self.cache_counts()
        yield CounterMetricFamily(
            "edgerules_validator_cache_hits", "Validation results served from a validator's cache",
            value=hits,
        )
        yield CounterMetricFamily(
            "edgerules_validator_cache_misses", "Validations that had to verify the chain",
            value=misses,
        )
        yield GaugeMetricFamily(
            "edgerules_validator_cache_hit_ratio",
            "hits / (hits + misses) since start (0 before any validation)",
            value=hits / (hits + misses) if hits + misses else 0.0,
        )
        yield from self._server_families()
        yield from self._store_families()
        yield from self._rules_families()

    def _server_families(self) -> Iterator[Metric]:
        stats = self._source("server_stats") or {}
        for key, name, doc in (
            ("connections", "edgerules_connections", "Client connections accepted"),
            ("rejected", "edgerules_connections_rejected", "Connections closed at accept (limit)"),
            ("evicted", "edgerules_connections_evicted",
             "Connections not in a request closed to make room for a new one"),
            ("overflow_503", "edgerules_connections_overflow",
             "Connections answered 503 because every slot was in a request"),
            ("tls_failures", "edgerules_tls_handshake_failures", "Handshakes that failed"),
            ("reverified", "edgerules_client_cert_reverifications",
             "Connection verdicts recomputed because the trust or revocation state moved"),
            ("validation_timeouts", "edgerules_client_cert_validation_timeouts",
             "Validations that exceeded the connection's time budget"),
            ("store_read_errors", "edgerules_store_read_errors",
             "Failed reads of the store's trust and revocation state"),
        ):
            if key in stats:
                yield CounterMetricFamily(name, doc, value=stats[key])
        if "open_connections" in stats:
            yield GaugeMetricFamily(
                "edgerules_open_connections", "Client connections open now",
                value=stats["open_connections"],
            )
        dropped = CounterMetricFamily(
            "edgerules_log_lines_dropped",
            "Log lines dropped because their queue was full (a stalled log reader)",
            labels=["log"],
        )
        for log_name in ("access_log", "diagnostics"):
            value = self._source(f"{log_name}_dropped")
            if value is not None:
                dropped.add_metric([log_name.removesuffix("_log")], value)
        yield dropped

    def _store_families(self) -> Iterator[Metric]:
        status = self._source("store")
        if status is None:
            return
        yield GaugeMetricFamily(
            "edgerules_store_reachable", "1 when the last store probe succeeded",
            value=1 if status.reachable else 0,
        )
        if status.versions is not None:
            version = GaugeMetricFamily(
                "edgerules_store_state_version",
                "The store's change counters as last read (trust: CAs and hostnames; "
                "revocation: revocations and restores)",
                labels=["counter"],
            )
            for name, value in status.versions.items():
                version.add_metric([name], value)
            yield version
        if status.last_sync_age is not None:
            yield GaugeMetricFamily(
                "edgerules_store_last_sync_age_seconds",
                "Seconds since the store state was last read successfully",
                value=status.last_sync_age,
            )

    def _rules_families(self) -> Iterator[Metric]:
        state = self._source("rules")
        if state is None:
            return
        info = GaugeMetricFamily(
            "edgerules_ruleset_info",
            "The ruleset in force: version (content hash) and generation (loads so far)",
            labels=["version", "generation"],
        )
        info.add_metric([state.version or "none", str(state.generation)], 1)
        yield info
        reloads = CounterMetricFamily(
            "edgerules_ruleset_reloads", "Ruleset reloads by result (ok, rejected)",
            labels=["result"],
        )
        reloads.add_metric(["ok"], state.reloads_ok)
        reloads.add_metric(["rejected"], state.reloads_rejected)
        yield reloads
        if state.loaded_at is not None:
            yield GaugeMetricFamily(
                "edgerules_ruleset_loaded_timestamp_seconds",
                "Unix time the ruleset in force was loaded",
                value=state.loaded_at,
            )
