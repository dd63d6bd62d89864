"""Limits an embedder can set per Scheme (issue 12 item 5): Cloudflare's are the defaults
(4,096 characters, 128 levels, 64 regexes, 10,000 set items); ``Scheme.derive`` raises or
lowers them; every limit is a caret error; the deepest nesting allowed
(``NESTING_CEILING``) works through every recursive consumer."""

from __future__ import annotations

import pytest

import edgerules
from edgerules.errors import ParseError, SchemeError
from edgerules.lang.limits import DEFAULT_LIMITS, NESTING_CEILING, ExpressionLimits
from edgerules.lang.scheme import Scheme, default_scheme
from edgerules.lang.types import BYTES
from edgerules.rulesets.lists import make_list
from reference_interpreter import evaluate


def derive(**limits: int) -> Scheme:
    return default_scheme().derive(limits=ExpressionLimits(**limits))


def test_defaults_are_cloudflares() -> None:
    assert default_scheme().limits == DEFAULT_LIMITS
    assert (DEFAULT_LIMITS.max_length, DEFAULT_LIMITS.max_nesting) == (4096, 128)
    assert (DEFAULT_LIMITS.max_regexes, DEFAULT_LIMITS.max_set_items) == (64, 10_000)
    assert Scheme([("a", BYTES)]).limits == DEFAULT_LIMITS


def _hosts(n: int) -> str:
    return " ".join(f'"host-{i}.example.com"' for i in range(n))


def test_a_20000_character_rule_with_a_1000_host_set() -> None:
    text = f"http.host in {{{_hosts(1000)}}} and not ssl"
    assert 20_000 < len(text) < 25_000
    with pytest.raises(ParseError) as info:
        edgerules.compile(text)
    assert info.value.span.start == 4096 and "the limit is 4096" in info.value.message
    big = derive(max_length=25_000)
    f = edgerules.compile(text, big)
    assert f.matches({"http.host": "host-999.example.com"}) is True
    assert f.matches({"http.host": "host-1000.example.com"}) is False


def test_lowered_length() -> None:
    s = derive(max_length=20)
    edgerules.compile('http.host eq "abcde"', s)  # 20 characters
    with pytest.raises(ParseError) as info:
        edgerules.compile('http.host eq "abcdef"', s)
    assert (info.value.span.start, info.value.span.end) == (20, 21)


@pytest.mark.parametrize(
    ("opener", "closer"), [("(", ")"), ("not ", ""), ("lower(", ")")], ids=["paren", "not", "call"]
)
def test_nesting_limit_lowered(opener: str, closer: str) -> None:
    s = derive(max_nesting=3)

    def text(n: int) -> str:
        inner = "http.host" if opener == "lower(" else "ssl"
        body = opener * n + inner + closer * n
        return body + ' eq "a"' if opener == "lower(" else body

    edgerules.compile(text(3), s)
    with pytest.raises(ParseError) as info:
        edgerules.compile(text(4), s)
    assert "more than 3 levels" in info.value.message
    assert info.value.span.start == len(opener) * 3


def test_set_items_limit() -> None:
    s = derive(max_set_items=2)
    edgerules.compile('http.host in {"a" "b"}', s)
    with pytest.raises(ParseError) as info:
        edgerules.compile('http.host in {"a" "b" "c"}', s)
    assert (info.value.span.start, info.value.span.end) == (22, 25)
    big = derive(max_set_items=20_000, max_length=400_000)
    many = " ".join(str(i) for i in range(15_000))
    assert edgerules.compile(f"cf.edge.server_port in {{{many}}}", big).matches(
        {"cf.edge.server_port": 14_999}
    )


def test_regex_limit_default_64() -> None:
    ok = " or ".join(f'http.host matches "a{i}"' for i in range(64))
    edgerules.compile(ok, derive(max_length=10_000))
    too_many = " or ".join(f'http.host matches "a{i}"' for i in range(65))
    with pytest.raises(ParseError) as info:
        edgerules.compile(too_many, derive(max_length=10_000))
    assert "at most 64" in info.value.message
    assert too_many[info.value.span.start :].startswith('"a64"')


def test_regex_limit_counts_regex_replace_and_can_be_raised() -> None:
    s = derive(max_regexes=2)
    text = 'http.host ~ "a" or regex_replace(http.host, "b", "c") eq "d" or http.host ~ "e"'
    with pytest.raises(ParseError) as info:
        edgerules.compile(text, s)
    assert text[info.value.span.start :].startswith('"e"')
    edgerules.compile(text, derive(max_regexes=3))
    seventy = " or ".join(f'http.host ~ "a{i}"' for i in range(70))
    edgerules.compile(seventy, derive(max_regexes=100, max_length=10_000))


def test_named_list_is_not_an_expression_limit() -> None:
    hosts = make_list("hosts", "hostname", [f"host-{i}.example.com" for i in range(5000)])
    f = edgerules.compile("http.host in $hosts", lists={"hosts": hosts})
    assert f.matches({"http.host": "host-4999.example.com"}) is True
    assert f.matches({"http.host": "host-5000.example.com"}) is False


@pytest.mark.parametrize(
    "bad",
    [
        {"max_length": 0},
        {"max_nesting": -1},
        {"max_regexes": True},
        {"max_set_items": 1.5},
        {"max_nesting": NESTING_CEILING + 1},
    ],
    ids=repr,
)
def test_bad_limits(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ExpressionLimits(**bad)  # type: ignore[arg-type]


def test_scheme_rejects_non_limits() -> None:
    with pytest.raises(SchemeError):
        Scheme([("a", BYTES)], limits={"max_length": 10})  # type: ignore[arg-type]


def test_derived_scheme_is_separate() -> None:
    s = derive(max_length=10_000)
    assert default_scheme().limits == DEFAULT_LIMITS
    assert [f.name for f in s.fields] == [f.name for f in default_scheme().fields]
    assert s.aliases == default_scheme().aliases
    f = edgerules.compile('http.host eq "a"', s)
    with pytest.raises(edgerules.ContextError):
        f.execute(default_scheme().context({}))  # contexts are per scheme
    assert f.execute(s.context({"http.host": "a"})) is True


_DEEP = {
    "paren": ("(" * NESTING_CEILING + "ssl" + ")" * NESTING_CEILING, False),
    "not": ("not " * (NESTING_CEILING - 1) + "ssl", True),
    "bang-paren": ("!(" * (NESTING_CEILING // 2) + "ssl" + ")" * (NESTING_CEILING // 2), False),
    "calls": ("lower(" * (NESTING_CEILING - 1) + "http.host" + ")" * (NESTING_CEILING - 1) + ' eq "a"', True),
    "concat": ("concat(" * (NESTING_CEILING - 1) + "http.host" + ', "")' * (NESTING_CEILING - 1) + ' eq "A"', True),
    "or-chain": ("(ssl or " * (NESTING_CEILING - 2) + "(not ssl" + ")" * (NESTING_CEILING - 1), True),
}


@pytest.mark.parametrize("name", list(_DEEP))
def test_nesting_ceiling_works_everywhere(name: str) -> None:
    """At the ceiling: compile, execute, matches, trace, the formatter's round trip and
    the reference interpreter all work (no RecursionError)."""
    text, expected = _DEEP[name]
    s = derive(max_nesting=NESTING_CEILING, max_length=20_000)
    f = edgerules.compile(text, s)
    fields = {"http.host": "A"}
    ctx = s.context(fields)
    assert f.execute(ctx) is expected
    assert f.matches(fields) is expected
    assert f.trace(ctx).value is expected
    assert evaluate(f._checked, ctx) is expected
    assert edgerules.compile(str(f), s).execute(ctx) is expected
    with pytest.raises(ParseError):
        edgerules.compile("not " * (NESTING_CEILING + 1) + "ssl", s)


def test_hostname_list_matcher_agrees_with_contains() -> None:
    """The compiled filter uses the list's ``matcher()`` (one closure, for speed); it must
    answer exactly as ``contains`` for every kind of value."""
    plain = make_list("plain", "hostname", ["a.example.com", "B.example.org"])
    wild = make_list("wild", "hostname", ["*.example.com", "example.net"])
    values = [b"a.example.com", b"A.EXAMPLE.COM", b"a.example.com.", b"b.example.org",
              b"x.a.example.com", b"example.net", b"", b".", "a.example.com", 7, None]
    for lst in (plain, wild):
        m = lst.matcher()
        exact, rest = lst.exact_and_rest()
        for v in values:
            assert m(v) is lst.contains(v), (lst.name, v)
            assert (v in exact or rest(v)) is lst.contains(v), (lst.name, v)
    f = edgerules.compile("http.host in $plain", lists={"plain": plain})
    assert f.matches({"http.host": "A.Example.COM."}) is True
    assert f.matches({"http.host": "c.example.com"}) is False
