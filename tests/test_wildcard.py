"""Wildcard patterns (docs/functions.md; Cloudflare's operators page): parsing, matching, lazy captures."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgerules.lang.wildcard import (
    WildcardError,
    compile_wildcard,
    parse_wildcard,
    wildcard_captures,
)


def wc(pattern: bytes, value: bytes, *, strict: bool = False) -> bool:
    return compile_wildcard(pattern, case_sensitive=strict)(value)


# --- doc examples --------------------------------------------------------------------

@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"https://example.com/a/", True),
        (b"https://example.com/a/sub/folder/?name=value", True),
        (b"https://example.com/ab/", False),
        (b"https://sub.example.com/a/", False),
    ],
)
def test_doc_example_full_uri(value: bytes, expected: bool) -> None:
    assert wc(b"https://example.com/a/*", value) is expected


def test_doc_example_literal_dot_required() -> None:
    p = b"*.example.com/*/page.html"
    assert not wc(p, b"https://example.com/ab/page.html")
    assert not wc(p, b"https://www.example.com/ab/page.html?x=1")
    assert wc(p, b"https://www.example.com/ab/page.html")


def test_layering_escaped_star() -> None:
    # "a\\*b" in rule text is the pattern a\*b: a literal star
    assert wc(rb"a\*b", b"a*b")
    assert not wc(rb"a\*b", b"axb")
    assert wc(rb"a\\b", b"a\\b")
    assert wc(rb"a\\*", b"a\\anything")


# --- semantics -----------------------------------------------------------------------

def test_whole_value_and_star() -> None:
    assert wc(b"abc", b"abc")
    assert not wc(b"abc", b"abcd")
    assert not wc(b"abc", b"xabc")
    assert wc(b"*", b"")
    assert wc(b"*", b"anything/at?all#")
    assert wc(b"a*", b"a")
    assert wc(b"*c", b"abc")
    assert wc(b"a*c", b"ac")
    assert not wc(b"a*c", b"ab")
    assert wc(b"*b*", b"abc")
    assert not wc(b"*b*", b"ac")
    assert wc(b"a*b*c", b"aXbYc")
    assert wc(b"a*b*c", b"abc")
    assert not wc(b"a*b*c", b"acb")
    # first and last segments must not overlap
    assert not wc(b"ab*ba", b"aba")
    assert wc(b"ab*ba", b"abba")


def test_question_mark_is_literal() -> None:
    assert wc(b"a?c", b"a?c")
    assert not wc(b"a?c", b"abc")


def test_case_folding_ascii_only() -> None:
    assert wc(b"*.EXAMPLE.com", b"www.example.COM")
    assert not wc(b"*.EXAMPLE.com", b"www.example.COM", strict=True)
    assert wc(b"*.example.com", b"www.example.com", strict=True)
    # non-ASCII bytes are compared exactly (É is c3 89, é is c3 a9)
    assert not wc("é".encode(), "É".encode())
    assert wc("é*".encode(), "éX".encode())
    assert not wc(b"\xc9", b"\xe9")


def test_strict_no_star_shapes() -> None:
    assert wc(b"abc", b"abc", strict=True)
    assert not wc(b"abc", b"ABC", strict=True)
    assert wc(b"ab*", b"abX", strict=True)
    assert wc(b"*bc", b"Xbc", strict=True)
    assert wc(b"a*c", b"aXc", strict=True)
    assert not wc(b"a*c", b"c", strict=True)
    assert wc(b"*b*", b"abc", strict=True)
    assert wc(b"*b*d", b"abcd", strict=True)


@pytest.mark.parametrize(
    ("pattern", "offset", "fragment"),
    [
        (b"a**b", 1, "**"),
        (b"**", 0, "**"),
        (b"a\\", 1, "lone"),
        (b"a\\b", 1, "invalid escape"),
        (b"\\?", 0, "invalid escape"),
        (b"x*\\n", 2, "invalid escape"),
    ],
)
def test_errors(pattern: bytes, offset: int, fragment: str) -> None:
    with pytest.raises(WildcardError) as info:
        compile_wildcard(pattern, case_sensitive=False)
    assert info.value.offset == offset
    assert fragment in info.value.message


def test_escaped_star_next_to_star_is_fine() -> None:
    assert parse_wildcard(rb"*\**").segments == (b"", b"*", b"")
    assert wc(rb"*\**", b"x*y")
    assert not wc(rb"*\**", b"xy")


def test_linear_time_adversarial() -> None:
    # A backtracking matcher needs exponential time here; the segment matcher is linear.
    pattern = b"*a" * 20 + b"*b"
    value = b"a" * 5000
    assert not wc(pattern, value)


# --- captures ------------------------------------------------------------------------

def test_captures_lazy() -> None:
    cap = wildcard_captures(b"*.example.com/*", case_sensitive=False)
    assert cap(b"www.sub.example.com/a/b") == (b"www.sub", b"a/b")
    assert cap(b"WWW.Example.COM/X") == (b"WWW", b"X")
    assert cap(b"example.com/") is None
    cap2 = wildcard_captures(b"*a*", case_sensitive=True)
    assert cap2(b"banana") == (b"b", b"nana")
    assert wildcard_captures(b"abc", case_sensitive=True)(b"abc") == ()


# --- property: agrees with a regex reference -------------------------------------------

_ALPHABET = b"aAbB*\\?."


def _reference(pattern: bytes, value: bytes, strict: bool) -> tuple[bytes, ...] | None:
    segs = parse_wildcard(pattern).segments
    rx = b"(.*?)".join(re.escape(s) for s in segs)
    m = re.fullmatch(rx, value, re.DOTALL | (0 if strict else re.IGNORECASE))
    return None if m is None else m.groups()


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=10).map(lambda b: bytes(_ALPHABET[x % len(_ALPHABET)] for x in b)),
    st.binary(max_size=14).map(lambda b: bytes(b"aAbB*\\?.\xc9\xe9"[x % 10] for x in b)),
    st.booleans(),
)
def test_matches_reference(pattern: bytes, value: bytes, strict: bool) -> None:
    try:
        match = compile_wildcard(pattern, case_sensitive=strict)
    except WildcardError:
        return
    expected = _reference(pattern, value, strict)
    assert match(value) is (expected is not None)
    assert wildcard_captures(pattern, case_sensitive=strict)(value) == expected
