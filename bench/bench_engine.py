"""Engine benchmarks on realistic requests, each path against the fastest hand-written
Python for the same rule, in the same run.

Per workload (one pytest-benchmark group each):

* ``hand`` — the hand-written function a careful engineer would write for that one rule,
  on the same dict, with its data prepared at import (sets, integer bounds, compiled
  ``re`` patterns) and nothing it does not need (no validation beyond what the rule's
  answer requires);
* ``matches`` — ``Filter.matches(request)``;
* ``context_execute`` — ``Filter.execute(scheme.context(request))``: building the
  Context (which converts and checks every given field) is part of the Context path;
* ``lazy_context_execute`` — ``Filter.execute(scheme.context(request, lazy=True))``: a
  Context that converts only what the filter reads;
* ``execute`` — ``Filter.execute(ctx)`` on a Context built once (every later rule of a
  ruleset pays this);

plus ``compile`` (``engine._compile``: parse + check + compile, bypassing
``compile()``'s cache) per typical rule. ``bench/report.py`` runs this file with CPU-time
timing and prints the ratio table.

The request is what a web framework adapter hands over for a typical request: about 30
fields, ``str`` strings, IP addresses as text, 20 headers as a dict of lowercased names
to lists of values, plus the original-case ``.names``/``.values`` lists (``REQUEST``).
Each workload checks its answer on variants of it (matching, not matching, fields
absent, IPv6): under ``make test`` (``--benchmark-disable``) every benchmark body runs
once, so every test ASSERTS that the filter agrees with the hand-written function on
every variant, through ``matches`` and through a Context.
"""

from __future__ import annotations

import random
import re
import socket
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from edgerules.lang import ast
from edgerules.lang.checker import check
from edgerules.lang.compiler import compile_checked
from edgerules.lang.engine import Filter, _compile
from edgerules.lang.engine import compile as compile_filter
from edgerules.lang.scheme import default_scheme
from edgerules.lang.source import Source

SCHEME = default_scheme()
_rng = random.Random(1234)  # seeded: the workloads are the same on every run

_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
_HEADER_PAIRS = [
    ("Host", "shop.example.com"),
    ("User-Agent", _UA),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("Accept-Language", "en-GB,en;q=0.5"),
    ("Accept-Encoding", "gzip, deflate, br, zstd"),
    ("Referer", "https://shop.example.com/cart"),
    ("Content-Type", "application/x-www-form-urlencoded"),
    ("Content-Length", "57"),
    ("Origin", "https://shop.example.com"),
    ("Connection", "keep-alive"),
    ("Cookie", "session=7f3a9c1e0b; theme=dark; consent=yes"),
    ("Upgrade-Insecure-Requests", "1"),
    ("Sec-Fetch-Dest", "document"),
    ("Sec-Fetch-Mode", "navigate"),
    ("Sec-Fetch-Site", "same-origin"),
    ("Sec-Fetch-User", "?1"),
    ("Priority", "u=0, i"),
    ("X-Env", "prod"),
    ("X-Request-Id", "3b1f6c2e-9d4a-4f7e-8a11-5c0e2d7b9f10"),
    ("X-Forwarded-For", "198.51.100.23"),
]

# A typical request as a framework adapter hands it over (~30 fields).
REQUEST: dict[str, Any] = {
    "http.host": "shop.example.com",
    "http.request.method": "POST",
    "http.request.version": "HTTP/1.1",
    "http.request.uri": "/checkout/pay?step=2&lang=en",
    "http.request.uri.path": "/checkout/pay",
    "http.request.uri.path.extension": "",
    "http.request.uri.query": "step=2&lang=en",
    "http.request.full_uri": "https://shop.example.com/checkout/pay?step=2&lang=en",
    "http.request.uri.args": {"step": ["2"], "lang": ["en"]},
    "http.request.headers": {k.lower(): [v] for k, v in _HEADER_PAIRS},
    "http.request.headers.names": [k for k, _ in _HEADER_PAIRS],
    "http.request.headers.values": [v for _, v in _HEADER_PAIRS],
    "http.request.accepted_languages": ["en-GB", "en"],
    "http.request.cookies": {"session": ["7f3a9c1e0b"], "theme": ["dark"], "consent": ["yes"]},
    "http.cookie": "session=7f3a9c1e0b; theme=dark; consent=yes",
    "http.user_agent": _UA,
    "http.referer": "https://shop.example.com/cart",
    "http.x_forwarded_for": "198.51.100.23",
    "http.request.timestamp.sec": 1_780_000_000,
    "http.request.body.size": 57,
    "http.request.body.mime": "application/x-www-form-urlencoded",
    "ip.src": "203.0.113.9",
    "ip.src.asnum": 64500,
    "ip.src.country": "GB",
    "ip.src.continent": "EU",
    "cf.edge.server_ip": "192.0.2.10",
    "cf.edge.server_port": 443,
    "ssl": True,
    "cf.tls_version": "TLSv1.3",
    "cf.tls_cipher": "AEAD-AES128-GCM-SHA256",
    "cf.tls_client_auth.cert_presented": True,
    "cf.tls_client_auth.cert_verified": False,
    "cf.client.bot": False,
    "cf.waf.score": 50,
    "cf.bot_management.score": 30,
    "cf.ray_id": "8f0c2a6b5e1d4c3a",
}


def variant(**changes: Any) -> dict[str, Any]:
    """``REQUEST`` with fields changed (keyword ``a__b`` is field ``a.b``); a value of
    ``None`` removes the field."""
    out = dict(REQUEST)
    for key, value in changes.items():
        name = key.replace("__", ".")
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


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
        W.append(Workload(name, expr, hand, (REQUEST, *requests), tree))
        return hand

    return register


def make_filter(w: Workload) -> Filter:
    """Compile a workload. The 500-CIDR and 1,000-string sets exceed the language's
    4,096-character limit, so those are built from a hand-made AST and go
    through the same checker and compiler (Cloudflare users would put such sets in a
    named list; the inline form measures the compiler's set handling)."""
    if w.tree is None:
        return compile_filter(w.expr)
    checked = check(w.tree, SCHEME, Source(w.expr))
    return Filter(checked, compile_checked(checked))


_pton = socket.inet_pton
_AF_INET = socket.AF_INET
_from_bytes = int.from_bytes


def _ipv4_int(text: str) -> int:
    """The tuned way to turn IPv4 text into an integer (-1 for anything else: the rules
    below only hold IPv4 networks)."""
    try:
        return _from_bytes(_pton(_AF_INET, text), "big")
    except OSError:
        return -1


# 1. a bare Boolean field
@workload("bool_field", "ssl", variant(ssl=False), variant(ssl=None))
def hand_bool(d: dict[str, Any]) -> bool:
    return d.get("ssl", False)


# 2. host equality + not verified
@workload(
    "host_not_verified",
    'http.host eq "shop.example.com" and not cf.tls_client_auth.cert_verified',
    variant(cf__tls_client_auth__cert_verified=True),
    variant(http__host="www.example.com"),
    variant(cf__tls_client_auth__cert_verified=None),
)
def hand_host(d: dict[str, Any]) -> bool:
    return d.get("http.host") == "shop.example.com" and not d.get(
        "cf.tls_client_auth.cert_verified", False
    )


# 3. an IP in 2 CIDRs
@workload(
    "ip_in_2_cidrs",
    "ip.src in {10.0.0.0/8 203.0.113.0/24}",
    variant(ip__src="11.0.0.1"),
    variant(ip__src="2001:db8::1"),
    variant(ip__src="10.1.2.3"),
)
def hand_ip2(d: dict[str, Any]) -> bool:
    k = _ipv4_int(d.get("ip.src", "0.0.0.0"))
    return 0x0A000000 <= k <= 0x0AFFFFFF or 0xCB007100 <= k <= 0xCB0071FF


# 4. an IP in 500 CIDRs
def _cidr(k: int) -> str:
    return f"{k >> 24}.{(k >> 16) & 255}.{(k >> 8) & 255}.0/24"


_NET_INTS = sorted({(_rng.randrange(1, 224) << 24) | (_rng.randrange(1 << 16) << 8) for _ in range(500)})
_NETS500 = [_cidr(k) for k in _NET_INTS]
_STARTS = _NET_INTS
_ENDS = [k | 255 for k in _NET_INTS]
_IN500 = _NET_INTS[250] + 77


def _ip_text(k: int) -> str:
    return f"{k >> 24}.{(k >> 16) & 255}.{(k >> 8) & 255}.{k & 255}"


@workload(
    "ip_in_500_cidrs",
    "ip.src in {" + " ".join(_NETS500) + "}",
    variant(ip__src=_ip_text(_IN500)),
    variant(ip__src="255.1.2.3"),
    variant(ip__src=_ip_text(_NET_INTS[0])),
    variant(ip__src="::1"),
    tree=ast.Comparison(
        ast.FieldRef("ip.src"),
        "in",
        ast.SetLiteral(tuple(ast.CidrItem(__import__("ipaddress").ip_network(n)) for n in _NETS500)),
    ),
)
def hand_ip500(d: dict[str, Any]) -> bool:
    k = _ipv4_int(d.get("ip.src", "0.0.0.0"))
    j = bisect_right(_STARTS, k) - 1
    return j >= 0 and k <= _ENDS[j]


# 5. lower() + contains
@workload(
    "lower_contains",
    'lower(http.user_agent) contains "firefox"',
    variant(http__user_agent="curl/8.0"),
    variant(http__user_agent=None),
)
def hand_lower(d: dict[str, Any]) -> bool:
    return "firefox" in d.get("http.user_agent", "").lower()


# 6. a regex (RE2, linear time, is what the language requires; ``re`` is what a Python
# programmer would write)
_RX = re.compile(r"^/checkout/[a-z]+/?$")


@workload(
    "regex",
    r'http.request.uri.path matches "^/checkout/[a-z]+/?$"',
    variant(http__request__uri__path="/checkout/2"),
    variant(http__request__uri__path="/api/v2/users/abc"),
    variant(http__request__uri__path=None),
)
def hand_regex(d: dict[str, Any]) -> bool:
    return _RX.search(d.get("http.request.uri.path", "")) is not None


# 7. a 1,000-string `in` set
_HOSTS = [f"host{i}.example.com" for i in range(999)] + ["shop.example.com"]
_HOST_SET = frozenset(_HOSTS)


@workload(
    "in_1000_strings",
    "http.host in {" + " ".join(f'"{h}"' for h in _HOSTS) + "}",
    variant(http__host="host777.example.com"),
    variant(http__host="nothost.example.com"),
    variant(http__host=None),
    tree=ast.Comparison(
        ast.FieldRef("http.host"),
        "in",
        ast.SetLiteral(tuple(ast.Literal("string", h.encode()) for h in _HOSTS)),
    ),
)
def hand_in1000(d: dict[str, Any]) -> bool:
    return d.get("http.host", "") in _HOST_SET


# 8. any() over the 20 header values
@workload(
    "any_20_headers",
    'any(http.request.headers.values[*] contains "<script")',
    variant(http__request__headers__values=[*REQUEST["http.request.headers.values"], "<script>x"]),
    variant(http__request__headers__values=None),
)
def hand_any20(d: dict[str, Any]) -> bool:
    for value in d.get("http.request.headers.values", ()):  # noqa: SIM110
        if "<script" in value:
            return True
    return False


# 9. one header by name
@workload(
    "header_by_name",
    'any(http.request.headers["x-env"][*] eq "prod")',
    variant(http__request__headers={"x-env": ["staging"]}),
    variant(http__request__headers={"accept": ["*/*"]}),
    variant(http__request__headers={"x-env": ["a", "prod"]}),
    variant(http__request__headers=None),
)
def hand_header(d: dict[str, Any]) -> bool:
    return "prod" in d.get("http.request.headers", {}).get("x-env", ())


# 10. a 12-clause and/or chain
_CHAIN = (
    '(http.request.method eq "PUT" and cf.edge.server_port eq 443 and not ssl) '
    'or (http.host eq "a.example.com" and http.request.uri.path eq "/login") '
    'or (http.host eq "b.example.com" and cf.waf.score lt 20) '
    'or (ip.src.country eq "XX" and cf.edge.server_port ne 443) '
    'or http.user_agent eq "" or cf.client.bot or http.request.method eq "TRACE"'
)


@workload(
    "chain_12_clauses",
    _CHAIN,
    variant(http__user_agent="", cf__client__bot=True),
    variant(http__host="b.example.com", cf__waf__score=5),
    variant(http__request__method="PUT", ssl=False),
    variant(ip__src__country="XX", cf__edge__server_port=80),
    variant(http__request__method="TRACE"),
)
def hand_chain(d: dict[str, Any]) -> bool:
    g = d.get
    method = g("http.request.method", "")
    port = g("cf.edge.server_port", 0)
    host = g("http.host", "")
    return (
        (method == "PUT" and port == 443 and not g("ssl", False))
        or (host == "a.example.com" and g("http.request.uri.path", "") == "/login")
        or (host == "b.example.com" and g("cf.waf.score", 0) < 20)
        or (g("ip.src.country", "") == "XX" and port != 443)
        or g("http.user_agent", "") == ""
        or g("cf.client.bot", False)
        or method == "TRACE"
    )


# 11. a 5-field WAF rule
@workload(
    "waf_5_fields",
    'http.host eq "shop.example.com" and http.request.method in {"POST" "PUT"} '
    'and starts_with(http.request.uri.path, "/checkout") '
    "and not ip.src in {10.0.0.0/8} and cf.waf.score lt 60",
    variant(ip__src="10.0.0.9"),
    variant(http__request__method="GET"),
    variant(ip__src="2001:db8::5"),
    variant(cf__waf__score=None),
)
def hand_waf(d: dict[str, Any]) -> bool:
    g = d.get
    return (
        g("http.host") == "shop.example.com"
        and g("http.request.method") in ("POST", "PUT")
        and g("http.request.uri.path", "").startswith("/checkout")
        and not 0x0A000000 <= _ipv4_int(g("ip.src", "0.0.0.0")) <= 0x0AFFFFFF
        and g("cf.waf.score", 0) < 60
    )


IDS = [w.name for w in W]


def _check_agreement(w: Workload) -> Filter:
    f = make_filter(w)
    for request in w.requests:
        expected = w.hand(request)
        assert f.matches(request) is expected, (w.name, request)
        assert f.execute(SCHEME.context(request)) is expected, (w.name, request)
        assert f.execute(SCHEME.context(request, lazy=True)) is expected, (w.name, request)
    return f


@pytest.mark.parametrize("w", W, ids=IDS)
def test_hand(benchmark: Any, w: Workload) -> None:
    benchmark.group = w.name
    _check_agreement(w)
    assert benchmark(w.hand, REQUEST) is w.hand(REQUEST)


@pytest.mark.parametrize("w", W, ids=IDS)
def test_matches(benchmark: Any, w: Workload) -> None:
    benchmark.group = w.name
    f = _check_agreement(w)
    assert benchmark(f.matches, REQUEST) is w.hand(REQUEST)


@pytest.mark.parametrize("w", W, ids=IDS)
def test_context_execute(benchmark: Any, w: Workload) -> None:
    benchmark.group = w.name
    f = _check_agreement(w)
    execute, context = f.execute, SCHEME.context
    assert benchmark(lambda: execute(context(REQUEST))) is w.hand(REQUEST)


@pytest.mark.parametrize("w", W, ids=IDS)
def test_lazy_context_execute(benchmark: Any, w: Workload) -> None:
    benchmark.group = w.name
    f = _check_agreement(w)
    execute, context = f.execute, SCHEME.context
    assert benchmark(lambda: execute(context(REQUEST, lazy=True))) is w.hand(REQUEST)


@pytest.mark.parametrize("w", W, ids=IDS)
def test_execute(benchmark: Any, w: Workload) -> None:
    benchmark.group = w.name
    f = _check_agreement(w)
    ctx = SCHEME.context(REQUEST)
    assert benchmark(f.execute, ctx) is w.hand(REQUEST)


# Typical rules for parse+compile time (the big set/CIDR workloads are excluded: their
# compile time is dominated by the literal count, not by the rule's structure).
TYPICAL = [w for w in W if w.tree is None]


@pytest.mark.parametrize("w", TYPICAL, ids=[w.name for w in TYPICAL])
def test_compile(benchmark: Any, w: Workload) -> None:
    benchmark.group = "compile"
    # _compile bypasses compile()'s lru_cache so every round really parses and compiles.
    f = benchmark(_compile, w.expr, SCHEME, None, None)
    assert f.matches(REQUEST) is w.hand(REQUEST)
