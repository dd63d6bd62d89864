"""Engine benchmarks: ``Filter.execute`` (prebuilt Context), ``Filter.matches(dict)`` and a
hand-written Python function computing the same thing on the same dict, per workload,
in the same run; plus parse+compile time per rule.

Each workload is one pytest-benchmark group holding three benchmarks (``execute``,
``matches``, ``hand``); ``compile`` benchmarks live in the group ``compile``.
``bench/report.py`` runs this file with benchmarking enabled and prints the ratio table.

Under ``make test`` (``--benchmark-disable``) every benchmark body runs once, so every
test also ASSERTS that the filter agrees with the hand-written function on several
requests (matching and not matching).

Fairness notes: the dicts hold what a caller would hold (``str`` strings, ``ipaddress``
objects, lists); the hand-written functions precompute their data once at import (sets,
networks, compiled ``re`` patterns) as a competent programmer would. For 500 CIDRs the
hand-written function uses sorted integer ranges and ``bisect`` (the idiomatic
``any(ip in net for net in nets)`` would be ~100× slower and make the ratio meaningless).
"""

from __future__ import annotations

import ipaddress
import random
import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from edgerules.lang import ast
from edgerules.lang.checker import check
from edgerules.lang.compiler import compile_checked
from edgerules.lang.engine import Filter, _compile, parse
from edgerules.lang.engine import compile as compile_filter
from edgerules.lang.scheme import default_scheme
from edgerules.lang.source import Source

SCHEME = default_scheme()
_rng = random.Random(1234)  # seeded: the workloads are the same on every run


@dataclass(frozen=True)
class Workload:
    name: str
    expr: str
    hand: Callable[[dict[str, Any]], bool]
    requests: tuple[dict[str, Any], ...]  # requests[0] is the one timed
    tree: ast.Expr | None = None  # for expressions over the 4,096-character limit


W: list[Workload] = []


def workload(
    name: str, expr: str, *requests: dict[str, Any], tree: ast.Expr | None = None
) -> Callable[[Any], Any]:
    def register(hand: Callable[[dict[str, Any]], bool]) -> Callable[[dict[str, Any]], bool]:
        W.append(Workload(name, expr, hand, requests, tree))
        return hand

    return register


def make_filter(w: Workload) -> Filter:
    """Compile a workload. The 500-CIDR and 1,000-string sets exceed the language's
    4,096-character limit (spec §1), so those are built from a hand-made AST and go
    through the same checker and compiler (Cloudflare users would put such sets in a
    named list; the inline form measures the compiler's set handling)."""
    if w.tree is None:
        return compile_filter(w.expr)
    checked = check(w.tree, SCHEME, Source(w.expr))
    return Filter(checked, compile_checked(checked))


# 1. a bare Boolean field
@workload("bool_field", "ssl", {"ssl": True}, {"ssl": False}, {})
def hand_bool(d: dict[str, Any]) -> bool:
    return d.get("ssl", False)


# 2. host equality + not verified
@workload(
    "host_not_verified",
    'http.host eq "api.example.com" and not cf.tls_client_auth.cert_verified',
    {"http.host": "api.example.com", "cf.tls_client_auth.cert_verified": False},
    {"http.host": "api.example.com", "cf.tls_client_auth.cert_verified": True},
    {"http.host": "www.example.com"},
)
def hand_host(d: dict[str, Any]) -> bool:
    return d.get("http.host", "") == "api.example.com" and not d.get(
        "cf.tls_client_auth.cert_verified", False
    )


# 3. an IP in 2 CIDRs
_NETS2 = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("192.168.0.0/16"))


@workload(
    "ip_in_2_cidrs",
    "ip.src in {10.0.0.0/8 192.168.0.0/16}",
    {"ip.src": ipaddress.ip_address("192.168.7.9")},
    {"ip.src": ipaddress.ip_address("11.0.0.1")},
    {"ip.src": ipaddress.ip_address("2001:db8::1")},
)
def hand_ip2(d: dict[str, Any]) -> bool:
    ip = d.get("ip.src")
    if ip is None:
        return False
    return any(ip in net for net in _NETS2)


# 4. an IP in 500 CIDRs
_NETS500 = sorted(
    {ipaddress.ip_network(f"{_rng.randrange(1, 224)}.{_rng.randrange(256)}.{_rng.randrange(256)}.0/24") for _ in range(500)}
)
_STARTS = [int(n.network_address) for n in _NETS500]
_ENDS = [int(n.broadcast_address) for n in _NETS500]
_IN500 = ipaddress.ip_address(int(_NETS500[250].network_address) + 77)


@workload(
    "ip_in_500_cidrs",
    "ip.src in {" + " ".join(map(str, _NETS500)) + "}",
    {"ip.src": _IN500},
    {"ip.src": ipaddress.ip_address("255.1.2.3")},
    {"ip.src": ipaddress.ip_address(int(_NETS500[0].network_address))},
    tree=ast.Comparison(
        ast.FieldRef("ip.src"), "in", ast.SetLiteral(tuple(ast.CidrItem(n) for n in _NETS500))
    ),
)
def hand_ip500(d: dict[str, Any]) -> bool:
    ip = d.get("ip.src")
    if ip is None or ip.version != 4:
        return False
    k = int(ip)
    j = bisect_right(_STARTS, k) - 1
    return j >= 0 and k <= _ENDS[j]


# 5. lower() + contains
_UA = "Mozilla/5.0 (compatible; ExampleBot/2.1; +http://www.example.com/bot.html)"


@workload(
    "lower_contains",
    'lower(http.user_agent) contains "examplebot"',
    {"http.user_agent": _UA},
    {"http.user_agent": "curl/8.0"},
    {},
)
def hand_lower(d: dict[str, Any]) -> bool:
    return "examplebot" in d.get("http.user_agent", "").lower()


# 6. a regex
_RX = re.compile(r"^/api/v[0-9]+/users/[0-9]+$")


@workload(
    "regex",
    r'http.request.uri.path matches "^/api/v[0-9]+/users/[0-9]+$"',
    {"http.request.uri.path": "/api/v2/users/12345"},
    {"http.request.uri.path": "/api/v2/users/abc"},
    {},
)
def hand_regex(d: dict[str, Any]) -> bool:
    return _RX.search(d.get("http.request.uri.path", "")) is not None


# 7. a 1,000-string `in` set
_HOSTS = [f"host{i}.example.com" for i in range(1000)]
_HOST_SET = frozenset(_HOSTS)


@workload(
    "in_1000_strings",
    "http.host in {" + " ".join(f'"{h}"' for h in _HOSTS) + "}",
    {"http.host": "host777.example.com"},
    {"http.host": "nothost.example.com"},
    {},
    tree=ast.Comparison(
        ast.FieldRef("http.host"),
        "in",
        ast.SetLiteral(tuple(ast.Literal("string", h.encode()) for h in _HOSTS)),
    ),
)
def hand_in1000(d: dict[str, Any]) -> bool:
    return d.get("http.host", "") in _HOST_SET


# 8. any() over 20 header values
_VALUES = [f"value-{i}-text/plain" for i in range(19)] + ["<script>evil()</script>"]


@workload(
    "any_20_headers",
    'any(http.request.headers.values[*] contains "<script")',
    {"http.request.headers.values": _VALUES},
    {"http.request.headers.values": _VALUES[:19]},
    {},
)
def hand_any20(d: dict[str, Any]) -> bool:
    for value in d.get("http.request.headers.values", ()):  # noqa: SIM110
        if "<script" in value:
            return True
    return False


# 9. a 12-clause and/or chain
_CHAIN = (
    '(http.request.method eq "POST" and cf.edge.server_port eq 443 and not ssl) '
    'or (http.host eq "a.example.com" and http.request.uri.path eq "/login") '
    'or (http.host eq "b.example.com" and cf.waf.score lt 20) '
    'or (ip.src.country eq "XX" and cf.edge.server_port ne 443) '
    'or http.user_agent eq "" or cf.client.bot or http.request.method eq "TRACE"'
)


@workload(
    "chain_12_clauses",
    _CHAIN,
    {
        "http.request.method": "GET",
        "cf.edge.server_port": 443,
        "ssl": True,
        "http.host": "b.example.com",
        "http.request.uri.path": "/",
        "cf.waf.score": 50,
        "ip.src.country": "GB",
        "http.user_agent": "curl",
        "cf.client.bot": False,
    },
    {"http.user_agent": "x", "cf.client.bot": True},
    {"http.user_agent": "x", "http.host": "b.example.com", "cf.waf.score": 5},
)
def hand_chain(d: dict[str, Any]) -> bool:
    g = d.get
    method = g("http.request.method", "")
    port = g("cf.edge.server_port", 0)
    host = g("http.host", "")
    return (
        (method == "POST" and port == 443 and not g("ssl", False))
        or (host == "a.example.com" and g("http.request.uri.path", "") == "/login")
        or (host == "b.example.com" and g("cf.waf.score", 0) < 20)
        or (g("ip.src.country", "") == "XX" and port != 443)
        or g("http.user_agent", "") == ""
        or g("cf.client.bot", False)
        or method == "TRACE"
    )


# 10. a 5-field WAF rule
_PRIVATE = ipaddress.ip_network("10.0.0.0/8")


@workload(
    "waf_5_fields",
    'http.host eq "shop.example.com" and http.request.method in {"POST" "PUT"} '
    'and starts_with(http.request.uri.path, "/checkout") '
    "and not ip.src in {10.0.0.0/8} and cf.waf.score lt 30",
    {
        "http.host": "shop.example.com",
        "http.request.method": "POST",
        "http.request.uri.path": "/checkout/pay",
        "ip.src": ipaddress.ip_address("203.0.113.9"),
        "cf.waf.score": 12,
    },
    {
        "http.host": "shop.example.com",
        "http.request.method": "POST",
        "http.request.uri.path": "/checkout/pay",
        "ip.src": ipaddress.ip_address("10.0.0.9"),
        "cf.waf.score": 12,
    },
    {"http.host": "shop.example.com", "http.request.method": "GET"},
)
def hand_waf(d: dict[str, Any]) -> bool:
    ip = d.get("ip.src")
    return (
        d.get("http.host", "") == "shop.example.com"
        and d.get("http.request.method", "") in ("POST", "PUT")
        and d.get("http.request.uri.path", "").startswith("/checkout")
        and not (ip is not None and ip.version == 4 and ip in _PRIVATE)
        and d.get("cf.waf.score", 0) < 30
    )


IDS = [w.name for w in W]


def _check_agreement(w: Workload) -> Any:
    f = make_filter(w)
    for request in w.requests:
        expected = w.hand(request)
        assert f.matches(request) is expected, (w.name, request)
        assert f.execute(SCHEME.context(request)) is expected, (w.name, request)
    return f


@pytest.mark.parametrize("w", W, ids=IDS)
def test_execute(benchmark: Any, w: Workload) -> None:
    benchmark.group = w.name
    f = _check_agreement(w)
    ctx = SCHEME.context(w.requests[0])
    assert benchmark(f.execute, ctx) is w.hand(w.requests[0])


@pytest.mark.parametrize("w", W, ids=IDS)
def test_matches(benchmark: Any, w: Workload) -> None:
    benchmark.group = w.name
    f = _check_agreement(w)
    f.matches(w.requests[0])  # build the matches() closures outside the timing
    assert benchmark(f.matches, w.requests[0]) is w.hand(w.requests[0])


@pytest.mark.parametrize("w", W, ids=IDS)
def test_hand(benchmark: Any, w: Workload) -> None:
    benchmark.group = w.name
    _check_agreement(w)
    assert benchmark(w.hand, w.requests[0]) is w.hand(w.requests[0])


# Typical rules for parse+compile time (the big set/CIDR workloads are excluded: their
# compile time is dominated by the literal count, not by the rule's structure).
TYPICAL = [w for w in W if w.tree is None]


@pytest.mark.parametrize("w", TYPICAL, ids=[w.name for w in TYPICAL])
def test_compile(benchmark: Any, w: Workload) -> None:
    benchmark.group = "compile"
    # _compile bypasses compile()'s lru_cache so every round really parses and compiles.
    f = benchmark(_compile, w.expr, SCHEME, None, None)
    assert f.matches(w.requests[0]) is w.hand(w.requests[0])


@pytest.mark.parametrize("w", TYPICAL, ids=[w.name for w in TYPICAL])
def test_check_compile(benchmark: Any, w: Workload) -> None:
    """The engine-back share of compile time: checking and closure compilation of an
    already parsed rule (parsing is Lark's LALR parser)."""
    benchmark.group = "check+compile"
    tree = parse(w.expr)
    source = Source(w.expr)

    def build() -> Filter:
        checked = check(tree, SCHEME, source)
        return Filter(checked, compile_checked(checked))

    f = benchmark(build)
    assert f.matches(w.requests[0]) is w.hand(w.requests[0])
