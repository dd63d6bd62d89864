"""The regex dialect (docs/functions.md; Cloudflare's operators page) on RE2: modes, flags, errors, limits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgerules.lang.regex import MAX_PATTERN_LENGTH, RegexError, compile_regex


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
    assert search(r"^\_$", b"_")  # escaped ASCII punctuation is literal


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


def test_ascii_space_includes_vertical_tab() -> None:
    # Rust's ASCII \s is [\t\n\x0B\f\r ]; RE2's lacks \x0B, so \s/\S are spelled out.
    assert search(r"\s", b"\x0b")
    assert not search(r"\S", b"\x0b")
    assert search(r"^[\s,]+$", b"\x0b, \t")
    assert not search(r"^[^\s]$", b"\x0b")
    assert search(r"^[\S]$", b"\xff")
    assert search("[[:space:]]", b"\x0b")
    assert not search(r"(?i)\s", b"s")


def test_one_sided_word_boundaries() -> None:
    # \< \> \b{start} \b{end} \b{start-half} \b{end-half}: rewritten to \b, \B, "never"
    # or "always" when the pattern fixes the byte on one side.
    assert search(r"\<word\>", b"a word.")
    assert not search(r"\<word\>", b"swords")
    assert not search(r"^\<x\>$", b"<x>")  # not literal < and >
    assert search(r"^\<x\>$", b"x")
    assert not search(r"\<o", b"word")
    assert search(r"d\>", b"word")
    assert search(r"\b{start}word\b{end}", b"word")
    assert not search(r"a\b{start}", b"ab")  # a word byte before: never a start
    assert search(r"\b{start-half}w", b"-w")
    assert not search(r"w\b{start-half}w", b"ww")
    assert search(r"x\b{end-half} ", b"x ")
    assert not search(r"x\b{end-half}y", b"xy")
    assert search(r"^\b{start-half}-", b"-")  # after ^ the left side is never a word
    assert search(r"\<[a-z]+\>", b"  abc  ")
    assert not search(r"\<\w+?\>", b"   ")
    assert search(r"(?x) \<  w", b"w")
    assert compile_regex(r"a\<").search(b"a") is False
    assert search(r"\b{2}a", b"a")  # \b{digit} is a repetition of \b


def test_counted_repetitions_are_capped_at_1000_copies() -> None:
    """RE2 expands X{n} into n copies; the copies of a whole pattern (nested counts
    multiply) are capped, so compile time and DFA memory stay bounded."""
    assert search("^w{1000}$", b"w" * 1000)
    assert search("^(?:ab){10}(?:c{9}){10}$", b"ab" * 10 + b"c" * 90)
    for pattern in [
        "w{1001}",
        "w{0,1001}",
        "(?:ab){1000,}",  # {1000,} is X{1000}X*: 1001 copies
        "[a-z]{600}[a-z]{401}",
        "(?:a{10}){101}",
        "(?:(?:a{2}b){20}){30}",
    ]:
        with pytest.raises(RegexError, match="too large") as info:
            compile_regex(pattern)
        assert info.value.offset == pattern.rindex("{"), pattern  # the count over the cap
    rx = compile_regex("(a{1,500})")
    assert rx.first_match(b"aaaa") == [(0, 4), (0, 4)]
    assert search("(?x)^a{ 2 , 3 }$", b"aaa")


def test_class_set_operations_in_byte_mode() -> None:
    assert search("^[a-z&&[^aeiou]]+$", b"bcd")
    assert not search("^[a-z&&[^aeiou]]+$", b"bad")
    assert search("^[a-z--[aeiou]]+$", b"bcd")
    assert not search("^[a-z--[aeiou]]+$", b"bed")
    assert search("^[a-c[w-z]]+$", b"bcw")
    assert not search("^[a-c[w-z]]+$", b"d")
    assert search("^[a-c~~b-d]+$", b"ad")
    assert not search("^[a-c~~b-d]+$", b"b")
    assert search("^[a-c&&b-d--c]$", b"b")  # left to right
    assert not search("^[a-c&&b-d--c]$", b"c")
    assert search("^[^[^a]]$", b"a")
    assert search("^[a&b~c-]+$", b"&~-")  # single & ~ - are literals
    assert search(r"^[\x00-\x1f\xff]+$", b"\x05\xff")
    assert search(r"^[[:alpha:]-z]+$", b"-z")


def test_class_case_folding_in_byte_mode() -> None:
    assert search("(?i)^[a-c--B]+$", b"AC")
    assert not search("(?i)^[a-c--B]+$", b"b")
    assert not search("(?i)[^a]", b"A")
    assert not search("(?i)[[:^upper:]]", b"a")
    assert search("(?i)^[[:upper:]]$", b"a")
    assert search("(?i)^[K]$", b"k")
    assert not search(r"(?i)[\xc9]", b"\xe9")  # only ASCII letters fold


def test_scoped_unicode_group_in_byte_pattern() -> None:
    assert search("^(?u:.)$", "é".encode())
    assert search("^(?u:.)$", "😀".encode())
    assert not search("^(?u:.)$", b"\xff")
    assert not search("^(?u:.)$", b"\xed\xa0\x80")  # an encoded surrogate is not UTF-8
    assert search("^(?u:.).$", "éa".encode())
    assert not search("^(?u:.)$", b"\n")
    assert search("^(?su:.)$", b"\n")
    assert search("^(?u:é+)$", "éé".encode())
    assert not compile_regex("^(?u:.)$").utf8


def test_crlf_flag() -> None:
    assert not search("(?R)^a.b$", b"a\rb")
    assert search("(?R)^a.b$", b"axb")
    assert search("(?Rs)^a.b$", b"a\rb")
    assert search("(?R:x)", b"x")


def test_unicode_perl_classes() -> None:
    assert search(r"(?u)^\w+$", "é_1ǅ".encode())
    assert search(r"(?u)^\w$", "Ⅻ".encode())  # Nl is Alphabetic
    assert search(r"(?u)^\w$", "Ⓐ".encode())  # Other_Alphabetic (So)
    assert search(r"(?u)^\w$", "\u0301".encode())  # a mark
    assert not search(r"(?u)^\W$", "é".encode())
    assert search(r"(?u)^\W$", "€".encode())
    assert search(r"(?u)^\d$", "٣".encode())
    assert not search(r"(?u)^\D$", "٣".encode())
    assert search(r"(?u)^\s$", "\u3000".encode())
    assert search(r"(?u)^\s$", b"\x0b")
    assert not search(r"(?u)^\s$", "\u200b".encode())
    assert search(r"(?u)^\S$", "é".encode())
    assert search(r"(?u)^[\w,]+$", "é,".encode())
    assert not search(r"(?u)^[^\s]$", "\u3000".encode())
    assert search(r"(?u)^[\W]$", b" ")
    assert search(r"(?u)^[\S]$", "é".encode())
    assert search(r"(?u)^[\D]$", "é".encode())
    assert search(r"(?u)\p{Greek}", "α".encode())
    assert search(r"(?u)^[\p{Greek}a]+$", "αa".encode())
    assert search(r"(?u)(?u)a", b"a")  # a redundant (?u) is a no-op


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
        ("(a){2000}", "too large", 3),
        (r"\Z", "invalid escape", 0),
        ("x(?u)a", "u flag", 1),
        ("(?u)(?-u:a)", "(?-u)", 4),
        ("a(?x)b", "x flag", 1),
        (r"\pL", "(?u)", 0),
        ("[é]", "(?u)", 1),
        ("(?u)[a[b]]", "nested", 6),
        ("(?u)[a&&b]", "set operation", 6),
        ("(?u)[a--b]", "set operation", 6),
        # Rust rejects these; RE2 would read them as something else.
        (r"\101", "backreferences", 0),
        (r"a\0", "backreferences", 1),
        ("x{,3}", "counted repetition", 1),
        ("a{", "unclosed", 1),
        ("a{x}", "counted repetition", 1),
        ("{2}", "missing expression", 0),
        ("a{3,2}", "minimum exceeds", 1),
        (r"[\d-z]", "range endpoint", 1),
        (r"[a-\w]", "range endpoint", 3),
        ("[z-a]", "start after end", 1),
        (r"\é", "non-ASCII", 0),
        (r"[\b]", "inside a character class", 1),
        # One-sided word boundaries RE2 cannot check, Unicode word boundaries, CRLF ^ $.
        (r"\<", "surely matches", 0),
        (r"(a)\>", "surely matches", 3),
        (r"\b{end-half}", "surely matches", 0),
        (r"\b{middle}", "unrecognized", 0),
        (r"\b{start", "unclosed", 0),
        (r"(?u)\bé", "Unicode mode", 4),
        (r"(?u)a\B", "Unicode mode", 5),
        (r"(?u)\<a", "Unicode mode", 4),
        ("(?mR)^a", "CRLF", 5),
        ("(?m)(?R)a$", "CRLF", 9),
        # Scoped Unicode mode inside a byte-mode pattern: only literals and . work.
        (r"(?u:\w)", "(?u) group", 4),
        ("(?u:[^a])", "(?u) group", 4),
        ("(?iu:k)", "(?u) group", 5),
        ("(?u)[\\W,]", "\\W", 4),
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
    with pytest.raises(RegexError, match="too large"):
        compile_regex("a{100000}")
    with pytest.raises(RegexError, match="too large"):
        compile_regex(r"(?u)\pL{5000}")


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
    *"ab()[]{}^$.*+?|\\-:&~#ux PiZ1é\n,<>sw",
    *("(?", "(?u)", "(?x)", "(?u:", "(?R)", "(?i)", "[:alpha:]", "\\p{Greek}", "\udcff"),
    *("&&", "--", "~~", "[^", "\\b{start}", "\\b{end-half}", "{2}", "{1001}", "{,3}", "\\x0b"),
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


_TWIN_ITEMS = ["a", "b", "x", "[a-c]", "[^a]", "[b-x\\d]", ".", "\\d", "\\w", "\\s", "\\W", "\\.",
               "-", "/"]
_TWIN_QUANTIFIERS = ["", "", "?", "*", "+", "{0,2}", "{2}", "{1,}", "{2,3}"]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(_TWIN_ITEMS), st.sampled_from(_TWIN_QUANTIFIERS)),
             min_size=1, max_size=5),
    st.booleans(),
    st.lists(st.binary(max_size=9).map(lambda b: b.translate(bytes(b"abx.1 _-/\n\xff"[c % 11]
                                                                   for c in range(256)))),
             min_size=1, max_size=6),
)
def test_python_twin_answers_as_re2(items: list[tuple[str, str]], end: bool,
                                    data: list[bytes]) -> None:
    """Anchored patterns of the simple, linear class run on Python's ``re`` (cheaper to
    call than the re2 binding): same answers as RE2 on every input."""
    from edgerules.lang.regex import _UNANCHORED, _python_twin

    pattern = "^" + "".join(a + q for a, q in items) + ("$" if end else "")
    twin = _python_twin(pattern)
    rx = compile_regex(pattern)
    for value in data:
        want = rx._finder.Match(_UNANCHORED, value, 0, len(value))[0][0] >= 0
        assert rx.search(value) is want, (pattern, value)
        if twin is not None:
            assert (twin.match(value) is not None) is want, (pattern, value)


def test_python_twin_only_for_linear_shapes() -> None:
    from edgerules.lang.regex import _python_twin

    assert _python_twin(r"^/checkout/[a-z]+/?$") is not None
    assert _python_twin(r"^\d{1,3}\.\d{1,3}$") is not None
    for pattern in (r"[a-z]+!", r"^[a-z]+[a-z]$", r"^a*a", r"^(ab)+$", r"^a|b", r"^.*x",
                    r"^(?i)a", r"^a+?b", r"^[[a]]"):
        assert _python_twin(pattern) is None, pattern
    # a 16 KB worst case for backtracking is answered (linear: one start, no retries)
    twin = _python_twin(r"^[a-z]+/?$")
    assert twin.match(b"a" * 16384 + b"!") is None
