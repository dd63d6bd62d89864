"""The generated ``matches`` (``edgerules.lang.matchgen``): no rule value in the source,
same answers as ``execute`` on a Context and as the reference interpreter on widened
inputs (str, bytes, non-ASCII, surrogate escapes, IPs as text and objects, absent
fields, aliases), unknown keys refused, IP text parsed exactly as ``ipaddress`` does."""

from __future__ import annotations

import io
import ipaddress
import random
import socket
import tokenize
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edgerules
from edgerules.lang.checker import check
from edgerules.lang.engine import Filter
from edgerules.lang.errors import ContextError
from edgerules.lang.matchgen import build_matches, ip_key
from edgerules.lang.scheme import default_scheme

HOSTILE = [
    "x'); import os; os.system('id'); ('",
    'x"); __import__("os")  # ',
    "\\n    return True\n",
    "{k0}",
    "def make():",
    "é\u2028\u2029\x00",
    "A U MISSING",
]


def _source(text: str) -> str:
    f = edgerules.compile(text)
    fn = build_matches(f._checked)
    assert fn is not None, text
    return fn.source  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize("value", HOSTILE)
def test_no_rule_value_enters_the_generated_source(value: str) -> None:
    quoted = value.replace("\\", "\\\\").replace('"', '\\"')
    texts = [
        f'http.host eq "{quoted}"',
        f'http.host in {{"{quoted}" "b"}} and not ssl',
        f'starts_with(http.request.uri.path, "{quoted}")',
        f'lower(http.user_agent) contains "{quoted}"',
        f'any(http.request.headers["{quoted}"][*] eq "{quoted}")',
        'http.request.uri.path matches "^/xos.system[0-9]"',
    ]
    for text in texts:
        src = _source(text)
        tokens = list(tokenize.generate_tokens(io.StringIO(src).readline))
        assert not [t for t in tokens if t.type == tokenize.STRING], src
        for needle in (value, value.strip(), "os", "import", "system"):
            if needle and needle not in ("U", "A"):
                assert needle not in src.replace("import", "IMPORT") or (needle == "os" and "os" not in src)


def test_rules_of_one_shape_share_code() -> None:
    from edgerules.lang import matchgen

    a = _source('http.host eq "a.example" and cf.waf.score lt 10')
    b = _source('http.host eq "b.example" and cf.waf.score lt 99')
    assert a == b and ("<edgerules matches>", a) in matchgen._CODE


# --- same answers -----------------------------------------------------------------------

RULES = [
    'http.host eq "shop.example.com" and not cf.tls_client_auth.cert_verified',
    'http.host in {"a.com" "é.com" "\\xff"} or ssl',
    'http.host ne "é" and http.host lt "m" and http.host ge "\\xc3"',
    'http.request.uri.path contains "é" or http.request.uri.path contains "\\xa9"',
    'starts_with(http.request.uri.path, "/a") or ends_with(http.request.uri.path, "\\xa9")',
    'lower(http.user_agent) eq "bot" or upper(http.user_agent) contains "É"',
    'http.request.uri.path matches "^/ab[0-9]+$" or http.host matches "(?u)^é+$"',
    'http.host wildcard "*.EXAMPLE.com" or http.host strict wildcard "a*"',
    "ip.src in {10.0.0.0/8 2001:db8::/32 192.0.2.1} or ip.src eq ::1",
    "cf.edge.server_port in {80 443 8000..8999} and cf.waf.score le 50",
    'any(http.request.headers["x-env"][*] eq "prod") or any(http.request.headers.values[*] contains "<s")',
    'any(http.request.headers.names[*] in {"X-A" "é"})',
    'any(http.request.headers["X-Env"][*] eq "prod") or any(http.request.headers["é"][*] eq "")',
    'http.request.headers["x-env"][0] eq "prod"',  # not generated: the closure path
    'len(http.host) gt 3 or concat(http.host, "x") eq "a.comx"',  # not generated either
    'ip.src.country eq "US"',
    "(cf.edge.server_port eq 80) xor ssl",
]
STRS = ["", "a", "a.com", "é.com", "é", "\udcff", "\udcc3\udca9", "m", "/ab12", "/a\udcc3\udca9",
        "Bot", "BOT", "x.example.com", "a.EXAMPLE.com", "ééé", "prod", "<script"]


def _variant(value: str, rng: random.Random) -> Any:
    r = rng.random()
    raw = value.encode("utf-8", "surrogateescape")
    if r < 0.5:
        return value
    if r < 0.8:
        return raw
    return bytearray(raw)


@st.composite
def requests(draw: Any) -> dict[str, Any]:
    rng = random.Random(draw(st.integers(0, 2**32)))
    out: dict[str, Any] = {}
    for name in ("http.host", "http.request.uri.path", "http.user_agent"):
        if draw(st.booleans()):
            out[name] = _variant(draw(st.sampled_from(STRS)), rng)
    if draw(st.booleans()):
        out["ssl"] = draw(st.booleans())
    if draw(st.booleans()):
        out["cf.tls_client_auth.cert_verified"] = draw(st.booleans())
    if draw(st.booleans()):
        ip = draw(st.sampled_from(["10.1.2.3", "11.0.0.1", "::1", "2001:db8::5", "192.0.2.1",
                                   "fe80::1%eth0", "::ffff:10.0.0.1", "0.0.0.0"]))
        out["ip.src"] = ip if draw(st.booleans()) else ipaddress.ip_address(ip.split("%")[0])
    for name in ("cf.edge.server_port", "cf.waf.score"):
        if draw(st.booleans()):
            out[name] = draw(st.sampled_from([0, 1, 50, 80, 443, 8080, 2**63 - 1, -5]))
    if draw(st.booleans()):
        names = draw(st.lists(st.sampled_from(["X-Env", "x-env", "Accept", "é"]), max_size=3,
                              unique_by=str.lower))
        vals = [_variant(draw(st.sampled_from(STRS)), rng) for _ in names]
        out["http.request.headers.names"] = [_variant(n, rng) for n in names]
        out["http.request.headers.values"] = vals
        headers: dict[Any, list[Any]] = {}
        for n, v in zip(names, vals, strict=True):
            key: Any = n if rng.random() < 0.7 else n.encode()
            headers.setdefault(key, []).append(v)
        out["http.request.headers"] = headers
    if draw(st.booleans()):
        out["ip.geoip.country"] = draw(st.sampled_from(["US", "FR"]))
    if draw(st.booleans()):
        out["ip.src.country"] = draw(st.sampled_from(["US", "FR"]))
    return out


FILTERS = [edgerules.compile(r) for r in RULES]


def _expected(f: Filter, request: dict[str, Any]) -> bool:
    """``execute`` on a lazy Context, on a filled one and on one built with ``only``,
    and the reference interpreter, all agreeing."""
    from reference_interpreter import evaluate

    lazy = default_scheme().context(request, lazy=True)
    result = f.execute(lazy)  # generated, reading slots lazily
    filled = default_scheme().context(request)
    assert f.execute(filled) is result
    also_lazy = default_scheme().context(request, lazy=True)
    _ = also_lazy.values  # converts every given field
    assert f.execute(also_lazy) is result
    assert f.execute(default_scheme().context(request, only=f.fields)) is result
    assert f._fn(filled.values) is result  # the closure compiler (rulesets use it)
    assert result == evaluate(f._checked, filled)
    return result


def test_every_rule_here_is_generated() -> None:
    from edgerules.lang.execgen import build_execute

    for f in FILTERS:
        covered = "[0]" not in str(f) and "len(" not in str(f)
        assert (build_matches(f._checked) is not None) is covered, f
        assert (build_execute(f._checked, f._execute_other) is not None) is covered, f


@settings(max_examples=400, deadline=None)
@given(requests())
def test_generated_matches_agrees_with_execute_and_reference(request: dict[str, Any]) -> None:
    for f in FILTERS:
        try:
            expected = _expected(f, request)
        except ContextError:
            with pytest.raises(ContextError):
                f.matches(request)
            continue
        assert f.matches(request) is expected, (str(f), request)


def test_aliases_resolve_the_same_on_every_path() -> None:
    f = edgerules.compile('ip.src.country eq "US"')
    both = {"ip.geoip.country": "US", "ip.src.country": "FR"}
    assert f.matches(both) is False  # the canonical name wins
    assert f.execute(default_scheme().context(both)) is False
    assert f.execute(default_scheme().context(both, only=f.fields)) is False
    assert f.matches({"ip.geoip.country": "US"}) is True
    assert f.execute(default_scheme().context({"ip.geoip.country": "US"}, only=f.fields)) is True


def test_unknown_field_names_are_errors_with_a_suggestion() -> None:
    f = edgerules.compile("not cf.tls_client_auth.cert_verified")
    typo = {"cf.tls_client_auth.cert_verifed": True}
    for call in (lambda: f.matches(typo),
                 lambda: default_scheme().context(typo),  # every field converted
                 lambda: f.execute(default_scheme().context(typo, lazy=True)),  # on the read
                 lambda: default_scheme().context(typo, lazy=True).values,
                 lambda: default_scheme().context(typo, only=f.fields)):
        with pytest.raises(ContextError, match=r'did you mean "cf\.tls_client_auth\.cert_verified"'):
            call()
    assert f.matches(typo, strict=False) is True
    assert f.execute(default_scheme().context(typo, only=f.fields, strict=False)) is True
    assert f.execute(default_scheme().context(typo, strict=False)) is True
    assert f.execute(default_scheme().context(typo, strict=False, lazy=True)) is True
    with pytest.raises(ContextError, match="field names are strings"):
        f.matches({1: True})  # type: ignore[dict-item]


def test_header_names_match_case_insensitively() -> None:
    f = edgerules.compile('any(http.request.headers["x-env"][*] eq "prod")')
    assert f.matches({"http.request.headers": {"X-Env": ["prod"]}}) is True
    assert f.matches({"http.request.headers": {b"X-ENV": [b"prod"]}}) is True
    assert f.matches({"http.request.headers": {"x-other": ["prod"]}}) is False


def test_ip_text_parses_exactly_as_ipaddress() -> None:
    rng = random.Random(7)
    alphabet = "0123456789abcdefABCDEF:.% g"
    samples = [".".join(rng.choice(["0", "1", "01", "255", "256", "", "1e1", " 1"])
                        for _ in range(rng.randint(3, 5))) for _ in range(20000)]
    samples += ["".join(rng.choice(alphabet) for _ in range(rng.randint(2, 30)))
                for _ in range(50000)]
    samples += ["::ffff:1.2.3.4", "fe80::1%eth0", "1::", "::", "1:2:3:4:5:6:7:8", "1.2.3.4"]

    def fail(value: object, expected: str) -> Exception:
        return ValueError(expected)

    for text in samples:
        try:
            want: int | None = ip_key(ipaddress.ip_address(text), fail)
        except ValueError:
            want = None
        try:
            got: int | None = ip_key(text, fail)
        except ValueError:
            got = None
        assert got == want, text
    assert socket.AF_INET6  # (inet_pton is what ip_key uses first)


def test_not_a_mapping_is_a_context_error() -> None:
    f = edgerules.compile("ssl")
    with pytest.raises(ContextError, match="expected a mapping"):
        f.matches(["ssl"])  # type: ignore[arg-type]
    assert check  # (imported for the reference interpreter's use)


def test_every_case_file_through_the_lazy_context() -> None:
    """The case files (tests/cases/*.toml) also through a lazily built Context (the
    generated ``execute`` reading slots on demand); test_cases.py runs ``execute`` on a
    filled Context, ``matches`` and the reference interpreter on each."""
    import test_cases as tc

    checked = 0
    for param in tc._load():
        _file, group, case = param.values
        if "result" not in case:
            continue
        scheme = tc._scheme(group.get("scheme"))
        lists = tc._make_lists(group.get("lists"))
        fields = case.get("fields", group.get("fields", {}))
        f = edgerules.compile(case["expr"], scheme, lists=lists)
        lazy = scheme.context(fields, lazy=True)
        assert f.execute(lazy) is case["result"], (case["expr"], fields)
        checked += 1
    assert checked > 1000
