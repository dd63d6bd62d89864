"""Hypothesis strategies and properties for the parser and the formatter (engine-front).

Used twice: briefly by ``tests/test_parse_properties.py`` (part of ``make test``) and at
length by ``fuzz/run.py`` when atheris is not installed.

Properties:

1. any text -> ``parse_expression`` returns an AST or raises ``ParseError`` whose span
   lies within ``[0, len(text)]``; nothing else escapes (no lark error, no
   RecursionError, no internal error);
2. generated ASTs -> ``parse_expression(format_expr(a)) == a`` and formatting is a fixed
   point (``format(parse(format(a))) == format(a)``).

ASTs are generated directly (``st.recursive``), not as text, so the round trip covers
trees no test author thought of; the "token soup" strategy produces near-miss texts that
reach deep into the grammar, which uniform random text rarely does.
"""

from __future__ import annotations

import ipaddress
import typing

from hypothesis import strategies as st

from edgerules.errors import ParseError
from edgerules.lang import ast
from edgerules.lang.formatter import format_expr
from edgerules.lang.parser import KEYWORDS, parse_expression

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# --- names and literals ---------------------------------------------------------------------

names = st.from_regex(
    r"[A-Za-z_][A-Za-z0-9_]{0,6}(\.[A-Za-z0-9_]{1,6}){0,3}", fullmatch=True
).filter(lambda n: n not in KEYWORDS)
list_names = st.from_regex(r"[a-z0-9_]{1,6}(\.[a-z0-9_]{1,6}){0,2}", fullmatch=True)

string_literals = st.builds(
    lambda value, raw: ast.Literal("string", value, raw=raw),
    st.one_of(
        st.binary(max_size=16),
        st.text(max_size=12).map(lambda t: t.encode("utf-8", "surrogatepass")),
    ),
    st.booleans(),
)
int_literals = st.integers(INT64_MIN, INT64_MAX).map(lambda v: ast.Literal("int", v))
ip_addresses = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6))
ip_literals = ip_addresses.map(lambda v: ast.Literal("ip", v))
literals = st.one_of(string_literals, int_literals, ip_literals)

regexes = st.text(max_size=16).map(ast.Regex)


@st.composite
def cidrs(draw: st.DrawFn) -> ast.CidrItem:
    version = draw(st.sampled_from([4, 6]))
    bits = 32 if version == 4 else 128
    prefix = draw(st.integers(0, bits))
    address = draw(st.ip_addresses(v=version))
    return ast.CidrItem(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


@st.composite
def int_ranges(draw: st.DrawFn) -> ast.IntRangeItem:
    a, b = sorted(draw(st.lists(st.integers(INT64_MIN, INT64_MAX), min_size=2, max_size=2)))
    return ast.IntRangeItem(a, b)


@st.composite
def ip_ranges(draw: st.DrawFn) -> ast.IpRangeItem:
    version = draw(st.sampled_from([4, 6]))
    a, b = sorted(draw(st.lists(st.ip_addresses(v=version), min_size=2, max_size=2)))
    return ast.IpRangeItem(a, b)


set_items = st.one_of(literals, int_ranges(), ip_ranges(), cidrs())
sets = st.lists(set_items, max_size=5).map(lambda items: ast.SetLiteral(tuple(items)))

# --- values and predicates (mutually recursive) ----------------------------------------------

# Every comparison operator with a plain literal right-hand side: the AST's own list minus
# `matches` (a Regex) and `in` (a set or a list).
SIMPLE_OPS = [op for op in typing.get_args(ast.ComparisonOp) if op not in ("matches", "in")]

indexes = st.one_of(st.integers(0, INT64_MAX), st.binary(max_size=8), st.just(ast.Star()))


def _values(exprs: st.SearchStrategy) -> st.SearchStrategy:
    args = st.one_of(
        literals,
        st.deferred(lambda: values),
        # a bare value as argument is the value itself (never BoolValue), see parser.call
        exprs.filter(lambda e: not isinstance(e, ast.BoolValue | ast.BoolConst)),
    )
    calls = st.builds(
        lambda name, a: ast.FunctionCall(name, tuple(a)), names, st.lists(args, max_size=3)
    )
    base = st.one_of(names.map(ast.FieldRef), calls)
    return st.recursive(base, lambda inner: st.builds(ast.Index, inner, indexes), max_leaves=3)


@st.composite
def _comparison(draw: st.DrawFn, value_strategy: st.SearchStrategy) -> ast.Comparison:
    lhs = draw(value_strategy)
    op = draw(st.sampled_from([*SIMPLE_OPS, "matches", "in"]))
    if op == "matches":
        rhs: object = draw(regexes)
    elif op == "in":
        rhs = draw(st.one_of(sets, list_names.map(ast.ListRef)))
    else:
        rhs = draw(literals)
    return ast.Comparison(lhs, op, rhs)  # type: ignore[arg-type]


def _extend(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        children.map(ast.Not),
        st.builds(
            lambda op, items: ast.Logical(op, tuple(items)),
            st.sampled_from(["and", "or", "xor"]),
            st.lists(children, min_size=2, max_size=4),
        ),
        st.builds(ast.Quantifier, st.sampled_from(["any", "all"]), children),
    )


_leaf_values = st.one_of(
    names.map(ast.FieldRef),
    st.builds(ast.Index, names.map(ast.FieldRef), indexes),
)
_leaf_predicates = st.one_of(_leaf_values.map(ast.BoolValue), _comparison(_leaf_values))
_small_exprs = st.recursive(_leaf_predicates, _extend, max_leaves=4)
values = _values(_small_exprs)
predicates = st.one_of(_comparison(values), values.map(ast.BoolValue))
expressions = st.one_of(
    st.recursive(predicates, _extend, max_leaves=8),
    st.booleans().map(ast.BoolConst),
)

# --- near-miss text ("token soup") -----------------------------------------------------------

_TOKENS = [
    "http.host", "ip.src", "ssl", "x", "f", "any", "all", "not", "!", "and", "&&", "or", "||",
    "xor", "^^", "eq", "==", "ne", "!=", "<", "<=", ">", ">=", "lt", "contains", "matches",
    "~", "wildcard", "strict wildcard", "strict", "in", "&", "bitwise_and", "(", ")", "[",
    "]", "{", "}", ",", "..", "*", "$bad", "$cf.x", "true", "false", '"a"', '"\\x41"',
    '"\\q"', '"\\400"', '"', 'r"a"', 'r#"a"b"#', "r#", "1", "-1", "0x1f", "0128",
    "99999999999999999999", "1.2.3.4", "1.2.3.0/24", "1.2.3.4/24", "::1", "2001:db8::/32",
    "01:02:03", "ab.cd", "1.2.3", "\t", "\n", " ", "=", "@", "é", "AND", "EQ",
]  # fmt: skip

token_soup = st.lists(st.sampled_from(_TOKENS), max_size=14).map(" ".join)
texts = st.one_of(st.text(max_size=40), token_soup)

# --- properties ------------------------------------------------------------------------------


def check_any_text(text: str) -> None:
    """Property 1: an AST or a ParseError with an in-range span; nothing else."""
    try:
        result = parse_expression(text)
    except ParseError as err:
        assert 0 <= err.span.start <= err.span.end <= len(text), (text, err.span)
        assert not err.message.startswith("internal"), err.message
        err.render()  # rendering never fails either
        return
    assert isinstance(
        result,
        ast.Logical | ast.Not | ast.Comparison | ast.BoolValue | ast.Quantifier | ast.BoolConst,
    )
    # whatever parses also formats and re-parses to the same tree
    assert parse_expression(format_expr(result)) == result


def check_round_trip(expr: ast.Expr) -> None:
    """Property 2: parse(format(a)) == a, and format is a fixed point."""
    text = format_expr(expr)
    again = parse_expression(text)
    assert again == expr, (text, expr, again)
    assert format_expr(again) == text
