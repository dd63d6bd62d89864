"""The compiler's specialised closures (one closure, no MISSING wrapper, for the common
shapes) agree with the naive reference interpreter, on the Context path and through
``matches(dict)``; plus the shared interval helpers (``ipset``) and the regex attributes
the compiler inlines."""

from __future__ import annotations

import ipaddress
import itertools
from typing import Any

import pytest

import edgerules
from edgerules.errors import ContextError
from edgerules.lang.compiler import _own
from edgerules.lang.ipset import interval_test, merge_intervals
from edgerules.lang.regex import compile_regex
from reference_interpreter import evaluate, small_scheme

SCHEME = small_scheme()

EXPRESSIONS = [
    # starts_with / ends_with on a plain field (specialised), an optional one and a
    # non-literal argument (generic path)
    'starts_with(s, "ab")',
    'ends_with(s, "yz")',
    'not starts_with(s, "ab")',
    'starts_with(opt, "ab")',
    "ends_with(s, s2)",
    'starts_with(s, "")',
    # lower()/upper() of a plain field compared with a literal (specialised)
    'lower(s) eq "abc"',
    'upper(s) ne "ABC"',
    'lower(s) contains "bc"',
    'lower(s) in {"abc" "x"}',
    'lower(opt) eq "a"',
    'lower(opt) ne "a"',
    'lower(s) lt "b"',
    # regexes: literal shapes (bytes operations) and real patterns (RE2 called inline)
    's matches "^ab"',
    's matches "yz$"',
    's matches "^abc$"',
    's matches "b"',
    's matches "^a.c$"',
    's matches "(?i)ABC"',
    'opt matches "a"',
    # IP sets: one interval inline, several, both families
    "ip in {10.0.0.0/8}",
    "ip in {2001:db8::/32}",
    "ip in {10.0.0.1..10.0.0.5}",
    "ip in {10.0.0.0/8 192.168.0.0/16}",
    "ip in {10.0.0.0/8 2001:db8::/32}",
    "not ip in {10.0.0.0/8}",
    # fused runs of one-slot leaves (2, 3, more; and / or; in the middle of a chain)
    's eq "a" and b',
    's eq "a" or not b',
    'not b and s eq "a"',
    's eq "a" and s2 eq "b" and i eq 3',
    's eq "a" or s2 eq "b" or i eq 3',
    's eq "a" and s2 eq "b" and i eq 3 and not b',
    's eq "a" or s2 eq "b" or i eq 3 or b',
    'i gt 2 and s eq "a" and s2 eq "b" and i lt 9',
    'i gt 8 or s eq "a" or not b or i lt 2',
    's eq "a" and s eq "b"',
    # a leaf inline next to another condition
    's eq "a" and i gt 3',
    "i gt 3 or not b",
    "b and ip in {10.0.0.0/8}",
    'starts_with(s, "a") or s2 eq "b"',
    # contains (find) on fields, function results and optional fields
    's contains "b"',
    'opt contains "b"',
    'lower(s2) contains ""',
]

IPS = [None, "10.1.2.3", "10.0.0.5", "192.168.1.1", "11.0.0.1", "2001:db8::1", "::1"]
CONTEXTS: list[dict[str, Any]] = [{}]
for s, s2, i, b, ip, opt in itertools.product(
    ["abc", "ABC", "xyz", "a", ""], ["b", "B"], [3, 5, 9], [True, False], IPS[:4], [None, "abz"]
):
    d: dict[str, Any] = {"s": s, "s2": s2, "i": i, "b": b}
    if ip is not None:
        d["ip"] = ip
    if opt is not None:
        d["opt"] = opt
    CONTEXTS.append(d)
CONTEXTS += [{"ip": ip} for ip in IPS[4:]] + [{"ip": ipaddress.ip_address("10.0.0.1")}]


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_fast_paths_agree_with_reference(text: str) -> None:
    f = edgerules.compile(text, SCHEME)
    for fields in CONTEXTS:
        ctx = SCHEME.context(fields)
        expected = evaluate(f._checked, ctx)
        got = f.execute(ctx)
        assert type(got) is bool and got == expected, (text, fields)
        assert f.matches(fields) is expected, (text, fields)


def test_own_copies_bytes_literals_only() -> None:
    lit = b"abc"
    copy = _own(lit)
    assert copy == lit and copy is not lit and type(copy) is bytes
    assert _own(443) == 443 and _own(b"a") == b"a"


def test_merge_intervals() -> None:
    assert merge_intervals([]) == ([], [])
    assert merge_intervals([(5, 9), (1, 2), (3, 4), (8, 12), (20, 20)]) == ([1, 20], [12, 20])
    assert merge_intervals([(1, 10), (2, 3)]) == ([1], [10])


@pytest.mark.parametrize("n", [0, 1, 3, 6, 40])
def test_interval_test_is_exact(n: int) -> None:
    intervals = [(10 * k, 10 * k + 4) for k in range(n)]
    test = interval_test(intervals)
    if n == 0:
        assert test is None
        return
    assert test is not None
    for x in range(-3, 10 * n + 3):
        assert test(x) is any(lo <= x <= hi for lo, hi in intervals), x


def test_regex_exposes_inline_search() -> None:
    literal = compile_regex("^/api/")
    assert literal.literal == (b"/api/", True, False)
    rx = compile_regex("^/api/v[0-9]+$")
    assert rx.literal is None
    for data in (b"/api/v1", b"/api/v", b"x/api/v2"):
        inline = rx.re2_match(rx.anchor, data, 0, len(data))[0][0] >= 0
        assert inline is rx.search(data)
    assert compile_regex("(?u)é").literal is None  # UTF-8 mode: never the bytes shortcut


def test_matches_keeps_coercion_and_alias_rules() -> None:
    f = edgerules.compile('s eq "a" and i eq 3 and b', SCHEME)
    assert f.matches({"s": "a", "i": 3, "b": True})
    assert f.matches({"alias.s": "a", "i": 3, "b": True})
    assert f.matches({"s": "a", "alias.s": "x", "i": 3, "b": True})  # the canonical name wins
    assert f.matches({"s": b"a", "i": 3, "b": True})
    # A wrong value raises when evaluation reads it (reads are lazy: a field that a
    # short-circuit skips is not read, so not checked).
    for bad in ({"s": 1}, {"i": "3"}, {"i": True}, {"i": 1 << 63}, {"b": 1}, {"s": "\ud800"}):
        with pytest.raises(ContextError):
            f.matches({"s": "a", "i": 3, "b": True, **bad})
    assert f.matches({"s": "x", "i": "3"}) is False  # i is never read


def test_ip_text_parsing_matches_ipaddress() -> None:
    from edgerules.lang.context import _parse_ip

    texts = ["0.0.0.0", "1.2.3.4", "255.255.255.255", "192.0.2.1", "10.0.0.01", "01.2.3.4",
             "256.1.1.1", "1.2.3", "1.2.3.4.5", " 1.2.3.4", "1.2.3.4\n", "1.2.3.4 ", "1..3.4",
             "١.2.3.4", "1.2.3.-4", "+1.2.3.4", "1.2.3.4/32", "::1", "2001:db8::1",
             "::ffff:1.2.3.4", "fe80::1%eth0", "", "a.b.c.d", "999.1.1.1", "1.2.3.1000"]
    texts += [f"{a}.{b}.7.{c}" for a in (0, 9, 99, 199, 255, 256) for b in (0, 10, 255)
              for c in (1, 250, 300)]
    for text in texts:
        try:
            expected: object = ipaddress.ip_address(text)
        except ValueError:
            expected = ValueError
        try:
            got: object = _parse_ip(text)
        except ValueError:
            got = ValueError
        assert got == expected and type(got) is type(expected), text


def test_fused_leaves_are_not_confused_with_later_closures() -> None:
    """Leaves are recognised by ``id(closure)``; a fused leaf is discarded, so the
    compiler must keep it alive or a later closure could get its id (and be fused as a
    leaf it is not). The rule below mixes fused leaves with closures built after them."""
    from edgerules.lang.engine import _compile
    from edgerules.lang.scheme import default_scheme

    scheme = default_scheme()
    text = (
        '((http.host eq "api.example.com" and http.request.uri.path eq "/api/v2/auth") or '
        '(http.host matches "^(www|store|blog)\\.example\\.com" and '
        'http.request.uri.path contains "wp-login.php") or '
        'ip.geoip.country in {"CN" "US"} or ip.geoip.asnum in {12345 54321}) '
        "and not ip.src in {11.22.33.0/24}"
    )
    fields = {"http.host": "blog.example.com", "http.request.uri.path": "/wp-login.php",
              "ip.src": "198.51.100.1", "ip.src.country": "FR", "ip.src.asnum": 1}
    for _ in range(20):
        f = _compile(text, scheme, None, None)
        assert f.execute(scheme.context(fields)) is True
        assert f.trace(fields).value is True


def test_trace_closures_are_built_on_first_trace_only() -> None:
    from edgerules.lang.engine import _compile
    from edgerules.lang.scheme import default_scheme

    f = _compile('http.host eq "a" and not ssl', default_scheme(), None, None)
    assert f._compiled is None and f._traced is None  # nothing compiled before use
    assert f.execute(default_scheme().context({"http.host": "a"})) is True
    assert f._closures()  # (the plain closures, when asked for)
    assert f._compiled is not None and f._compiled.closures == {} and f._traced is None
    assert f.trace({"http.host": "a"}).value is True
    assert f._traced is not None and f._traced.closures
