"""The regex dialect (spec rules-language §5.2) on RE2: modes, flags, errors, limits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgerules.regex import MAX_PATTERN_LENGTH, RegexError, compile_regex


def search(pattern: str, data: bytes) -> bool:
    return compile_regex(pattern).search(data)


def test_unanchored_search() -> None:
    assert search(r"^/api/v\d+\.json$", b"/api/v12.json")
    assert not search(r"^/api/v\d+\.json$", b"/api/v12xjson")
    assert search("bc", b"abcd")
    assert search("", b"")


def test_byte_mode_dot_matches_any_byte() -> None:
    assert search("^a.c$", b"a\xffc")
    assert not search("^a.c$", "aéc".encode())  # é is two bytes
    assert search("^a..c$", "aéc".encode())
    assert not search("a.c", b"a\nc")
    assert search("(?s)a.c", b"a\nc")
    assert search(r"\xff", b"\xff")
    assert search("^[\\x80-\\xff]+$", b"\x80\xfe")


def test_byte_mode_literal_non_ascii_is_one_unit() -> None:
    assert search("^é+$", "ééé".encode())
    assert not search("^é+$", b"\xc3\xa9\xa9")


def test_ascii_classes_and_case_folding_in_byte_mode() -> None:
    assert search(r"^\w+$", b"abc_1")
    assert not search(r"^\w+$", "é".encode())
    assert search("(?i)ABC", b"xabcx")
    assert not search("(?i)\\xe9", b"\xc9")  # Latin-1 letters are not folded


def test_utf8_mode() -> None:
    assert search(r"(?u)\p{Hangul}+", "안녕".encode())
    assert search("(?u)^a.c$", "aéc".encode())
    assert search("(?iu)^é$", "É".encode())
    assert search("(?u)(?i)^é$", "É".encode())
    assert not search(r"(?u)\p{Hangul}", b"\xff\xfe")  # invalid UTF-8 is fine
    assert compile_regex("(?u)x").utf8
    assert not compile_regex("(?-u)x").utf8


def test_flags_m_s_i_u_greedy() -> None:
    assert search("(?m)^b$", b"a\nb\nc")
    assert not search("^b$", b"a\nb\nc")
    assert search("(?i:AB)c", b"abc")
    assert not search("(?i:AB)C", b"abc")
    assert search("a(?-u:b)", b"ab")  # (?-u) in byte mode is a no-op


def test_verbose_mode() -> None:
    rx = "(?x)  ^ a  b   # a comment\n  c $"
    assert search(rx, b"abc")
    assert search(r"(?x)a\ b\#", b"a b#")
    assert search("(?x)[a b]+$", b"ab")  # whitespace ignored inside classes (Rust rule)
    assert not search("(?x)[a b]+$", b" ")


def test_rust_unicode_escapes() -> None:
    assert search(r"\u0041", b"A")
    assert search(r"\u{41}", b"A")
    assert search(r"\U00000041", b"A")
    assert search(r"(?u)\u{e9}", "é".encode())


def test_catastrophic_pattern_is_linear() -> None:
    assert not search("(a+)+$", b"a" * 30 + b"b")
    assert search("(a+)+$", b"a" * 30)
    assert not search("(x+x+)+y", b"x" * 5000)


@pytest.mark.parametrize(
    ("pattern", "fragment", "offset"),
    [
        ("(?=a)", "look-around", 0),
        ("a(?<!b)", "invalid perl operator", 1),
        (r"(a)\1", "backreferences", 3),
        ("[a", "missing ]", 0),
        ("abc(", "missing )", 0),
        ("a{2000}", "repetition", 1),
        (r"\Z", "invalid escape", 0),
        ("x(?u)a", "u flag", 1),
        ("(?u)(?-u:a)", "u flag", 4),
        ("a(?x)b", "x flag", 1),
        (r"\pL", "(?u)", 0),
        ("[é]", "(?u)", 1),
        ("[a[b]]", "nested", 2),
        ("[a&&b]", "set operation", 2),
        ("[a--b]", "set operation", 2),
        ("\\", "lone backslash", 0),
        (r"a\C", r"\C", 1),
        (r"\Qa\E", r"\Q", 0),
        (r"\u00g1", "hex digits", 0),
    ],
)
def test_errors(pattern: str, fragment: str, offset: int) -> None:
    with pytest.raises(RegexError) as info:
        compile_regex(pattern)
    assert fragment in info.value.message
    assert info.value.offset == offset


def test_limits() -> None:
    with pytest.raises(RegexError, match="too long"):
        compile_regex("a" * (MAX_PATTERN_LENGTH + 1))
    with pytest.raises(RegexError, match="too large"):
        compile_regex(r"(?u)\pL{1000}")


def test_posix_classes_and_groups() -> None:
    assert search("^[[:alpha:]]+$", b"abc")
    assert search("(?P<year>[0-9]{4})", b"in 2024")
    assert search("(?<year>[0-9]{4})", b"in 2024")
    assert search("[]a]", b"]")
    assert search("[^]a]", b"b")


def test_first_match_spans() -> None:
    rx = compile_regex(r"(\d+)-(x)?(\d+)")
    assert rx.groups == 3
    assert rx.first_match(b"ab 12-34 56-78") == [(3, 8), (3, 5), (-1, -1), (6, 8)]
    assert rx.first_match(b"none") is None


_REGEX_ALPHABET = [
    *"ab()[]{}^$.*+?|\\-:&~#ux PiZ1é\n",
    *("(?", "(?u)", "(?x)", "[:alpha:]", "\\p{Greek}", "\udcff"),
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_REGEX_ALPHABET), max_size=12).map("".join), st.binary(max_size=12))
def test_only_regex_errors_escape(pattern: str, data: bytes) -> None:
    try:
        rx = compile_regex(pattern)
    except RegexError as exc:
        assert 0 <= exc.offset <= len(pattern)
        return
    found = rx.search(data)
    assert isinstance(found, bool)
    spans = rx.first_match(data)
    assert spans is None or len(spans) == rx.groups + 1
    assert found is (spans is not None)  # the literal fast path agrees with RE2


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "^", "$", "\\.", ".", "\\$", "é", "\\\\"]), max_size=6).map("".join),
    st.lists(st.sampled_from(["a", "b", ".", "$", "é", "\\"]), max_size=6).map("".join),
)
def test_literal_fast_path_agrees(pattern: str, text: str) -> None:
    try:
        rx = compile_regex(pattern)
    except RegexError:
        return
    data = text.encode()
    assert rx.search(data) is (rx.first_match(data) is not None)
