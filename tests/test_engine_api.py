"""The engine's public API: Scheme, Context, checker/compiler behaviour, Filter."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping

import pytest

import edgerules
from edgerules.errors import ContextError, ParseError, RuleTypeError, SchemeError
from edgerules.lang import ast
from edgerules.lang.checker import check
from edgerules.lang.compiler import compile_checked
from edgerules.lang.context import Context
from edgerules.lang.engine import Filter, TraceNode, compile, format, parse
from edgerules.lang.scheme import Scheme, default_scheme
from edgerules.lang.source import Span
from edgerules.lang.types import BOOL, BYTES, INT, IP, MISSING, Array, Map
from reference_interpreter import evaluate, small_scheme

# --- Scheme -----------------------------------------------------------------------------


def test_scheme_dense_indices_and_defaults() -> None:
    s = Scheme([("a", BYTES), ("b", INT), ("c", BOOL), ("d", IP), ("e", Array(BYTES)), ("f", Map(INT))])
    assert [f.index for f in s.fields] == list(range(6))
    assert [f.default for f in s.fields] == [b"", 0, False, ipaddress.IPv4Address(0), (), {}]
    assert len(s) == 6 and "a" in s and "zz" not in s


def test_scheme_accepts_mapping() -> None:
    s = Scheme({"x": BYTES, "y": INT})
    assert s.field("y").index == 1


def test_scheme_aliases_resolve_to_same_field() -> None:
    s = default_scheme()
    assert s.get("ip.geoip.country") is s.get("ip.src.country")
    assert s.get("ip.geoip.country").name == "ip.src.country"
    f = compile('ip.geoip.country eq "GB"')
    assert f.fields == frozenset({"ip.src.country"})
    assert f.matches({"ip.src.country": "GB"})
    assert f.matches({"ip.geoip.country": "GB"})  # the alias name works in dicts too


def test_default_scheme_built_once() -> None:
    assert default_scheme() is default_scheme()
    assert default_scheme().get("http.host").type == BYTES
    assert default_scheme().get("cf.tls_client_auth.cert_verified").type == BOOL


@pytest.mark.parametrize(
    ("fields", "kw"),
    [
        ([("a", BYTES), ("a", INT)], {}),
        ([("a", BYTES)], {"aliases": {"b": "zz"}}),
        ([("a", BYTES)], {"aliases": {"a": "a"}}),
        ([("a", "String")], {}),
        ([("a",)], {}),
        ([("a", BYTES)], {"optional": ["b"]}),
    ],
)
def test_scheme_errors(fields: list, kw: dict) -> None:
    with pytest.raises(SchemeError):
        Scheme(fields, **kw)


def test_scheme_field_unknown_suggests() -> None:
    with pytest.raises(ContextError, match=re.escape('did you mean "http.host"')):
        default_scheme().field("http.hots")
    assert default_scheme().suggest_function("lowr") == "lower"


def test_scheme_compile_and_context() -> None:
    s = small_scheme()
    f = edgerules.compile('s eq "x"', s)
    assert f.scheme is s
    assert f.execute(s.context({"s": "x"}))


# --- Context ----------------------------------------------------------------------------


def test_context_coercions() -> None:
    s = small_scheme()
    ctx = s.context(
        {
            "s": "héllo",
            "s2": b"raw\xff",
            "i": 7,
            "b": True,
            "ip": "2001:db8::1",
            "as": ["a", b"b"],
            "ai": (1, 2),
            "ab": [True],
            "ms": {"k": "v", b"k2": b"v2"},
            "mas": {"h": ["1", "2"]},
        }
    )
    assert ctx["s"] == "héllo".encode()
    assert ctx["s2"] == b"raw\xff"
    assert ctx["ip"] == ipaddress.IPv6Address("2001:db8::1")
    assert ctx["as"] == (b"a", b"b")
    assert ctx["ai"] == (1, 2)
    assert ctx["ms"] == {b"k": b"v", b"k2": b"v2"}
    assert ctx["mas"] == {b"h": (b"1", b"2")}
    ctx["ip"] = ipaddress.IPv4Address("10.0.0.1")
    assert ctx["ip"] == ipaddress.IPv4Address("10.0.0.1")
    ctx.set("alias.s", "via alias")
    assert ctx["s"] == b"via alias"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("s", 5),
        ("i", "5"),
        ("i", True),  # bool is not an Int
        ("i", 2**63),
        ("i", -(2**63) - 1),
        ("b", 1),
        ("b", "true"),
        ("ip", "not an ip"),
        ("ip", 1234),
        ("as", "abc"),  # a string is not an array of strings
        ("as", [1]),
        ("ms", ["k"]),
        ("ms", {1: "v"}),
        ("mas", {"k": "v"}),
        ("s", None),
    ],
)
def test_context_rejects_wrong_types(name: str, value: object) -> None:
    ctx = small_scheme().context()
    with pytest.raises(ContextError, match=f'"{name}'):
        ctx[name] = value


def test_context_unknown_name() -> None:
    ctx = default_scheme().context()
    with pytest.raises(ContextError, match=re.escape('unknown field "http.hots"; did you mean "http.host"')):
        ctx["http.hots"] = "a"


def test_context_absent_fields_keep_defaults_and_optional_is_missing() -> None:
    ctx = small_scheme().context({"s": "x"})
    assert ctx["s2"] == b"" and ctx["i"] == 0 and ctx["b"] is False
    assert ctx["opt"] is MISSING
    ctx["opt"] = "v"
    assert ctx["opt"] == b"v"
    ctx["opt"] = None
    assert ctx["opt"] is MISSING
    ctx.reset("s")
    assert ctx["s"] == b""


class _LazyMapping(Mapping[str, object]):
    """Computes values on demand and records which were read (like ClientAuth.fields())."""

    def __init__(self, values: dict[str, object]) -> None:
        self._values = values
        self.read: list[str] = []

    def __getitem__(self, key: str) -> object:
        if key not in self._values:
            raise KeyError(key)
        self.read.append(key)
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("update(only=…) must not iterate the mapping")

    def __len__(self) -> int:
        return len(self._values)


def test_context_update_only_reads_listed_keys() -> None:
    lazy = _LazyMapping(
        {
            "cf.tls_client_auth.cert_verified": True,
            "cf.tls_client_auth.cert_subject_dn": "CN=x",
            "cf.tls_client_auth.cert_serial": "AB",
        }
    )
    f = compile("not cf.tls_client_auth.cert_verified")
    ctx = default_scheme().context()
    ctx.update(lazy, only=f.fields)
    assert lazy.read == ["cf.tls_client_auth.cert_verified"]
    assert f.execute(ctx) is False
    # matches() too reads only what the filter uses
    lazy.read.clear()
    assert f.matches(lazy) is False
    assert lazy.read == ["cf.tls_client_auth.cert_verified"]


def test_context_repr_and_as_dict() -> None:
    ctx = small_scheme().context({"s": "x"})
    assert "b'x'" in repr(ctx)
    assert ctx.as_dict()["s"] == b"x"


# --- checker ----------------------------------------------------------------------------


def test_check_without_parser_hand_built_ast() -> None:
    s = small_scheme()
    tree = ast.Logical(
        "and",
        (
            ast.Comparison(ast.FieldRef("s"), "eq", ast.Literal("string", b"x")),
            ast.Not(ast.BoolValue(ast.FieldRef("b"))),
        ),
    )
    checked = check(tree, s, "hand-built")
    fn = compile_checked(checked).fn
    assert fn(s.context({"s": "x"}).values) is True
    assert fn(s.context({"s": "x", "b": True}).values) is False


def test_type_error_messages_name_both_types() -> None:
    with pytest.raises(RuleTypeError) as info:
        compile("http.host > 3")
    assert info.value.message == "expected String, got Int"
    assert info.value.span == Span(12, 13)
    rendered = str(info.value)
    assert "line 1, column 13" in rendered and "^" in rendered


def test_unknown_field_error_has_suggestion() -> None:
    with pytest.raises(RuleTypeError) as info:
        compile('http.hots eq "a"')
    assert info.value.suggestion == "http.host"
    assert 'did you mean "http.host"?' in str(info.value)


def test_regex_replace_once_per_expression() -> None:
    with pytest.raises(RuleTypeError, match="at most once"):
        compile(
            'regex_replace(http.host, "a", "b") eq "x" and '
            'regex_replace(http.host, "c", "d") eq "y"'
        )


def test_invalid_regex_is_parse_error_at_pattern() -> None:
    text = 'http.host matches "(unclosed"'
    with pytest.raises(ParseError) as info:
        compile(text)
    assert info.value.span == Span(18, len(text))


DEPTH = 128


@pytest.mark.parametrize(
    "text",
    [
        "not " * DEPTH + "ssl",
        "(" * DEPTH + "ssl" + ")" * DEPTH,
        "lower(" * DEPTH + "http.host" + ")" * DEPTH + ' eq "a"',
        "not (" * (DEPTH // 2) + "ssl" + ")" * (DEPTH // 2),
    ],
)
def test_depth_128_never_recursion_error(text: str) -> None:
    def deep(n: int) -> Filter:
        # Leave room for callers' frames too (test runners, frameworks).
        return deep(n - 1) if n else compile(text)

    f = deep(150)
    f.matches({})
    f.trace(default_scheme().context())
    str(f)


def test_long_index_chain_is_an_error_not_recursion() -> None:
    text = "http.request.headers" + '["a"]' * 1500 + ' eq "x"'
    with pytest.raises((ParseError, RuleTypeError)):
        compile(text[:4096] if len(text) > 4096 else text)
    # Build the chain by hand too (no parser limit applies to hand-built trees).
    node: ast.Expr = ast.FieldRef("mas")
    for _ in range(5000):
        node = ast.Index(node, b"k")
    with pytest.raises(RuleTypeError):
        check(ast.Comparison(node, "eq", ast.Literal("string", b"x")), small_scheme(), "x")


# --- Filter -----------------------------------------------------------------------------


def test_filter_fields_and_execute() -> None:
    f = compile('http.host eq "a.com" and not cf.tls_client_auth.cert_verified')
    assert f.fields == frozenset({"http.host", "cf.tls_client_auth.cert_verified"})
    ctx = Context(default_scheme(), {"http.host": "a.com"})
    assert f.execute(ctx) is True
    assert f(ctx) is True
    ctx["cf.tls_client_auth.cert_verified"] = True
    assert f.execute(ctx) is False
    assert f.execute({"http.host": "a.com"}) is True  # a plain mapping is accepted


def test_filter_execute_checks_scheme_identity() -> None:
    f = compile("ssl")
    other = Scheme([("ssl", BOOL)])
    with pytest.raises(ContextError, match="another scheme"):
        f.execute(other.context())
    with pytest.raises(ContextError):
        f.execute(42)  # type: ignore[arg-type]


def test_filter_matches_coerces_and_reports_wrong_types() -> None:
    f = compile("ip.src in {10.0.0.0/8} and http.host eq \"a\"")
    assert f.matches({"ip.src": "10.1.2.3", "http.host": "a"})
    assert f.matches({"ip.src": ipaddress.ip_address("10.1.2.3"), "http.host": b"a"})
    assert not f.matches({"ip.src": "11.1.2.3", "http.host": "a"})
    with pytest.raises(ContextError, match=re.escape('"ip.src"')):
        f.matches({"ip.src": 5})
    # fields the filter does not read are ignored, even with wrong types
    assert f.matches({"ip.src": "10.0.0.1", "http.host": "a", "ssl": "not a bool"})


def test_filter_str_and_format_are_canonical() -> None:
    f = compile('http.host == "a"   &&   !ssl')
    text = str(f)
    assert parse(text) == f.ast
    assert format(f) == text
    assert format('http.host == "a"   &&   !ssl') == text
    assert format(f.ast) == text
    assert "http.host" in repr(f)


def test_compile_cache_returns_same_filter() -> None:
    text = 'http.host eq "cache.example"'
    assert compile(text) is compile(text)
    s = small_scheme()
    assert compile('s eq "x"', s) is compile('s eq "x"', s)
    assert compile('s eq "x"', s) is not compile('s eq "x"', small_scheme())


def test_compile_with_lists_is_not_cached() -> None:
    from edgerules.rulesets.lists import make_list

    lists = {"bad": make_list("bad", "ip", ["10.0.0.0/8"])}
    f = compile("ip.src in $bad", lists=lists)
    assert f.matches({"ip.src": "10.0.0.1"})
    assert compile("ip.src in $bad", lists=lists) is not f


def test_constant_filters() -> None:
    f = compile("true")
    assert f.fields == frozenset()
    assert f.matches({}) is True
    f = compile("http.host in {} or ssl")
    assert f.matches({"ssl": True}) and not f.matches({})


def test_trace_tree() -> None:
    f = compile('http.host eq "a.com" and (ssl or not cf.client.bot)')
    ctx = default_scheme().context({"http.host": "a.com", "ssl": False, "cf.client.bot": True})
    tree = f.trace(ctx)
    assert isinstance(tree, TraceNode)
    assert tree.value is False
    assert tree.text == str(f)
    first, second = tree.children
    assert first.value is True and first.text == 'http.host eq "a.com"'
    assert first.children[0].text == "http.host" and first.children[0].value == b"a.com"
    assert second.value is False
    assert [c.value for c in second.children] == [False, False]
    assert "false" in tree.render()
    # a mapping works too
    assert f.trace({"http.host": "a.com", "ssl": True}).value is True


def test_trace_elementwise_values() -> None:
    f = compile('any(http.request.headers.names[*] eq "a")')
    tree = f.trace({"http.request.headers.names": ["a", "b"]})
    assert tree.value is True
    assert tree.children[0].value == (True, False)


def test_trace_texts_are_canonical_for_every_key_and_argument() -> None:
    # The left-hand side's node is written like the whole expression: non-ASCII map keys
    # stay UTF-8 text (no mojibake) and control bytes are escaped.
    f = compile('http.request.headers["café"][0] eq "x" or lower(http.request.headers["a\\x01"][0]) eq "é"')
    tree = f.trace({})
    assert tree.text == str(f)
    first, second = tree.children
    assert first.children[0].text == 'http.request.headers["café"][0]'
    assert second.children[0].text == 'lower(http.request.headers["a\\x01"][0])'


@pytest.mark.parametrize(
    ("pattern", "value"),
    [
        ("é".encode(), "é".encode()),
        (b"^caf\xc3\xa9$", "café".encode()),
        (b"\xff", b"a\xffb"),
        (b"^a\\.b$", b"a.b"),
    ],
)
def test_a_string_literal_as_regex_means_its_bytes(pattern: bytes, value: bytes) -> None:
    # An AST built by hand may give ``matches`` a string Literal instead of a Regex: its
    # bytes are the pattern (UTF-8 text; other bytes match themselves, as in
    # regex_replace), not their Latin-1 reading.
    scheme = small_scheme()
    node = ast.Comparison(ast.FieldRef("s"), "matches", ast.Literal("string", pattern))
    checked = check(node, scheme, "built by hand")
    ctx = scheme.context({"s": value})
    assert compile_checked(checked).fn(ctx.values) is True
    assert evaluate(checked, ctx) is True
    # and its canonical text means the same pattern
    assert compile(format(node), scheme).execute(ctx) is True


@pytest.mark.parametrize(
    "node",
    [
        ast.FieldRef("b"),
        ast.Not(ast.FieldRef("b")),
        ast.Logical("and", (ast.FieldRef("b"), ast.Index(ast.FieldRef("ab"), 1))),
        ast.Quantifier("any", ast.FieldRef("ab")),
        ast.Quantifier("any", ast.Index(ast.FieldRef("ab"), ast.Star())),
        ast.Quantifier("all", ast.Not(ast.Index(ast.FieldRef("ab"), ast.Star()))),
    ],
)
def test_bare_values_as_conditions(node: ast.Expr) -> None:
    # The checker accepts a value where a condition is expected without the BoolValue
    # the parser wraps it in (hand-built ASTs); it must then mean the same as wrapped.
    scheme = small_scheme()
    checked = check(node, scheme, "built by hand")
    text = format(node)
    wrapped = compile(text, scheme)
    for fields in ({}, {"b": True, "ab": [False, True]}, {"b": True, "ab": [True, True]}):
        ctx = scheme.context(fields)
        expected = wrapped.execute(ctx)
        assert compile_checked(checked).fn(ctx.values) is expected, (text, fields)
        assert evaluate(checked, ctx) is expected, (text, fields)


def test_public_exports() -> None:
    assert edgerules.compile is compile
    assert edgerules.Filter is Filter
    assert edgerules.Context is Context
    assert edgerules.default_scheme is default_scheme


def test_filter_is_shareable_between_threads() -> None:
    import threading

    f = compile('any(http.request.headers.names[*] contains "x") or http.host eq "a"')
    results: list[bool] = []

    def work() -> None:
        for k in range(200):
            results.append(f.matches({"http.host": "a" if k % 2 else "b"}))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == results.count(False) == 400


def test_docs_examples_run() -> None:
    import doctest
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "docs" / "engine-back.md"
    result = doctest.testfile(
        str(path), module_relative=False, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.failed == 0


def test_compile_rejects_non_text_with_parse_error() -> None:
    with pytest.raises(ParseError):
        compile(["not", "text"])  # type: ignore[arg-type]


def test_matches_single_field_paths() -> None:
    f = compile('http.host eq "a"')
    assert f.matches({"http.host": "a"}) and f.matches({"http.host": b"a"})
    assert not f.matches({})
    with pytest.raises(ContextError, match=re.escape('"http.host"')):
        f.matches({"http.host": 5})
    with pytest.raises(ContextError, match="UTF-8"):
        f.matches({"http.host": "\ud800"})
    g = compile("cf.edge.server_port eq 443")
    assert g.matches({"cf.edge.server_port": 443}) and not g.matches({})
    with pytest.raises(ContextError):
        g.matches({"cf.edge.server_port": True})


def test_array_of_strings_coercion_paths() -> None:
    f = compile('any(http.request.headers.names[*] eq "b")')
    assert f.matches({"http.request.headers.names": ["a", "b"]})
    assert f.matches({"http.request.headers.names": [b"a", "b"]})
    with pytest.raises(ContextError):
        f.matches({"http.request.headers.names": ["a", 5]})
    with pytest.raises(ContextError):
        f.matches({"http.request.headers.names": ["\ud800"]})


def test_ip_subclasses_are_normalised() -> None:
    class MyIP(ipaddress.IPv4Address):
        pass

    f = compile("ip.src eq 10.0.0.1 and ip.src in {10.0.0.0/8}")
    assert f.matches({"ip.src": MyIP("10.0.0.1")})
    assert type(default_scheme().context({"ip.src": MyIP("10.0.0.1")})["ip.src"]) is ipaddress.IPv4Address
