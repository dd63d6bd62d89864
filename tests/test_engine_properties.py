"""Hypothesis properties of the engine: generated well-typed expressions over
a small scheme with one field of each type, generated contexts.

* the compiled closures agree with the naive reference interpreter;
* ``execute`` never raises, and ``matches(dict)`` agrees with ``execute``;
* the text round-trips: ``parse(format(e)) == e`` and compiles to the same result;
* algebra: ``not not e ≡ e``, De Morgan, commutativity of ``and``/``or``.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from edgerules.lang import ast
from edgerules.lang.checker import check
from edgerules.lang.compiler import compile_checked
from edgerules.lang.engine import compile, parse
from edgerules.lang.formatter import format_expr
from reference_interpreter import evaluate, small_scheme

SCHEME = small_scheme()

STRS = [b"", b"a", b"ab", b"A", b"b", b"k", b"xAb"]
INTS = [-1, 0, 1, 2, 5, 9223372036854775807]
IPS = [
    ipaddress.ip_address(x)
    for x in ("10.0.0.1", "10.0.0.2", "192.0.2.200", "0.0.0.0", "2001:db8::1", "::ffff:10.0.0.1")
]
NETS = [ipaddress.ip_network(x) for x in ("10.0.0.0/8", "10.0.0.0/31", "2001:db8::/32", "::/0")]
REGEXES = ["a", "^a", "b$", "(?i)A", ".", "^$"]
WILDCARDS = [b"*", b"a*", b"*b", b"A*B", b"", b"x*A*"]
KEYS = [b"k", b"x"]


def lit(kind: str, value: Any) -> ast.Literal:
    return ast.Literal(kind, value)


str_lit = st.sampled_from(STRS).map(lambda v: lit("string", v))
int_lit = st.sampled_from(INTS).map(lambda v: lit("int", v))
ip_lit = st.sampled_from(IPS).map(lambda v: lit("ip", v))


def field(name: str) -> ast.FieldRef:
    return ast.FieldRef(name)


# --- value expressions by type ------------------------------------------------------------

string_value = st.recursive(
    st.one_of(
        st.sampled_from(["s", "s2", "opt", "alias.s"]).map(field),
        st.integers(0, 2).map(lambda k: ast.Index(field("as"), k)),
        st.sampled_from(KEYS).map(lambda key: ast.Index(field("ms"), key)),
        st.tuples(st.sampled_from(KEYS), st.integers(0, 1)).map(
            lambda t: ast.Index(ast.Index(field("mas"), t[0]), t[1])
        ),
    ),
    lambda inner: st.one_of(
        inner.map(lambda v: ast.FunctionCall("lower", (v,))),
        inner.map(lambda v: ast.FunctionCall("upper", (v,))),
    ),
    max_leaves=3,
)
int_value = st.one_of(
    st.just(field("i")),
    st.integers(0, 3).map(lambda k: ast.Index(field("ai"), k)),
    string_value.map(lambda v: ast.FunctionCall("len", (v,))),
)
ip_value = st.just(field("ip"))


@st.composite
def string_comparison(draw: Any, lhs: Any = string_value) -> ast.Comparison:
    left = draw(lhs)
    op = draw(
        st.sampled_from(
            ["eq", "ne", "lt", "le", "gt", "ge", "contains", "matches", "wildcard", "strict_wildcard", "in"]
        )
    )
    if op == "matches":
        rhs: Any = ast.Regex(draw(st.sampled_from(REGEXES)))
    elif op in ("wildcard", "strict_wildcard"):
        rhs = lit("string", draw(st.sampled_from(WILDCARDS)))
    elif op == "in":
        rhs = ast.SetLiteral(tuple(draw(st.lists(str_lit, max_size=3))))
    else:
        rhs = draw(str_lit)
    return ast.Comparison(left, op, rhs)


@st.composite
def int_comparison(draw: Any, lhs: Any = int_value) -> ast.Comparison:
    left = draw(lhs)
    op = draw(st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge", "bitwise_and", "in"]))
    if op == "in":
        item = st.one_of(
            int_lit,
            st.tuples(st.sampled_from(INTS), st.sampled_from(INTS)).map(
                lambda t: ast.IntRangeItem(min(t), max(t))
            ),
        )
        rhs: Any = ast.SetLiteral(tuple(draw(st.lists(item, max_size=7))))
    else:
        rhs = draw(int_lit)
    return ast.Comparison(left, op, rhs)


@st.composite
def ip_comparison(draw: Any) -> ast.Comparison:
    op = draw(st.sampled_from(["eq", "ne", "in"]))
    if op == "in":

        def ip_range(t: tuple[Any, Any]) -> Any:
            lo, hi = t
            if lo.version != hi.version:
                return ast.Literal("ip", lo)
            return ast.IpRangeItem(min(lo, hi), max(lo, hi))

        item = st.one_of(
            ip_lit,
            st.sampled_from(NETS).map(ast.CidrItem),
            st.tuples(st.sampled_from(IPS), st.sampled_from(IPS)).map(ip_range),
        )
        rhs: Any = ast.SetLiteral(tuple(draw(st.lists(item, max_size=6))))
    else:
        rhs = draw(ip_lit)
    return ast.Comparison(field("ip"), op, rhs)


bool_leaf = st.one_of(
    st.just(ast.BoolValue(field("b"))),
    st.integers(0, 3).map(lambda k: ast.BoolValue(ast.Index(field("ab"), k))),
)

# --- element-wise predicates for any()/all() -------------------------------------------------

STAR_BASES: list[tuple[Any, str]] = [
    (ast.Index(field("as"), ast.Star()), "string"),
    (ast.Index(field("ms"), ast.Star()), "string"),
    (ast.Index(ast.Index(field("mas"), b"k"), ast.Star()), "string"),
    (ast.Index(ast.Index(field("mas"), ast.Star()), 0), "string"),
    (ast.Index(ast.Index(field("mas"), ast.Star()), ast.Star()), "string"),
    (ast.Index(ast.FunctionCall("lower", (ast.Index(field("as"), ast.Star()),)), ast.Star()), "string"),
    (ast.Index(field("ai"), ast.Star()), "int"),
    (ast.Index(field("ab"), ast.Star()), "bool"),
]


@st.composite
def quantifier(draw: Any) -> ast.Quantifier:
    base, kind = draw(st.sampled_from(STAR_BASES))
    if kind == "string":
        leaf = string_comparison(st.just(base))
    elif kind == "int":
        leaf = int_comparison(st.just(base))
    else:
        leaf = st.just(ast.BoolValue(base))
    tree = st.recursive(
        leaf,
        lambda inner: st.one_of(
            inner.map(ast.Not),
            st.tuples(
                st.sampled_from(["and", "or", "xor"]), st.lists(inner, min_size=2, max_size=3)
            ).map(lambda t: ast.Logical(t[0], tuple(t[1]))),
        ),
        max_leaves=4,
    )
    return ast.Quantifier(draw(st.sampled_from(["any", "all"])), draw(tree))


leaf_pred = st.one_of(
    string_comparison(), int_comparison(), ip_comparison(), bool_leaf, quantifier()
)


def _logical(t: tuple[str, list[Any]]) -> ast.Logical:
    return ast.Logical(t[0], tuple(t[1]))


expressions = st.recursive(
    leaf_pred,
    lambda inner: st.one_of(
        inner.map(ast.Not),
        st.tuples(st.sampled_from(["and", "or", "xor"]), st.lists(inner, min_size=2, max_size=4)).map(
            _logical
        ),
    ),
    max_leaves=8,
)

# --- contexts --------------------------------------------------------------------------------

strs = st.sampled_from([*STRS, b"a\xff", b"zz"])
contexts = st.fixed_dictionaries(
    {},
    optional={
        "s": strs,
        "s2": strs,
        "opt": strs,
        "i": st.sampled_from([*INTS, 3, 4]),
        "b": st.booleans(),
        "ip": st.sampled_from(IPS),
        "as": st.lists(strs, max_size=3),
        "ai": st.lists(st.sampled_from(INTS), max_size=3),
        "ab": st.lists(st.booleans(), max_size=3),
        "ms": st.dictionaries(st.sampled_from(KEYS), strs, max_size=2),
        "mas": st.dictionaries(st.sampled_from(KEYS), st.lists(strs, max_size=2), max_size=2),
    },
)


def run(expr: ast.Expr, fields: dict[str, Any]) -> bool:
    checked = check(expr, SCHEME, "generated")
    ctx = SCHEME.context(fields)
    got = compile_checked(checked).fn(ctx.values)
    assert type(got) is bool
    return got


@given(expressions, contexts)
def test_compiled_agrees_with_reference_interpreter(expr: ast.Expr, fields: dict) -> None:
    checked = check(expr, SCHEME, "generated")
    ctx = SCHEME.context(fields)
    got = compile_checked(checked).fn(ctx.values)  # never raises for data
    assert type(got) is bool
    assert got == evaluate(checked, ctx), expr


@given(expressions, contexts)
def test_text_round_trip_and_matches(expr: ast.Expr, fields: dict) -> None:
    text = format_expr(expr)
    assert parse(text) == expr, text
    f = compile(text, SCHEME)
    ctx = SCHEME.context(fields)
    result = f.execute(ctx)
    assert result == run(expr, fields)
    assert f.matches(fields) == result
    assert f.trace(ctx).value == result


@given(expressions, expressions, contexts)
def test_algebra(a: ast.Expr, b: ast.Expr, fields: dict) -> None:
    va, vb = run(a, fields), run(b, fields)
    assert run(ast.Not(ast.Not(a)), fields) == va
    assert run(ast.Logical("and", (a, b)), fields) == (va and vb)
    assert run(ast.Logical("and", (b, a)), fields) == (va and vb)
    assert run(ast.Logical("or", (b, a)), fields) == (va or vb)
    assert run(ast.Logical("xor", (a, b)), fields) == (va != vb)
    # De Morgan
    assert run(ast.Not(ast.Logical("and", (a, b))), fields) == run(
        ast.Logical("or", (ast.Not(a), ast.Not(b))), fields
    )
    assert run(ast.Not(ast.Logical("or", (a, b))), fields) == run(
        ast.Logical("and", (ast.Not(a), ast.Not(b))), fields
    )
