"""Built-in functions (docs/functions.md), called through FUNCTIONS[name].check/bind
directly with ArgInfo, as the checker does."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgerules.lang.functions import FUNCTIONS, ArgInfo, ArgumentProblem, url_decode
from edgerules.lang.types import BOOL, BYTES, INT, IP, MISSING, Array, Map, Type

# --- helpers -----------------------------------------------------------------------------


def _type_of(value: object) -> Type:
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, bytes):
        return BYTES
    if isinstance(value, int):
        return INT
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return IP
    raise TypeError(value)


class A:
    """An argument: its ArgInfo and its runtime value."""

    def __init__(self, info: ArgInfo, value: object) -> None:
        self.info = info
        self.value = value


def L(value: object) -> A:  # a literal
    if isinstance(value, str):
        value = value.encode()
    return A(ArgInfo(_type_of(value), True, False, value, False), value)


def F(t: Type, value: object = MISSING, name: str | None = None, unpacked: bool = False) -> A:  # a field
    if isinstance(value, str):
        value = value.encode()
    return A(ArgInfo(t, False, True, None, unpacked, field=name), value)


def E(t: Type, value: object = MISSING) -> A:  # another expression (function call, predicate)
    if isinstance(value, str):
        value = value.encode()
    return A(ArgInfo(t, False, False, None, False), value)


def S(value: str | bytes) -> A:
    return F(BYTES, value)


def call(name: str, *args: A) -> object:
    fn = FUNCTIONS[name]
    infos = [a.info for a in args]
    fn.check(infos)
    impl = fn.bind(infos)
    return impl(*[a.value for a in args])


def problem(name: str, *args: A) -> ArgumentProblem:
    with pytest.raises(ArgumentProblem) as info:
        FUNCTIONS[name].check([a.info for a in args])
    return info.value


def rtype(name: str, *args: A) -> Type:
    return FUNCTIONS[name].check([a.info for a in args])


# --- catalogue -------------------------------------------------------------------------


def test_every_function_is_there() -> None:
    expected = {
        "bit_slice", "cidr", "cidr6", "concat", "decode_base64", "encode_base64",
        "ends_with", "has_key", "has_value", "is_timed_hmac_valid_v0", "join", "len",
        "lookup_json_integer", "lookup_json_string", "lower", "regex_replace",
        "remove_bytes", "remove_query_args", "sha256", "split", "starts_with",
        "substring", "to_string", "upper", "url_decode", "uuidv4", "wildcard_replace",
        # added in 2026
        "coalesce", "hash_in_range", "trim", "trim_start", "trim_end",
        "is_jwt_present", "is_jwt_valid",
    }
    assert set(FUNCTIONS) == expected
    for name, fn in FUNCTIONS.items():
        assert fn.name == name
    assert FUNCTIONS["regex_replace"].once_per_expression  # type: ignore[attr-defined]
    assert FUNCTIONS["wildcard_replace"].once_per_expression  # type: ignore[attr-defined]
    assert not FUNCTIONS["lower"].once_per_expression  # type: ignore[attr-defined]


def test_arity_errors() -> None:
    p = problem("lower")
    assert p.arg_index is None and "1 argument" in p.message
    assert "2 to 32" in problem("concat", L("a")).message
    assert "at least 2" in problem("coalesce", L("a")).message
    assert "2 to 3" in problem("substring", L("a")).message


def test_star_only_in_first_argument() -> None:
    p = problem("starts_with", S("a"), F(BYTES, unpacked=True))
    assert p.arg_index == 1 and "[*]" in p.message


def test_bit_slice_rejected() -> None:
    p = problem("bit_slice", L("ip"), L(0), L(8))
    assert "Magic/Network Firewall" in p.message and p.arg_index is None


# --- IP --------------------------------------------------------------------------------


def test_cidr_doc_example() -> None:
    ip = ipaddress.ip_address
    assert call("cidr", F(IP, ip("113.10.0.2")), L(24), L(24)) == ip("113.10.0.0")
    assert call("cidr", F(IP, ip("2001:db8:1234:5678::1")), L(24), L(32)) == ip("2001:db8::")
    assert call("cidr", F(IP, ip("10.1.2.3")), L(32), L(128)) == ip("10.1.2.3")
    assert call("cidr", F(IP, ip("10.1.2.3")), L(1), L(1)) == ip("0.0.0.0")
    assert call("cidr", F(IP), L(24), L(24)) is MISSING
    assert rtype("cidr", F(IP), L(24), L(24)) == IP


def test_cidr_restrictions() -> None:
    assert problem("cidr", L(ipaddress.ip_address("1.2.3.4")), L(24), L(24)).arg_index == 0
    # "must be a field, that is, it cannot be a literal": a computed address is accepted
    assert rtype("cidr", E(IP), L(24), L(24)) == IP
    assert problem("cidr", F(IP), L(0), L(24)).arg_index == 1
    assert problem("cidr", F(IP), L(33), L(24)).arg_index == 1
    assert problem("cidr", F(IP), L(24), L(129)).arg_index == 2
    assert problem("cidr", F(IP), F(INT), L(24)).arg_index == 1
    assert problem("cidr", F(BYTES), L(24), L(24)).arg_index == 0


def test_cidr6() -> None:
    ip = ipaddress.ip_address
    assert call("cidr6", F(IP, ip("113.10.0.2")), L(64)) == ip("113.10.0.2")
    assert call("cidr6", F(IP, ip("2001:db8:1:2:3::1")), L(64)) == ip("2001:db8:1:2::")
    assert problem("cidr6", F(IP), L(0)).arg_index == 1
    assert problem("cidr6", F(IP), L(129)).arg_index == 1


# --- concat and friends ----------------------------------------------------------------


def test_concat_doc_example() -> None:
    assert call("concat", L("String1"), L(" "), L("String"), L("2")) == b"String1 String2"


def test_concat_missing_is_empty_and_arrays() -> None:
    assert call("concat", S("a"), F(BYTES, MISSING), L("b")) == b"ab"
    assert call("concat", F(BYTES, MISSING), F(BYTES, MISSING)) == b""
    arr = Array(BYTES)
    assert call("concat", F(arr, (b"a",)), F(arr, (b"b", b"c"))) == (b"a", b"b", b"c")
    assert call("concat", F(arr, MISSING), F(arr, (b"b",))) == (b"b",)
    assert rtype("concat", F(arr), F(arr)) == arr
    assert problem("concat", S("a"), F(arr)).arg_index == 1
    assert problem("concat", L(1), L(2)).arg_index == 0
    assert problem("concat", F(arr), F(Array(INT))).arg_index == 1


def test_lower_upper_ascii_only() -> None:
    assert call("lower", S("AbC-É")) == "abc-É".encode()
    assert call("upper", S("abc-é")) == "ABC-é".encode()
    assert call("lower", F(BYTES, MISSING)) is MISSING
    assert problem("lower", F(INT)).arg_index == 0


def test_starts_ends_with() -> None:
    assert call("starts_with", S("/api/x"), L("/api")) is True
    assert call("starts_with", S("/API/x"), L("/api")) is False
    assert call("ends_with", S("a.html"), L(".html")) is True
    assert call("ends_with", S("a.html"), S(".htm")) is False
    assert call("starts_with", F(BYTES, MISSING), L("a")) is MISSING
    assert call("starts_with", E(BYTES, "abc"), L("a")) is True  # a function result is fine
    p = problem("starts_with", L("abc"), L("a"))
    assert p.arg_index == 0 and "literal" in p.message
    assert problem("ends_with", L("abc"), L("c")).arg_index == 0
    assert problem("ends_with", S("x"), L(1)).arg_index == 1
    assert rtype("ends_with", S("x"), L("x")) == BOOL


def test_len() -> None:
    assert call("len", S("héllo")) == 6
    assert call("len", F(Array(BYTES), (b"a", b"b"))) == 2
    assert call("len", F(Map(Array(BYTES)), {b"a": (b"1",)})) == 1
    assert call("len", F(BYTES, MISSING)) is MISSING
    assert problem("len", F(INT)).arg_index == 0


def test_join() -> None:
    arr = Array(BYTES)
    assert call("join", F(arr, (b"a", b"b", b"c")), L(", ")) == b"a, b, c"
    assert call("join", F(arr, ()), L(",")) == b""
    assert call("join", F(arr, (b"only",)), L(",")) == b"only"
    assert call("join", F(arr, MISSING), L(",")) is MISSING
    assert problem("join", F(Array(INT)), L(",")).arg_index == 0


def test_remove_bytes_doc_example() -> None:
    assert call("remove_bytes", S("www.cloudflare.com"), L(b"\x2e\x77")) == b"cloudflarecom"
    assert call("remove_bytes", S("abc"), L("")) == b"abc"


def test_substring_doc_examples() -> None:
    assert call("substring", L("asdfghjk"), L(2), L(5)) == b"dfg"
    assert call("substring", L("asdfghjk"), L(2)) == b"dfghjk"
    assert call("substring", L("asdfghjk"), L(-2)) == b"jk"
    assert call("substring", L("asdfghjk"), L(0), L(-2)) == b"asdfgh"


def test_substring_out_of_range_clamps() -> None:
    assert call("substring", L("abc"), L(10)) == b""
    assert call("substring", L("abc"), L(-10)) == b"abc"
    assert call("substring", L("abc"), L(2), L(1)) == b""
    assert call("substring", L("abc"), L(1), L(100)) == b"bc"
    assert call("substring", F(BYTES, MISSING), L(1)) is MISSING
    assert call("substring", S("abcdef"), F(INT, 2), F(INT, 4)) == b"cd"


def test_to_string() -> None:
    assert call("to_string", F(INT, 443)) == b"443"
    assert call("to_string", F(INT, -5)) == b"-5"
    assert call("to_string", E(BOOL, True)) == b"true"
    assert call("to_string", F(BOOL, False)) == b"false"
    assert call("to_string", F(IP, ipaddress.ip_address("2001:DB8::1"))) == b"2001:db8::1"
    assert call("to_string", F(IP, ipaddress.ip_address("192.0.2.1"))) == b"192.0.2.1"
    assert problem("to_string", S("x")).arg_index == 0


def test_sha256_raw_digest() -> None:
    assert call("sha256", S("abc")) == hashlib.sha256(b"abc").digest()
    assert rtype("sha256", S("abc")) == BYTES


def test_split() -> None:
    assert call("split", S("a,,b"), L(","), L(10)) == (b"a", b"", b"b")
    assert call("split", S("a,b,c,d"), L(","), L(2)) == (b"a", b"b,c,d")
    assert call("split", S("a,b"), L(","), L(1)) == (b"a,b",)
    assert call("split", S(""), L(",")) == (b"",)
    assert call("split", S("a::b"), L("::")) == (b"a", b"b")
    assert call("split", F(BYTES, MISSING), L(","), L(2)) is MISSING
    assert rtype("split", S("x"), L(","), L(2)) == Array(BYTES)
    assert problem("split", S("x"), L(""), L(2)).arg_index == 1
    assert problem("split", S("x"), S(","), L(2)).arg_index == 1
    assert problem("split", S("x"), L(","), L(0)).arg_index == 2
    assert problem("split", S("x"), L(","), L(129)).arg_index == 2
    assert problem("split", S("x"), L(","), F(INT)).arg_index == 2


def test_split_default_limit_is_128() -> None:
    parts = call("split", S(",".join(["x"] * 200)), L(","))
    assert isinstance(parts, tuple) and len(parts) == 128


# --- base64 --------------------------------------------------------------------------------


def test_encode_base64_doc_examples() -> None:
    assert call("encode_base64", L("hello world")) == b"aGVsbG8gd29ybGQ"
    assert call("encode_base64", L("hello world"), L("p")) == b"aGVsbG8gd29ybGQ="
    assert call("encode_base64", L(b"\xfb\xff"), L("u")) == b"-_8"
    assert call("encode_base64", L(b"\xfb\xff"), L("up")) == b"-_8="
    assert call("encode_base64", L(b"\xfb\xff"), L("pu")) == b"-_8="
    assert call("encode_base64", L(b"\xfb\xff")) == b"+/8"
    assert call("encode_base64", F(BYTES, MISSING)) is MISSING
    assert problem("encode_base64", S("x"), L("x")).arg_index == 1
    assert problem("encode_base64", S("x"), L("uu")).arg_index == 1
    assert problem("encode_base64", S("x"), S("u")).arg_index == 1


def test_decode_base64() -> None:
    assert call("decode_base64", S("MTIzYWJj")) == b"123abc"
    assert call("decode_base64", S("aGVsbG8gd29ybGQ")) == b"hello world"
    assert call("decode_base64", S("aGVsbG8gd29ybGQ=")) == b"hello world"
    assert call("decode_base64", S("-_8")) == b"\xfb\xff"
    assert call("decode_base64", S("")) == b""
    for bad in ("a", "a===", "ab=c", "!!!!", "aGVs bG8=", "aGVsbG8=="):
        assert call("decode_base64", S(bad)) is MISSING, bad
    assert call("decode_base64", F(BYTES, MISSING)) is MISSING
    assert problem("decode_base64", L("MTIz")).arg_index == 0


# --- maps / arrays -----------------------------------------------------------------------


def test_has_key_has_value() -> None:
    headers = Map(Array(BYTES))
    h = {b"x-custom-header": (b"1",)}
    assert call("has_key", F(headers, h), L("x-custom-header")) is True
    assert call("has_key", F(headers, h), L("X-Custom-Header")) is False
    assert problem("has_key", F(Array(BYTES)), L("a")).arg_index == 0
    arr = Array(BYTES)
    assert call("has_value", E(arr, (b"GB", b"FR")), F(BYTES, "FR")) is True
    assert call("has_value", E(arr, (b"GB", b"FR")), L("DE")) is False
    assert call("has_value", F(Map(INT), {b"a": 3}), L(3)) is True
    # documented: the value is of a primitive type, so no array of arrays
    assert problem("has_value", F(headers, h), F(arr, (b"1",))).arg_index == 0
    assert call("has_value", E(arr, MISSING), L("x")) is MISSING
    assert problem("has_value", F(arr), L(1)).arg_index == 1
    assert problem("has_value", S("x"), L("x")).arg_index == 0


def test_has_value_with_split_changelog_example() -> None:
    split_fn = FUNCTIONS["split"]
    infos = [S("").info, L(",").info]
    split_fn.check(infos)
    parts = split_fn.bind(infos)(b"GB,FR,DE", b",")
    assert call("has_value", E(Array(BYTES), parts), F(BYTES, "FR")) is True


# --- JSON ----------------------------------------------------------------------------------


DOC = b'{"a": {"b": [10, "x", 42.0, true, {"c": "d"}]}, "n": -7, "big": 99999999999999999999}'


def test_lookup_json_integer() -> None:
    assert call("lookup_json_integer", S(DOC), L("n")) == -7
    assert call("lookup_json_integer", S(DOC), L("a"), L("b"), L(0)) == 10
    assert call("lookup_json_integer", S(DOC), L("a"), L("b"), L(2)) is MISSING  # 42.0
    assert call("lookup_json_integer", S(DOC), L("a"), L("b"), L(3)) is MISSING  # true
    assert call("lookup_json_integer", S(DOC), L("big")) is MISSING  # beyond 64 bits
    assert call("lookup_json_integer", S(DOC), L("a"), L("b"), L(9)) is MISSING
    assert call("lookup_json_integer", S(DOC), L("zz")) is MISSING
    assert call("lookup_json_integer", S(DOC), L(0)) is MISSING
    assert call("lookup_json_integer", S("not json"), L("a")) is MISSING
    assert call("lookup_json_integer", S(b'{"a": NaN}'), L("a")) is MISSING
    assert call("lookup_json_integer", S(b"[" * 100000), L(0)) is MISSING
    assert call("lookup_json_integer", S(b"\xff\xfe"), L("a")) is MISSING
    assert call("lookup_json_integer", S(DOC), F(BYTES, "n")) == -7
    assert call("lookup_json_integer", S(DOC), F(BYTES, MISSING)) is MISSING
    assert problem("lookup_json_integer", S(DOC), L(-1)).arg_index == 1
    assert problem("lookup_json_integer", S(DOC), F(BOOL)).arg_index == 1
    assert rtype("lookup_json_integer", S(DOC), L("n")) == INT


def test_lookup_json_string() -> None:
    assert call("lookup_json_string", S(DOC), L("a"), L("b"), L(1)) == b"x"
    assert call("lookup_json_string", S(DOC), L("a"), L("b"), L(4), L("c")) == b"d"
    assert call("lookup_json_string", S(DOC), L("n")) is MISSING
    assert call("lookup_json_string", S(b'{"k": "\\u00e9"}'), L("k")) == "é".encode()
    assert call("lookup_json_string", S(b'{"k": "\\ud800"}'), L("k")) is MISSING
    assert rtype("lookup_json_string", S(DOC), L("n")) == BYTES


# --- url_decode ------------------------------------------------------------------------------


def test_url_decode_doc_examples() -> None:
    assert call("url_decode", S("%2520")) == b"%20"
    assert call("url_decode", S("%2520"), L("r")) == b" "
    assert call("url_decode", S("a+b%41")) == b"a bA"


def test_url_decode_options_and_malformed() -> None:
    assert call("url_decode", S("%u00e9")) == b"%u00e9"
    assert call("url_decode", S("%u00e9"), L("u")) == "é".encode()
    assert call("url_decode", S("%uD83D%uDE00"), L("u")) == "😀".encode()
    assert call("url_decode", S("%uD83D"), L("u")) == b"%uD83D"  # lone surrogate kept
    assert call("url_decode", S("%25u00e9"), L("ur")) == "é".encode()
    assert call("url_decode", S("%25u00e9"), L("ru")) == "é".encode()
    assert call("url_decode", S("%zz%4%")) == b"%zz%4%"
    assert call("url_decode", S("100%")) == b"100%"
    assert call("url_decode", S("%2B")) == b"+"
    assert call("url_decode", S("%2B"), L("r")) == b" "
    assert call("url_decode", F(BYTES, MISSING)) is MISSING
    assert problem("url_decode", L("%20")).arg_index == 0
    assert problem("url_decode", S("x"), L("x")).arg_index == 1
    assert problem("url_decode", S("x"), L("rr")).arg_index == 1
    assert problem("url_decode", S("x"), S("r")).arg_index == 1


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40).map(lambda b: bytes(b"%+uU0aFg2519D8"[x % 14] for x in b) + b[:3]),
       st.sampled_from(["", "r", "u", "ru"]))
def test_url_decode_never_raises(data: bytes, opts: str) -> None:
    out = url_decode(data, repeat="r" in opts, unicode="u" in opts)
    assert isinstance(out, bytes)
    assert len(out) <= len(data)
    if not opts and b"%" not in data:
        assert out == data.replace(b"+", b" ")


def test_url_decode_matches_stdlib_on_plain_escapes() -> None:
    data = b"a%20b+c%2Fd%41%e9"
    assert url_decode(data) == urllib.parse.unquote_to_bytes(data.replace(b"+", b" "))


# --- replacements --------------------------------------------------------------------------


def test_regex_replace() -> None:
    assert call("regex_replace", S("/foo/bar"), L("^/foo/(.*)$"), L("/baz/${1}")) == b"/baz/bar"
    assert call("regex_replace", S("aaa"), L("a"), L("b")) == b"baa"  # first match only
    assert call("regex_replace", S("xyz"), L("a"), L("b")) == b"xyz"  # no match
    assert call("regex_replace", S("cost"), L("o"), L("$$")) == b"c$st"
    assert call("regex_replace", S("ab"), L("(x)?b"), L("[${1}]")) == b"a[]"
    assert call("regex_replace", S("ABC"), L("b"), L("x")) == b"ABC"  # case-sensitive
    assert call("regex_replace", S("ABC"), L("(?i)b"), L("x")) == b"AxC"
    assert call("regex_replace", S("a\\b"), L("\\\\"), L("/")) == b"a/b"
    assert call("regex_replace", S("ab"), L("(a)(b)"), L("${2}${1}${0}")) == b"baab"
    assert call("regex_replace", F(BYTES, MISSING), L("a"), L("b")) is MISSING


def test_regex_replace_restrictions() -> None:
    assert problem("regex_replace", S("x"), S("a"), L("b")).arg_index == 1
    assert problem("regex_replace", S("x"), L("a"), S("b")).arg_index == 2
    p = problem("regex_replace", S("x"), L("(?=a)"), L("b"))
    assert p.arg_index == 1 and "look-around" in p.message
    assert problem("regex_replace", S("x"), L("(a)"), L("${2}")).arg_index == 2
    assert problem("regex_replace", S("x"), L("(a)" * 9), L("${9}")).arg_index == 2
    assert problem("regex_replace", S("x"), L("(a)"), L("$1")).arg_index == 2
    assert problem("regex_replace", S("x"), L("(a)"), L("cost $")).arg_index == 2
    assert problem("regex_replace", S("x"), L("(a)"), L("${1")).arg_index == 2


def test_wildcard_replace() -> None:
    src = "https://www.example.com/a/page.html"
    assert call(
        "wildcard_replace", S(src), L("https://*.example.com/*/page.html"),
        L("https://example.com/${1}/${2}"),
    ) == b"https://example.com/www/a"
    assert call("wildcard_replace", S("/Foo/X"), L("/foo/*"), L("/bar/${1}")) == b"/bar/X"
    assert call("wildcard_replace", S("/Foo/X"), L("/foo/*"), L("/bar/${1}"), L("s")) == b"/Foo/X"
    assert call("wildcard_replace", S("/a/b/c"), L("/*/*"), L("${1}|${2}")) == b"a|b/c"
    assert call("wildcard_replace", S("/a"), L("/*"), L("$$${1}")) == b"$a"
    assert call("wildcard_replace", F(BYTES, MISSING), L("*"), L("x")) is MISSING


def test_wildcard_replace_restrictions() -> None:
    assert problem("wildcard_replace", L("x"), L("*"), L("x")).arg_index == 0
    assert problem("wildcard_replace", S("x"), S("*"), L("x")).arg_index == 1
    assert problem("wildcard_replace", S("x"), L("a**"), L("x")).arg_index == 1
    assert problem("wildcard_replace", S("x"), L("*"), L("${2}")).arg_index == 2
    assert problem("wildcard_replace", S("x"), L("*"), L("x"), L("i")).arg_index == 3


def test_remove_query_args() -> None:
    q = "order=asc&country=GB&order=desc&x"
    f = F(BYTES, q, name="http.request.uri.query")
    assert call("remove_query_args", f, L("order")) == b"country=GB&x"
    assert call("remove_query_args", f, L("order"), L("x")) == b"country=GB"
    assert call("remove_query_args", f, L("nope")) == q.encode()
    assert call("remove_query_args", F(BYTES, "a=1", name="raw.http.request.uri.query"), L("a")) == b""
    assert problem("remove_query_args", F(BYTES, name="http.host"), L("a")).arg_index == 0
    assert problem("remove_query_args", L("a=1"), L("a")).arg_index == 0
    assert problem("remove_query_args", f, S("a")).arg_index == 1


def test_uuidv4() -> None:
    seed = bytes(range(32))
    out = call("uuidv4", F(BYTES, seed))
    assert out == b"00010203-0405-4607-8809-0a0b0c0d0e0f"
    short = call("uuidv4", F(BYTES, b"x"))
    assert isinstance(short, bytes) and len(short) == 36 and short[14:15] == b"4"
    assert short[19:20] in b"89ab"


# --- HMAC -----------------------------------------------------------------------------------


def _token(key: bytes, message: bytes, ts: int, separator: bytes = b"", urlsafe: bool = False) -> bytes:
    digest = hmac.new(key, message + str(ts).encode(), hashlib.sha256).digest()
    if urlsafe:
        mac = base64.urlsafe_b64encode(digest).rstrip(b"=")
    else:
        mac = urllib.parse.quote(base64.b64encode(digest), safe="").encode()
    return message + separator + str(ts).encode() + b"-" + mac


def hmac_call(token: bytes | object, now: int, *extra: A, ttl: int = 3600, key: str = "secret") -> object:
    return call("is_timed_hmac_valid_v0", L(key), E(BYTES, token), L(ttl), F(INT, now), *extra)


def test_hmac_doc_layout() -> None:
    ts = 1484063787
    token = _token(b"secret", b"/download/cat.jpg", ts, b"?verify=")
    assert b"?verify=1484063787-" in token and b"%3D" in token
    assert hmac_call(token, ts + 10, L(8)) is True
    assert hmac_call(token, ts + 3599, L(8)) is True
    assert hmac_call(token, ts + 3600, L(8)) is False  # current < ts + ttl
    assert hmac_call(token, ts + 10, L(8), key="other") is False
    assert hmac_call(token, ts + 10, L(7)) is False  # separator length matters
    assert hmac_call(token.replace(b"cat", b"dog"), ts + 10, L(8)) is False


def test_hmac_no_separator_and_urlsafe() -> None:
    ts = 1700000000
    token = _token(b"k", b"msg", ts)
    assert hmac_call(token, ts, key="k") is True
    st_token = _token(b"k", b"msg", ts, urlsafe=True)
    assert len(st_token) == len(b"msg") + 10 + 1 + 43
    assert hmac_call(st_token, ts, L(0), L("s"), key="k") is True
    assert hmac_call(token, ts, L(0), L("s"), key="k") is False  # wrong encoding


def test_hmac_malformed_and_missing() -> None:
    assert hmac_call(b"", 0) is False
    assert hmac_call(b"x" * 100, 0) is False
    assert hmac_call(b"1234567890-" + b"A" * 43, 0) is False  # no message
    assert hmac_call(MISSING, 0) is False
    assert call("is_timed_hmac_valid_v0", L("k"), E(BYTES, b"x"), L(1), F(INT, MISSING)) is False


def test_hmac_restrictions() -> None:
    tok = E(BYTES)
    now = F(INT)
    assert problem("is_timed_hmac_valid_v0", S("k"), tok, L(1), now).arg_index == 0
    assert problem("is_timed_hmac_valid_v0", L("k"), tok, F(INT), now).arg_index == 2
    assert problem("is_timed_hmac_valid_v0", L("k"), tok, L(-1), now).arg_index == 2
    assert problem("is_timed_hmac_valid_v0", L("k"), tok, L(1), now, F(INT)).arg_index == 4
    assert problem("is_timed_hmac_valid_v0", L("k"), tok, L(1), now, L(0), L("x")).arg_index == 5
    assert rtype("is_timed_hmac_valid_v0", L("k"), tok, L(1), now) == BOOL


# --- never raise -----------------------------------------------------------------------------


_VALUES = st.one_of(st.binary(max_size=30), st.just(MISSING))


@settings(max_examples=100, deadline=None)
@given(_VALUES, _VALUES)
def test_string_functions_never_raise(a: object, b: object) -> None:
    for name, args in [
        ("lower", [F(BYTES, a)]),
        ("decode_base64", [F(BYTES, a)]),
        ("encode_base64", [F(BYTES, a), L("up")]),
        ("starts_with", [F(BYTES, a), F(BYTES, b)]),
        ("concat", [F(BYTES, a), F(BYTES, b)]),
        ("lookup_json_string", [F(BYTES, a), F(BYTES, b)]),
        ("lookup_json_integer", [F(BYTES, a), L(0)]),
        ("remove_bytes", [F(BYTES, a), F(BYTES, b)]),
        ("url_decode", [F(BYTES, a), L("ru")]),
        ("uuidv4", [F(BYTES, a)]),
        ("sha256", [F(BYTES, a)]),
        ("split", [F(BYTES, a), L(",")]),
        ("regex_replace", [F(BYTES, a), L("(.)(.)?"), L("${2}${1}")]),
        ("wildcard_replace", [F(BYTES, a), L("*a*"), L("${2}${1}")]),
        ("substring", [F(BYTES, a), L(-3), L(2)]),
    ]:
        call(name, *args)
    hmac_call(a, 0, L(3))


def test_hmac_doc_example_layout_splits() -> None:
    from edgerules.lang.functions import split_hmac_token

    token = b"/download/cat.jpg?verify=1484063787-IaLGSmELTvlhfd0ItdN6PhhHTFhzx73EX8uy%2FcSDiIU%3D"
    assert split_hmac_token(token, 8) == (
        b"/download/cat.jpg",
        b"1484063787",
        b"IaLGSmELTvlhfd0ItdN6PhhHTFhzx73EX8uy%2FcSDiIU%3D",
    )
    assert split_hmac_token(token, 40) is None  # no room for a message


# --- added in 2026: coalesce --------------------------------------------------------------


def test_coalesce_first_present() -> None:
    assert call("coalesce", S(MISSING), L("/")) == b"/"  # type: ignore[arg-type]
    assert call("coalesce", S("/a"), L("/")) == b"/a"
    assert call("coalesce", E(INT, MISSING), E(INT, MISSING), L(0)) == 0
    assert call("coalesce", E(INT, 5), E(INT, MISSING), L(0)) == 5


def test_coalesce_all_missing_is_missing() -> None:
    assert call("coalesce", S(MISSING), S(MISSING)) is MISSING  # type: ignore[arg-type]
    assert call("coalesce", S(MISSING), S(MISSING), S(MISSING)) is MISSING  # type: ignore[arg-type]


def test_coalesce_result_type_and_rules() -> None:
    assert rtype("coalesce", E(INT), L(0)) == INT
    assert rtype("coalesce", F(Array(BYTES)), F(Array(BYTES))) == Array(BYTES)
    err = problem("coalesce", S("a"), L(1))
    assert err.arg_index == 1 and "one type" in err.message
    assert "at least 2" in problem("coalesce", S("a")).message


# --- hash_in_range ----------------------------------------------------------------------

# Fixed vectors: these buckets must never change (same bucket across processes, machines
# and versions). BLAKE2b-64 of the framed sources, multiply-shift into [min, max].
_HASH_VECTORS = [
    ([b""], 0xE9D9775830AE5DB7, 92),
    ([b"0123456789abcdef"], 0x8FE1DAC25E9D1688, 56),
    ([b"a", b"b"], 0x45B452742C5CC704, 27),
    ([b"ab"], 0xC3165A14BAA6C093, 76),
    ([42], 0xB593FDE6C74FE201, 71),
    ([-1], 0x7C0ABC5E8F70E7F9, 48),
    ([True], 0x7BABEAB21BF05F8C, 48),
    ([False], 0xD191FBCE71DE7D5B, 82),
    ([ipaddress.ip_address("192.0.2.1")], 0x7714ED7FE6342FF3, 46),
    ([ipaddress.ip_address("2001:db8::1")], 0xA9539CB1A0537A21, 66),
    ([b"user-1234", 7], 0x9BC8E0AFAE9222F6, 61),
]


@pytest.mark.parametrize(("sources", "h", "in_0_100"), _HASH_VECTORS, ids=repr)
def test_hash_in_range_fixed_vectors(sources: list, h: int, in_0_100: int) -> None:
    from edgerules.lang.hashing import stable_hash64

    assert stable_hash64(sources) == h
    args = [E(_type_of(v), v) for v in sources]
    assert call("hash_in_range", L(0), L(100), *args) == in_0_100
    assert in_0_100 == (h * 101) >> 64


def test_hash_encoding_is_the_documented_one() -> None:
    # docs/functions.md: String = 0x01 + 8-byte length + bytes, Integer = 0x02 + 8 bytes.
    from edgerules.lang.hashing import encode_sources, stable_hash64

    framed = b"\x01" + (3).to_bytes(8, "big") + b"abc" + b"\x02" + (-2).to_bytes(8, "big", signed=True)
    assert encode_sources([b"abc", -2]) == framed
    digest = hashlib.blake2b(framed, digest_size=8).digest()
    assert stable_hash64([b"abc", -2]) == int.from_bytes(digest, "big")
    # framing: two sources never collide with their concatenation
    assert encode_sources([b"a", b"b"]) != encode_sources([b"ab"])


def test_hash_in_range_bounds_inclusive_and_spread() -> None:
    seen = {call("hash_in_range", L(1), L(6), S(f"seed-{i}")) for i in range(400)}
    assert seen == {1, 2, 3, 4, 5, 6}
    assert call("hash_in_range", L(7), L(7), S("x")) == 7
    low = sum(call("hash_in_range", L(0), L(99), S(f"r{i}")) < 10 for i in range(2000))  # type: ignore[operator]
    assert 120 < low < 280  # about 10 %


def test_hash_in_range_one_string_fast_path_agrees() -> None:
    from edgerules.lang.hashing import bucket, stable_hash64

    for seed in (b"", b"x", b"0123456789abcdef" * 5):
        assert call("hash_in_range", L(-5), L(5), S(seed)) == bucket(stable_hash64([seed]), -5, 5)


def test_hash_in_range_missing_and_rules() -> None:
    assert call("hash_in_range", L(0), L(9), S(MISSING)) is MISSING  # type: ignore[arg-type]
    assert call("hash_in_range", L(0), L(9), S("a"), E(INT, MISSING)) is MISSING
    assert rtype("hash_in_range", L(0), L(9), S("a")) == INT
    assert problem("hash_in_range", E(INT, 0), L(9), S("a")).arg_index == 0
    assert "literal" in problem("hash_in_range", L(0), E(INT, 9), S("a")).message
    err = problem("hash_in_range", L(10), L(9), S("a"))
    assert err.arg_index == 1 and "greater" in err.message
    assert problem("hash_in_range", L(0), L(9), F(Array(BYTES))).arg_index == 2
    assert "at least 3" in problem("hash_in_range", L(0), L(9)).message


# --- trim, trim_start, trim_end ----------------------------------------------------------


def test_trim_default_is_ascii_whitespace_without_vt() -> None:
    # Rust's is_ascii_whitespace: space, TAB, LF, FF, CR (not VT).
    assert call("trim", S(" \t\n\x0c\rA b\r\n ")) == b"A b"
    assert call("trim", S("\x0ba\x0b")) == b"\x0ba\x0b"
    assert call("trim_start", S("  a  ")) == b"a  "
    assert call("trim_end", S("  a  ")) == b"  a"
    assert call("trim", S(b"\xc2\xa0a")) == b"\xc2\xa0a"  # non-ASCII space untouched


def test_trim_given_bytes() -> None:
    assert call("trim", S("--a-b--"), L("-")) == b"a-b"
    assert call("trim_start", S("/./a/"), L("./")) == b"a/"
    assert call("trim_end", S("a.,.,"), L(",.")) == b"a"


def test_trim_missing_and_rules() -> None:
    assert call("trim", S(MISSING)) is MISSING  # type: ignore[arg-type]
    assert rtype("trim_end", S("a")) == BYTES
    err = problem("trim", S("a"), S("b"))
    assert err.arg_index == 1 and "literal" in err.message
    assert problem("trim", S("a"), L("")).arg_index == 1
    assert problem("trim_start", E(INT, 1)).arg_index == 0


# --- changed in 2026 ------------------------------------------------------------------


def test_concat_at_most_32_arguments() -> None:
    assert call("concat", *[L("a")] * 32) == b"a" * 32
    assert "2 to 32 arguments" in problem("concat", *[L("a")] * 33).message


def test_has_value_needs_a_primitive_value() -> None:
    err = problem("has_value", F(Array(Array(BYTES))), E(Array(BYTES)))
    assert err.arg_index == 0 and "primitive" in err.message
    assert call("has_value", F(Array(INT), (1, 2)), L(2)) is True
