"""Parser: the whole syntax of the Rules language (docs/engine-front.md) as AST expectations, spans,
limits, the grammar's build under lark's strict mode, and formatter canonical forms."""

from __future__ import annotations

import ipaddress
import re

import pytest

from edgerules.errors import ParseError
from edgerules.lang import ast
from edgerules.lang.formatter import format_expr, format_raw_string, format_string
from edgerules.lang.limits import ExpressionLimits
from edgerules.lang.parser import (
    MAX_EXPRESSION_LENGTH,
    MAX_NESTING_DEPTH,
    MAX_SET_ITEMS,
    parse_expression,
)
from edgerules.lang.source import Source, Span

F = ast.FieldRef


def S(value: bytes | str) -> ast.Literal:
    return ast.Literal("string", value.encode() if isinstance(value, str) else value)


def I(value: int) -> ast.Literal:  # noqa: E743 - short helper name for readability
    return ast.Literal("int", value)


def IP(text: str) -> ast.Literal:
    return ast.Literal("ip", ipaddress.ip_address(text))


def C(lhs: object, op: str, rhs: object) -> ast.Comparison:
    if isinstance(lhs, str):
        lhs = F(lhs)
    return ast.Comparison(lhs, op, rhs)  # type: ignore[arg-type]


def B(name: str) -> ast.BoolValue:
    return ast.BoolValue(F(name))


def Set(*items: object) -> ast.SetLiteral:
    return ast.SetLiteral(tuple(items))  # type: ignore[arg-type]


def And(*items: ast.Expr) -> ast.Logical:
    return ast.Logical("and", items)


def Or(*items: ast.Expr) -> ast.Logical:
    return ast.Logical("or", items)


def Xor(*items: ast.Expr) -> ast.Logical:
    return ast.Logical("xor", items)


def Call(name: str, *args: object) -> ast.FunctionCall:
    return ast.FunctionCall(name, tuple(args))  # type: ignore[arg-type]


POSITIVE: list[tuple[str, str, ast.Expr]] = [
    # --- dynamic right-hand sides
    ("rhs-field", "x ne y.z", C("x", "ne", F("y.z"))),
    ("rhs-call", "len(x) > len(y)", C(Call("len", F("x")), "gt", Call("len", F("y")))),
    ("rhs-index", 'a["k"][0] == b["k"][0]',
     C(ast.Index(ast.Index(F("a"), b"k"), 0), "eq", ast.Index(ast.Index(F("b"), b"k"), 0))),
    ("rhs-field-then-and", "x eq y and z", And(C("x", "eq", F("y")), B("z"))),
    ("rhs-hexlike-name-is-field", "x eq ab.cd", C("x", "eq", F("ab.cd"))),
    ("rhs-colon-bytes-stay-bytes", "x eq ab:cd", C("x", "eq", S(b"\xab\xcd"))),
    # the grammar reads a value after any operator; the checker limits it to eq…ge
    ("rhs-field-after-contains", "x contains y", C("x", "contains", F("y"))),
    ("negative-decimal-leading-zero", "x eq -012", C("x", "eq", I(-12))),
    # --- every comparison operator in both spellings
    ("eq", 'http.host eq "a.com"', C("http.host", "eq", S("a.com"))),
    ("eq-c", 'http.host == "a.com"', C("http.host", "eq", S("a.com"))),
    ("ne", "x ne 1", C("x", "ne", I(1))),
    ("ne-c", "x != 1", C("x", "ne", I(1))),
    ("lt", "x lt 1", C("x", "lt", I(1))),
    ("lt-c", "x < 1", C("x", "lt", I(1))),
    ("le", "x le 1", C("x", "le", I(1))),
    ("le-c", "x <= 1", C("x", "le", I(1))),
    ("gt", "x gt 1", C("x", "gt", I(1))),
    ("gt-c", "x > 1", C("x", "gt", I(1))),
    ("ge", "x ge 1", C("x", "ge", I(1))),
    ("ge-c", "x >= 1", C("x", "ge", I(1))),
    ("no-spaces-c", "x>=1", C("x", "ge", I(1))),
    ("contains", 'x contains "a"', C("x", "contains", S("a"))),
    ("matches", 'x matches "a"', C("x", "matches", ast.Regex("a"))),
    ("matches-c", 'x ~ "a"', C("x", "matches", ast.Regex("a"))),
    ("wildcard", 'x wildcard "*.a"', C("x", "wildcard", S("*.a"))),
    ("strict-wildcard", 'x strict wildcard "*.a"', C("x", "strict_wildcard", S("*.a"))),
    ("in-set", "x in {1 2}", C("x", "in", Set(I(1), I(2)))),
    ("bitwise-and", "x bitwise_and 4", C("x", "bitwise_and", I(4))),
    ("bitwise-and-c", "x & 4", C("x", "bitwise_and", I(4))),
    # --- logic, precedence, flattening
    ("and", "a and b", And(B("a"), B("b"))),
    ("and-c", "a && b", And(B("a"), B("b"))),
    ("or-c", "a || b", Or(B("a"), B("b"))),
    ("xor-c", "a ^^ b", Xor(B("a"), B("b"))),
    ("not-c", "!a", ast.Not(B("a"))),
    ("not-no-space-paren", "not(a)", ast.Not(B("a"))),
    ("flatten", "a and b and c", And(B("a"), B("b"), B("c"))),
    ("and-over-or", "a and b or c", Or(And(B("a"), B("b")), B("c"))),
    (
        "documented-precedence",
        "a or b xor c and d",
        Or(B("a"), Xor(B("b"), And(B("c"), B("d")))),
    ),
    ("not-binds-tightest", "not a and b", And(ast.Not(B("a")), B("b"))),
    (
        "not-comparison",
        'not http.host eq "a"',
        ast.Not(C("http.host", "eq", S("a"))),
    ),
    ("not-not", "not not a", ast.Not(ast.Not(B("a")))),
    ("parens-keep-nesting", "a or (b or c)", Or(B("a"), Or(B("b"), B("c")))),
    ("parens-regroup", "(a or b) and c", And(Or(B("a"), B("b")), B("c"))),
    ("redundant-parens", "((a))", B("a")),
    ("true", "true", ast.BoolConst(True)),
    ("false", " false ", ast.BoolConst(False)),
    # --- strings
    ("escape-quote", r'x eq "a\"b"', C("x", "eq", S('a"b'))),
    ("escape-backslash", r'x eq "a\\b"', C("x", "eq", S("a\\b"))),
    ("escape-hex", r'x eq "\x2e\x77\xFF"', C("x", "eq", S(b".w\xff"))),
    ("escape-octal", r'x eq "\000\101\377"', C("x", "eq", S(b"\x00A\xff"))),
    ("utf8-copied", 'x eq "é\n"', C("x", "eq", S("é\n".encode()))),
    ("raw", r'x eq r"a\.b"', C("x", "eq", S(r"a\.b"))),
    ("raw-hash", 'x eq r#"a"b"#', C("x", "eq", S('a"b'))),
    ("raw-2-hash", 'x eq r##"a"#b"##', C("x", "eq", S('a"#b'))),
    ("raw-empty", 'x eq r""', C("x", "eq", S(""))),
    ("hex-bytes-colon", "x eq 01:2e:f3", C("x", "eq", S(b"\x01\x2e\xf3"))),
    ("hex-bytes-dash", "x eq 01-2e-f3", C("x", "eq", S(b"\x01\x2e\xf3"))),
    ("hex-bytes-dot", "x eq 01.2e.f3", C("x", "eq", S(b"\x01\x2e\xf3"))),
    ("hex-bytes-dashes", "x eq ab-cd-ef", C("x", "eq", S(b"\xab\xcd\xef"))),
    ("hex-bytes-dots", "x eq 01.cd.ef", C("x", "eq", S(b"\x01\xcd\xef"))),
    # --- regex right-hand side
    (
        "regex-backslash-kept",
        r'x matches "^/v\d+\.json$"',
        C("x", "matches", ast.Regex(r"^/v\d+\.json$")),
    ),
    ("regex-quote", r'x matches "a\"b"', C("x", "matches", ast.Regex('a"b'))),
    ("regex-quote-in-class", r'x matches "[\"]"', C("x", "matches", ast.Regex(r"[\"]"))),
    ("regex-bare-quote-in-class", 'x matches "["]"', C("x", "matches", ast.Regex('["]'))),
    ("regex-raw", r'x ~ r"\d"', C("x", "matches", ast.Regex(r"\d"))),
    ("regex-escaped-bracket", r'x ~ "\[a"', C("x", "matches", ast.Regex(r"\[a"))),
    # --- integers
    ("int-negative", "x eq -12", C("x", "eq", I(-12))),
    ("int-hex", "x eq 0x1f5", C("x", "eq", I(501))),
    ("int-octal", "x eq 0123", C("x", "eq", I(83))),
    ("int-zero", "x eq 0", C("x", "eq", I(0))),
    ("int-max", "x eq 9223372036854775807", C("x", "eq", I(2**63 - 1))),
    ("int-min", "x eq -9223372036854775808", C("x", "eq", I(-(2**63)))),
    # --- IPs, CIDRs, ranges, sets
    ("ipv4", "ip.src eq 203.0.113.7", C("ip.src", "eq", IP("203.0.113.7"))),
    ("ipv6", "ip.src ne 2001:db8::1", C("ip.src", "ne", IP("2001:db8::1"))),
    ("ipv6-loopback", "ip.src eq ::1", C("ip.src", "eq", IP("::1"))),
    ("ipv6-any", "ip.src eq ::", C("ip.src", "eq", IP("::"))),
    ("ipv6-full", "ip.src eq 1:2:3:4:5:6:7:8", C("ip.src", "eq", IP("1:2:3:4:5:6:7:8"))),
    ("ipv4-mapped", "ip.src eq ::ffff:1.2.3.4", C("ip.src", "eq", IP("::ffff:1.2.3.4"))),
    (
        "cidrs",
        "ip.src in {192.0.2.0/24 2001:db8::/32}",
        C(
            "ip.src",
            "in",
            Set(
                ast.CidrItem(ipaddress.ip_network("192.0.2.0/24")),
                ast.CidrItem(ipaddress.ip_network("2001:db8::/32")),
            ),
        ),
    ),
    (
        "ip-range",
        "ip.src in {198.51.100.3..198.51.100.7}",
        C(
            "ip.src",
            "in",
            Set(
                ast.IpRangeItem(
                    ipaddress.ip_address("198.51.100.3"), ipaddress.ip_address("198.51.100.7")
                )
            ),
        ),
    ),
    (
        "int-ranges",
        "tcp.dstport in {8000..8009 8080..8089}",
        C("tcp.dstport", "in", Set(ast.IntRangeItem(8000, 8009), ast.IntRangeItem(8080, 8089))),
    ),
    (
        "negative-range",
        "x in {-5..-1}",
        C("x", "in", Set(ast.IntRangeItem(-5, -1))),
    ),
    ("range-spaces-around", "x in { 1..5 }", C("x", "in", Set(ast.IntRangeItem(1, 5)))),
    ("strings-set", 'x in {"a" "b" r"c"}', C("x", "in", Set(S("a"), S("b"), S("c")))),
    ("empty-set", "x in {}", C("x", "in", Set())),
    ("set-dup", "x in {1 1}", C("x", "in", Set(I(1), I(1)))),
    ("set-ip", "x in {1.2.3.4 ::1}", C("x", "in", Set(IP("1.2.3.4"), IP("::1")))),
    # --- named lists
    ("list", "ip.src in $bad_ips", C("ip.src", "in", ast.ListRef("bad_ips"))),
    (
        "list-managed",
        "ip.src in $cf.open_proxies",
        C("ip.src", "in", ast.ListRef("cf.open_proxies")),
    ),
    ("not-in-list", "not ip.src in $x1", ast.Not(C("ip.src", "in", ast.ListRef("x1")))),
    # --- fields vs keywords
    ("field-with-keyword-prefix", "http.index eq 1", C("http.index", "eq", I(1))),
    ("field-starting-with-not", "notable", B("notable")),
    ("field-segment-keyword", "ip.src.in_list", B("ip.src.in_list")),
    ("field-keyword-segment", "not.x", B("not.x")),
    ("field-and-segment", "a.and.b and c", And(B("a.and.b"), B("c"))),
    ("field-digit-segment", "a.1b eq 1", C("a.1b", "eq", I(1))),
    ("field-underscore", "_x eq 1", C("_x", "eq", I(1))),
    ("host-in", 'http.host in {"a"}', C("http.host", "in", Set(S("a")))),
    ("field-named-anything", "anything", B("anything")),
    # --- indexing
    ("index-int", "x[0] eq 1", C(ast.Index(F("x"), 0), "eq", I(1))),
    ("index-key", 'x["k"] eq 1', C(ast.Index(F("x"), b"k"), "eq", I(1))),
    ("index-key-escape", r'x["\x41"]', ast.BoolValue(ast.Index(F("x"), b"A"))),
    (
        "index-chain",
        'http.request.headers["accept"][0] eq "a"',
        C(ast.Index(ast.Index(F("http.request.headers"), b"accept"), 0), "eq", S("a")),
    ),
    ("index-star", "x[*]", ast.BoolValue(ast.Index(F("x"), ast.Star()))),
    ("index-spaces-inside", "x[ 0 ] eq 1", C(ast.Index(F("x"), 0), "eq", I(1))),
    # --- functions, quantifiers
    (
        "call",
        'starts_with(http.host, "a")',
        ast.BoolValue(Call("starts_with", F("http.host"), S("a"))),
    ),
    ("call-no-args", "f()", ast.BoolValue(Call("f"))),
    ("call-nested", "len(lower(x)) gt 3", C(Call("len", Call("lower", F("x"))), "gt", I(3))),
    (
        "call-literal-args",
        'f(1, 1.2.3.4, 01:02, r"a")',
        ast.BoolValue(Call("f", I(1), IP("1.2.3.4"), S(b"\x01\x02"), S("a"))),
    ),
    (
        "call-expression-arg",
        "f(a and b, x eq 1, not c)",
        ast.BoolValue(Call("f", And(B("a"), B("b")), C("x", "eq", I(1)), ast.Not(B("c")))),
    ),
    ("call-dotted-hex-is-field", "f(ab.cd)", ast.BoolValue(Call("f", F("ab.cd")))),
    (
        "call-indexed",
        'lower(x[*])[*] eq "a"',
        C(ast.Index(Call("lower", ast.Index(F("x"), ast.Star())), ast.Star()), "eq", S("a")),
    ),
    (
        "any",
        'any(x[*] eq "a")',
        ast.Quantifier("any", C(ast.Index(F("x"), ast.Star()), "eq", S("a"))),
    ),
    ("all", "all(x[*])", ast.Quantifier("all", ast.BoolValue(ast.Index(F("x"), ast.Star())))),
    ("not-any", "not any(a)", ast.Not(ast.Quantifier("any", B("a")))),
    # --- whitespace: space, CR, LF and TAB (TAB: our choice, accepted)
    ("newlines", "a\r\nand\nb", And(B("a"), B("b"))),
    ("tab", "a\tand\tb", And(B("a"), B("b"))),
    ("no-space-before-string", 'x eq"a"', C("x", "eq", S("a"))),
]


@pytest.mark.parametrize(
    ("text", "expected"), [p[1:] for p in POSITIVE], ids=[p[0] for p in POSITIVE]
)
def test_parses_to(text: str, expected: ast.Expr) -> None:
    got = parse_expression(text)
    assert got == expected
    # and the canonical text parses back to the same tree
    assert parse_expression(format_expr(got)) == got


def test_ids_unique() -> None:
    ids = [p[0] for p in POSITIVE]
    assert len(ids) == len(set(ids))


# --- spans ---------------------------------------------------------------------------------


def test_spans_point_into_original_text() -> None:
    text = '  http.host  eq "a.com"  and not ssl '
    expr = parse_expression(text)
    assert isinstance(expr, ast.Logical)
    cmp_, not_ = expr.items
    assert isinstance(cmp_, ast.Comparison) and isinstance(not_, ast.Not)
    assert text[expr.span.start : expr.span.end] == 'http.host  eq "a.com"  and not ssl'
    assert text[cmp_.lhs.span.start : cmp_.lhs.span.end] == "http.host"
    assert text[cmp_.op_span.start : cmp_.op_span.end] == "eq"
    assert text[cmp_.rhs.span.start : cmp_.rhs.span.end] == '"a.com"'
    assert text[not_.span.start : not_.span.end] == "not ssl"


def test_call_name_span_and_arg_spans() -> None:
    text = 'starts_with(http.host, "a")'
    expr = parse_expression(text)
    assert isinstance(expr, ast.BoolValue) and isinstance(expr.value, ast.FunctionCall)
    call = expr.value
    assert call.name_span == Span(0, 11)
    assert call.span == Span(0, len(text))
    assert [text[a.span.start : a.span.end] for a in call.args] == ["http.host", '"a"']


def test_set_item_spans() -> None:
    text = "x in {1..5 10.0.0.0/8 $}"
    with pytest.raises(ParseError):
        parse_expression(text)
    text = "x in {1..5 10.0.0.0/8}"
    rhs = parse_expression(text).rhs  # type: ignore[union-attr]
    assert [text[i.span.start : i.span.end] for i in rhs.items] == ["1..5", "10.0.0.0/8"]


def test_op_span_strict_wildcard_and_symbols() -> None:
    text = 'x strict wildcard "a"'
    cmp_ = parse_expression(text)
    assert text[cmp_.op_span.start : cmp_.op_span.end] == "strict wildcard"  # type: ignore[union-attr]
    text = "x >= 1"
    cmp_ = parse_expression(text)
    assert text[cmp_.op_span.start : cmp_.op_span.end] == ">="  # type: ignore[union-attr]


def test_raw_literal_flag() -> None:
    cmp_ = parse_expression('x eq r"a"')
    assert cmp_.rhs.raw is True  # type: ignore[union-attr]
    cmp_ = parse_expression('x eq "a"')
    assert cmp_.rhs.raw is False  # type: ignore[union-attr]


def test_name_in_error_header() -> None:
    with pytest.raises(ParseError) as info:
        parse_expression("x eq", name='rule "r1"')
    assert 'rule "r1", line 1, column 5' in str(info.value)


# --- limits ----------------------------------------------------------------------------------


def test_length_limit() -> None:
    ok = "a" * MAX_EXPRESSION_LENGTH
    assert parse_expression(ok) == B(ok)
    text = "a" * (MAX_EXPRESSION_LENGTH + 1)
    with pytest.raises(ParseError) as info:
        parse_expression(text)
    assert info.value.span == Span(MAX_EXPRESSION_LENGTH, MAX_EXPRESSION_LENGTH + 1)
    assert "too long" in info.value.message


@pytest.mark.parametrize(
    ("opener", "closer"),
    [("(", ")"), ("not ", ""), ("f(", ")"), ("any(", ")"), ("! ", "")],
    ids=["parens", "not", "calls", "any", "bang"],
)
def test_nesting_limit(opener: str, closer: str) -> None:
    ok = opener * MAX_NESTING_DEPTH + "a" + closer * MAX_NESTING_DEPTH
    parse_expression(ok)
    bad = opener * (MAX_NESTING_DEPTH + 1) + "a" + closer * (MAX_NESTING_DEPTH + 1)
    with pytest.raises(ParseError) as info:
        parse_expression(bad)
    assert "nested too deeply" in info.value.message
    start = len(opener) * MAX_NESTING_DEPTH
    assert info.value.span.start == start


def test_index_chain_counts_as_nesting() -> None:
    parse_expression("x" + "[0]" * MAX_NESTING_DEPTH)
    with pytest.raises(ParseError) as info:
        parse_expression("x" + "[0]" * (MAX_NESTING_DEPTH + 1))
    assert "nested too deeply" in info.value.message


def test_deep_input_within_length_never_recursion_error() -> None:
    # 2,000 levels fit in 4,096 characters: must be a ParseError, not RecursionError.
    for text in (
        "(" * 2000 + "a" + ")" * 2000,
        "not " * 1000 + "a",
        "!" * 4000 + "a",
        "x" + "[0]" * 1300,
    ):
        with pytest.raises(ParseError):
            parse_expression(text)


def test_long_flat_chains_are_fine() -> None:
    text = " and ".join(["a"] * 600)
    expr = parse_expression(text)
    assert isinstance(expr, ast.Logical) and len(expr.items) == 600


def test_set_size_limit() -> None:
    # The length limit keeps real sets below the default cap; lower the cap to exercise it.
    three = ExpressionLimits(max_set_items=3)
    parse_expression("x in {1 2 3}", limits=three)
    with pytest.raises(ParseError) as info:
        parse_expression("x in {1 2 3 44}", limits=three)
    assert info.value.span == Span(12, 14)
    assert "the limit is 3" in info.value.message
    assert MAX_SET_ITEMS == 10_000


def test_raw_string_hash_limit() -> None:
    ok = "x eq r" + "#" * 255 + '"a"' + "#" * 255
    assert parse_expression(ok) == C("x", "eq", S("a"))
    bad = "x eq r" + "#" * 256 + '"a"' + "#" * 256
    with pytest.raises(ParseError) as info:
        parse_expression(bad)
    assert info.value.span == Span(5, 5 + 1 + 256)


# --- grammar hygiene ---------------------------------------------------------------------------


def test_grammar_builds_in_strict_mode() -> None:
    """Shift/reduce conflicts or terminal collisions fail here (lark's strict mode)."""
    from importlib import resources

    from lark import Lark

    grammar = resources.files("edgerules.lang").joinpath("rules.lark").read_text(encoding="utf-8")
    Lark(grammar, parser="lalr", lexer="contextual", strict=True, propagate_positions=True)


def test_only_parser_imports_lark() -> None:
    import pathlib

    src = pathlib.Path(__file__).resolve().parents[1] / "src" / "edgerules"
    offenders = [
        str(p.relative_to(src))
        for p in src.rglob("*.py")
        if str(p.relative_to(src)) != "lang/parser.py"
        and ("import lark" in p.read_text() or "from lark" in p.read_text())
    ]
    assert offenders == []


def test_parser_object_is_shared_and_unchanged() -> None:
    import edgerules.lang.parser as parser_mod

    before = parser_mod._PARSER
    parse_expression("a and b")
    with pytest.raises(ParseError):
        parse_expression("a and")
    assert parser_mod._PARSER is before


# --- formatter canonical forms -------------------------------------------------------------------

CANONICAL = [
    ("c-like-ops", 'a == "x" && b != 1 || !c ^^ d', 'a eq "x" and b ne 1 or not c xor d'),
    ("minimal-parens", "((a and b)) or (c)", "a and b or c"),
    ("needed-parens", "(a or b) and c", "(a or b) and c"),
    ("same-op-parens-kept", "a and (b and c)", "a and (b and c)"),
    ("not-group", "not (a and b)", "not (a and b)"),
    ("regex-raw", r'x matches "a\"b\d"', r'x matches r#"a"b\d"#'),
    ("regex-no-quote", r'x ~ "\d"', r'x matches r"\d"'),
    ("string-escapes", r'x eq "\x41\042\\"', r'x eq "A\"\\"'),
    ("string-nonprintable", 'x eq "\x00\x7f"', r'x eq "\x00\x7f"'),
    ("string-invalid-utf8", r'x eq "\xff"', r'x eq "\xff"'),
    ("string-utf8-kept", 'x eq "é"', 'x eq "é"'),
    ("raw-kept", r'x wildcard r"a\*b"', r'x wildcard r"a\*b"'),
    ("hex-bytes-quoted", "x eq 41:42", 'x eq "AB"'),
    ("ints-decimal", "x in {0x10 010 -1}", "x in {16 8 -1}"),
    ("ipv6-compressed", "ip.src eq 2001:0db8:0:0:0:0:0:1", "ip.src eq 2001:db8::1"),
    ("set-spacing", "x in {  1..2   ::1..::2 10.0.0.0/8 }", "x in {1..2 ::1..::2 10.0.0.0/8}"),
    ("index", 'x[ "a" ][0][*]', 'x["a"][0][*]'),
    ("call", "f( a ,1 )", "f(a, 1)"),
    ("strict", 'x strict wildcard "a"', 'x strict wildcard "a"'),
    ("bitwise", "x & 1", "x bitwise_and 1"),
    ("true", " true ", "true"),
]


@pytest.mark.parametrize(
    ("text", "canonical"), [c[1:] for c in CANONICAL], ids=[c[0] for c in CANONICAL]
)
def test_canonical_form(text: str, canonical: str) -> None:
    expr = parse_expression(text)
    assert format_expr(expr) == canonical
    assert parse_expression(canonical) == expr


def test_format_helpers() -> None:
    assert format_string(b'a"b\\c\n') == r'"a\"b\\c\x0a"'
    assert format_raw_string('a"#b') == 'r##"a"#b"##'
    assert format_raw_string("") == 'r""'
    assert format_expr(F("x")) == "x"
    assert format_expr(ast.Index(F("x"), ast.Star())) == "x[*]"
    assert format_expr(ast.IntRangeItem(1, 2)) == "1..2"
    with pytest.raises(TypeError):
        format_expr(object())  # type: ignore[arg-type]


def test_parsing_from_threads_agrees() -> None:
    from concurrent.futures import ThreadPoolExecutor

    texts = [p[1] for p in POSITIVE] * 3
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(parse_expression, texts))
    assert results == [parse_expression(t) for t in texts]


# --- the fast path (lark's table and lexer regexes driven by parser._fast_parse) ------------


def _corpus() -> list[str]:
    """Every expression text the test suite knows: this file's, the case files' (valid
    and invalid), the golden errors'."""
    import pathlib
    import tomllib

    root = pathlib.Path(__file__).resolve().parent
    found: list[str] = [p[1] for p in POSITIVE] + [c[1] for c in CANONICAL]
    found += [c[2] for c in CANONICAL]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for path in [*sorted((root / "cases").glob("*.toml")), root / "golden" / "parse_errors.toml"]:
        walk(tomllib.loads(path.read_text(encoding="utf-8")))
    return list(dict.fromkeys(found))


CORPUS = _corpus()


def _deep(node: object) -> object:
    """A node with its spans (AST equality leaves them out)."""
    import dataclasses

    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return (
            type(node).__name__,
            *(_deep(getattr(node, f.name)) for f in dataclasses.fields(node)),
        )
    if isinstance(node, tuple):
        return tuple(_deep(item) for item in node)
    return node


def _outcome(text: str) -> object:
    try:
        return _deep(parse_expression(text))
    except ParseError as exc:
        return ("error", str(exc), exc.span, exc.hint)


def _fast_only(text: str) -> object:
    import edgerules.lang.parser as parser_mod
    from edgerules.lang.source import Source

    try:
        return _deep(parser_mod._fast_parse(text, parser_mod._ToAst(Source(text))))
    except (parser_mod._Bail, ParseError, KeyError, IndexError):
        return None


def test_fast_path_is_built() -> None:
    import edgerules.lang.parser as parser_mod

    assert parser_mod._FAST is not None  # else every parse silently takes lark's path


def test_valid_input_never_reaches_lark(monkeypatch: pytest.MonkeyPatch) -> None:
    import edgerules.lang.parser as parser_mod

    class NoLark:
        def parse(self, text: str) -> None:
            raise AssertionError(f"lark was asked to parse {text!r}")

    monkeypatch.setattr(parser_mod, "_PARSER", NoLark())
    for _, text, expected in POSITIVE:
        assert parse_expression(text) == expected


def check_fast_path_agrees(text: str) -> None:
    """parse_expression gives what it gave before the fast path existed (lark + the
    tree walk): the same AST with the same spans, or the same error, message, span and
    hint. And the fast path itself accepts exactly what lark accepts (it never decides
    an error: those always come from lark's path)."""
    import edgerules.lang.parser as parser_mod

    now = _outcome(text)
    saved = parser_mod._FAST
    parser_mod._FAST = None  # type: ignore[misc]
    try:
        before = _outcome(text)
    finally:
        parser_mod._FAST = saved  # type: ignore[misc]
    assert now == before
    if len(text) > MAX_EXPRESSION_LENGTH or not text.strip(" \t\r\n"):
        return  # rejected before parsing
    if parser_mod._nesting_bound(text) > MAX_NESTING_DEPTH:
        return  # possibly too deep: lark's path only
    fast = _fast_only(text)
    if isinstance(before, tuple) and before[0] == "error":
        assert fast is None
    else:
        assert fast == before


@pytest.mark.parametrize("text", CORPUS)
def test_fast_path_agrees_with_lark(text: str) -> None:
    check_fast_path_agrees(text)


def test_fast_path_agrees_on_generated_text() -> None:
    import sys
    from pathlib import Path

    from hypothesis import given

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
    from hypothesis_targets import expressions, texts

    given(texts)(check_fast_path_agrees)()
    given(expressions)(lambda expr: check_fast_path_agrees(format_expr(expr)))()


def test_no_terminal_starts_with_whitespace() -> None:
    """The fast path skips whitespace before reading a token (lark tries the %ignore
    terminal among the others): equal only if no terminal can match at a whitespace."""
    import edgerules.lang.parser as parser_mod

    conf = parser_mod._PARSER.lexer_conf
    tails = ["", "a", "and", "1", "1.2.3.4", "ab:cd", '"x"', 'r"x"', "$x", "eq", "(", "..", "*"]
    tails += CORPUS
    for term in conf.terminals:
        if term.name in conf.ignore:
            continue
        regex = re.compile(term.pattern.to_regexp())
        for space in " \t\r\n":
            for tail in tails:
                assert regex.match(space + tail) is None, (term.name, space + tail)


def test_fast_constructors_build_equal_nodes() -> None:
    import edgerules.lang.parser as parser_mod

    span = Span(1, 2)
    assert _deep(parser_mod._Span(1, 2)) == _deep(span)
    assert hash(parser_mod._Span(1, 2)) == hash(span)
    field = parser_mod._FieldRef("a", span)
    assert _deep(field) == _deep(ast.FieldRef("a", span))
    made = parser_mod._Comparison(
        field, "eq", parser_mod._Literal("int", 1, span, False), span, span
    )
    expected = ast.Comparison(
        ast.FieldRef("a", span), "eq", ast.Literal("int", 1, span), span, span
    )
    assert _deep(made) == _deep(expected)
    assert made == expected and hash(made) == hash(expected)


def test_fast_path_replays_a_recorded_shape_without_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """A text whose token types follow a path recorded by an earlier parse is parsed by
    replaying it (the action/goto table is not consulted), with the new text's own values
    and spans; a text leaving the path continues through the table from where it left."""
    import edgerules.lang.parser as parser_mod

    first = 'http.host eq "a.example.com" and http.request.uri.path eq "/x" or ssl'
    same_shape = 'http.user_agent eq "bot"   and cf.bot_management.ja3_hash eq "" or not_a_kw'
    fast = parser_mod._FAST
    assert fast is not None
    # An empty trie with room (the suite's other parses may have filled the real one).
    monkeypatch.setattr(fast, "root", parser_mod._Path(fast.root.scan, fast.root.stack))
    monkeypatch.setattr(parser_mod, "_trie_size", 0)
    parse_expression(first)  # records the path
    expected = _outcome_with_lark(same_shape)

    class NoTable(list):
        _rows: list

        def __getitem__(self, i: object) -> object:
            raise AssertionError("the table was consulted for a recorded shape")

    no_table = NoTable()
    no_table._rows = fast.action_rows
    monkeypatch.setattr(fast, "action_rows", no_table)
    assert _deep(parser_mod._fast_parse(same_shape, parser_mod._ToAst(Source(same_shape)))) \
        == expected
    monkeypatch.setattr(fast, "action_rows", fast.action_rows._rows)
    # Same prefix, another continuation: replayed up to `and`, then the table.
    diverging = 'http.host eq "a.example.com" and (ip.src in {10.0.0.0/8} or ssl)'
    assert _outcome(diverging) == _outcome_with_lark(diverging)


def _outcome_with_lark(text: str) -> object:
    import edgerules.lang.parser as parser_mod

    saved = parser_mod._FAST
    parser_mod._FAST = None  # type: ignore[misc]
    try:
        return _outcome(text)
    finally:
        parser_mod._FAST = saved  # type: ignore[misc]


def test_fast_path_parses_through_the_table_when_the_trie_is_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import edgerules.lang.parser as parser_mod

    monkeypatch.setattr(parser_mod, "_trie_size", parser_mod._TRIE_NODES)
    for text in ('any(http.request.headers.names[*] eq "x-zzz-unseen") xor ssl',
                 'http.host in {"u" "v" "w"} and cf.waf.score ge 3 and cf.waf.score le 7'):
        before = _outcome_with_lark(text)
        assert _fast_only(text) == before
        assert _outcome(text) == before
    assert parser_mod._trie_size == parser_mod._TRIE_NODES  # nothing recorded
