"""Parser benchmarks (pytest-benchmark group ``parse``): ``parse_expression`` on realistic
rules of 50-400 characters, and the same rules through lark's path alone (group
``parse-lark``: what every parse cost before the fast path of ``edgerules.lang.parser``; it is
still the path of every invalid text), and parse+check+compile (group ``parse+compile``:
``engine._compile``, which bypasses ``compile()``'s cache).

Under ``make test`` (``--benchmark-disable``) every body runs once, so each benchmark
also ASSERTS the rule's AST (its shape, and that both paths agree including spans).

    .venv/bin/python -m pytest bench/bench_parse.py --benchmark-enable --benchmark-only \\
        --benchmark-columns=min,median,ops -q
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import edgerules.lang.parser as parser_mod
from edgerules.lang import ast
from edgerules.lang.engine import Filter, _compile
from edgerules.lang.parser import parse_expression
from edgerules.lang.scheme import default_scheme
from edgerules.lang.source import Source

SCHEME = default_scheme()

RULES: dict[str, str] = {
    # 77: a host and a path prefix
    "host_path": 'http.host eq "api.example.com" and starts_with(http.request.uri.path, "/v1/")',
    # 71
    "host_not_verified": 'http.host eq "api.example.com" and not cf.tls_client_auth.cert_verified',
    # 98: a regex and a country set
    "regex_country": (
        r'http.request.uri.path matches "^/api/v[0-9]+/users/[0-9]+$" '
        'and ip.src.country in {"CN" "RU" "KP"}'
    ),
    # 179: the 5-field WAF rule of bench_engine.py
    "waf_5_fields": (
        'http.host eq "shop.example.com" and http.request.method in {"POST" "PUT"} '
        'and starts_with(http.request.uri.path, "/checkout") '
        "and not ip.src in {10.0.0.0/8} and cf.waf.score lt 30"
    ),
    # 228: raw regex, CIDRs, an IP range, an indexed header
    "regex_cidr_mix": (
        r'(http.request.uri.path matches r"^/(wp-admin|xmlrpc\.php)" '
        'or http.request.uri.query contains "union select") '
        "and not ip.src in {192.0.2.0/24 2001:db8::/32 10.0.0.1..10.0.0.9} "
        'and http.request.headers["x-forwarded-for"][0] ne ""'
    ),
    # 338: the 12-clause chain of bench_engine.py
    "chain_12_clauses": (
        '(http.request.method eq "POST" and cf.edge.server_port eq 443 and not ssl) '
        'or (http.host eq "a.example.com" and http.request.uri.path eq "/login") '
        'or (http.host eq "b.example.com" and cf.waf.score lt 20) '
        'or (ip.src.country eq "XX" and cf.edge.server_port ne 443) '
        'or http.user_agent eq "" or cf.client.bot or http.request.method eq "TRACE"'
    ),
    # 356: functions, any(), wildcard, bot score, ports
    "bot_rule": (
        'any(lower(http.request.headers.names[*])[*] eq "x-debug") '
        'or (lower(http.user_agent) contains "curl" and not cf.client.bot) '
        'or (http.request.full_uri wildcard "https://*.example.com/admin/*" '
        "and cf.bot_management.score lt 30 and cf.edge.server_port in {80 443 8000..8099}) "
        'or (http.referer eq "" and http.request.method eq "POST" and ip.src ne 203.0.113.7)'
    ),
}

# The top-level shape of each rule: (node type, operator or None, number of items).
SHAPES: dict[str, tuple[type, str | None, int]] = {
    "host_path": (ast.Logical, "and", 2),
    "host_not_verified": (ast.Logical, "and", 2),
    "regex_country": (ast.Logical, "and", 2),
    "waf_5_fields": (ast.Logical, "and", 5),
    "regex_cidr_mix": (ast.Logical, "and", 3),
    "chain_12_clauses": (ast.Logical, "or", 7),
    "bot_rule": (ast.Logical, "or", 4),
}


def _deep(node: object) -> object:
    """A node with its spans (AST equality leaves them out)."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        fields = dataclasses.fields(node)
        return (type(node).__name__, *(_deep(getattr(node, f.name)) for f in fields))
    if isinstance(node, tuple):
        return tuple(_deep(item) for item in node)
    return node


def _lark_path(text: str) -> ast.Expr:
    return parser_mod._ToAst(Source(text)).transform(parser_mod._PARSER.parse(text))


def _check(name: str, tree: ast.Expr) -> None:
    kind, op, count = SHAPES[name]
    assert isinstance(tree, kind)
    assert isinstance(tree, ast.Logical) and tree.op == op and len(tree.items) == count
    assert _deep(tree) == _deep(_lark_path(RULES[name]))  # same nodes, same spans


def test_rule_lengths() -> None:
    assert all(50 <= len(text) <= 400 for text in RULES.values())
    assert RULES.keys() == SHAPES.keys()


@pytest.mark.parametrize("name", list(RULES))
def test_parse(benchmark: Any, name: str) -> None:
    benchmark.group = "parse"
    tree = benchmark(parse_expression, RULES[name])
    _check(name, tree)


@pytest.mark.parametrize("name", list(RULES))
def test_parse_lark(benchmark: Any, name: str) -> None:
    benchmark.group = "parse-lark"
    tree = benchmark(_lark_path, RULES[name])
    _check(name, tree)


@pytest.mark.parametrize("name", list(RULES))
def test_parse_compile(benchmark: Any, name: str) -> None:
    benchmark.group = "parse+compile"
    f = benchmark(_compile, RULES[name], SCHEME, None, None)
    assert isinstance(f, Filter)
    assert f.matches({}) in (True, False)
