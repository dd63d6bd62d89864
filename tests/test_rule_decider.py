"""``RulesetDecider``'s per-request path (issue 14: rule evaluation ≤ 5 % of a proxied
request) fills the ruleset's ``Context`` slots directly; it must give exactly the
context that ``request_fields`` + ``Context.update(only=ruleset.fields)`` give, and the
same verdict, for every field the proxy provides, with or without a ``ClientAuth``."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgerules import Ruleset
from edgerules.enforcement.decision import RulesetDecider, verdict_from_decision
from edgerules.enforcement.request_fields import PROVIDED_FIELDS, RequestInfo, request_fields
from edgerules.lang.scheme import Scheme, default_scheme
from edgerules.lang.types import BOOL, BYTES, INT
from edgerules.rulesets.model import ALLOW
from edgerules.tls import NOT_REQUESTED

AUTH_FIELDS = [n for n in default_scheme()._by_name if n.startswith("cf.tls_client_auth.")]


class Recorder:
    """A ruleset stand-in reading every given field: records the context it gets."""

    def __init__(self, fields: frozenset[str]) -> None:
        self.fields = fields
        self.scheme = default_scheme()
        self.seen: list[list[object]] = []

    def evaluate(self, given: Any) -> Any:
        ctx = self.scheme.context(given, only=self.fields) if isinstance(given, dict) else given
        self.seen.append(list(ctx.values))
        return ALLOW


class PartialAuth:
    """A ClientAuth stand-in that knows only some fields (the others: KeyError)."""

    def __init__(self, values: dict[str, object]) -> None:
        self.values = values

    def fields(self) -> dict[str, object]:
        return self.values


_headers = st.lists(
    st.tuples(
        st.sampled_from([b"Host", b"host", b"User-Agent", b"Cookie", b"cookie", b"Referer",
                         b"X-Forwarded-For", b"Accept-Language", b"X-A"]),
        st.sampled_from([b"a", b"api.example.com:8443", b"A.Example.COM.", b"a=1; b=2", b"en;q=0.5, de",
                         b"", b"bot/1.0", b"x, y"]),
    ),
    max_size=12,
)
_targets = st.sampled_from([b"/", b"/a/b.PNG?x=1&y=&x=2#f", b"http://h.example:81/p?q", b"*",
                            b"https://h", b"/%41?%20=1", b"/a.tar.gz"])
_auths = st.sampled_from([
    None,
    NOT_REQUESTED,
    PartialAuth({"cf.tls_client_auth.cert_verified": True, "cf.tls_client_auth.cert_serial": b"0A"}),
])


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([b"GET", b"post", b"HEAD"]), _targets, st.sampled_from([b"1.1", b"1.0"]), _headers,
    st.sampled_from(["203.0.113.7", "::ffff:10.0.0.1", "fe80::1%eth0", ""]),
    st.sampled_from([None, b"Api.Example.com", b"[::1]:443"]), _auths,
    st.sets(st.sampled_from(sorted(PROVIDED_FIELDS) + AUTH_FIELDS + ["ip.geoip.country", "ip.src.asnum"]),
            min_size=1),
)
def test_slot_path_gives_the_request_fields_context(method, target, version, headers, ip, host, auth, fields):
    info = RequestInfo(method=method, target=target, http_version=version, headers=headers, client_ip=ip,
                       server_ip="198.51.100.1", server_port=8443, tls_version="TLSv1.3",
                       tls_cipher="AEAD-AES128-GCM-SHA256", sni="api.example.com", host=host)
    fields = frozenset(fields)
    expected = Recorder(fields)
    expected.evaluate(request_fields(fields, info, auth))
    recorder = Recorder(fields)
    decider = RulesetDecider(recorder)
    decider.decide(info, auth)
    decider.decide_with(decider.connection_values(info, auth), info)
    assert recorder.seen == [expected.seen[0]] * 2


def test_slots_for_follows_update_only_with_aliases():
    """Canonical name first, then the first provided alias; unprovided names keep the
    default; a slot read under two names is set once."""
    scheme = Scheme([("a", BYTES), ("b", INT), ("c", BOOL)], aliases={"b1": "b", "b2": "b", "c1": "c"})
    given = {"a": b"x", "b1": 1, "b2": 2, "c1": True}
    for names in (["a", "b2", "b1"], ["b2"], ["b", "b2"], ["c", "c1"], ["c"]):
        mapping = {name: given[name] for name in names if name in given}  # as request_fields
        expected = scheme.context(mapping, only=names).values
        values = list(scheme.defaults)
        for name, index, coerce in scheme.slots_for(names, mapping.__contains__):
            values[index] = coerce(mapping[name])
        assert values == expected, names
        assert scheme.context_from_slots(values).values is values


RULES = {
    "name": "per request",
    "rules": [
        {"ref": "log_admin", "expression": 'starts_with(http.request.uri.path, "/admin")', "action": "log"},
        {"ref": "health", "expression": 'http.request.uri.path eq "/healthz"', "action": "skip",
         "action_parameters": {"ruleset": "current"}},
        {"ref": "mtls", "expression": 'http.host eq "api.example.com" and not cf.tls_client_auth.cert_verified',
         "action": "block"},
        {"ref": "bots", "expression": 'http.user_agent contains "bot" and ip.src in {203.0.113.0/24}',
         "action": "managed_challenge"},
    ],
}


@pytest.mark.parametrize("path", [b"/", b"/admin/x", b"/healthz", b"/x"])
@pytest.mark.parametrize("agent", [b"curl", b"a bot"])
@pytest.mark.parametrize("auth", [NOT_REQUESTED, PartialAuth({"cf.tls_client_auth.cert_verified": True})])
def test_verdicts_as_before(path, agent, auth):
    ruleset = Ruleset.from_dict(RULES)
    decider = RulesetDecider(ruleset)
    info = RequestInfo(method=b"GET", target=path, headers=[(b"Host", b"api.example.com"), (b"User-Agent", agent)],
                       client_ip="203.0.113.9")
    expected = verdict_from_decision(ruleset.evaluate(request_fields(ruleset.fields, info, auth)))
    for _ in range(2):  # the second time from the verdict cache
        assert decider.decide(info, auth) == expected
        assert decider.decide_with(decider.connection_values(info, auth), info) == expected


@settings(max_examples=200, deadline=None)
@given(_headers, st.sampled_from([b"host", b"cookie", b"user-agent", b"x-a", b"absent"]), st.integers(0, 12))
def test_header_scan_equals_the_header_map(headers, name, pad):
    """``RequestInfo.header`` scans a short field list instead of building the map."""
    headers = headers + [(b"X-Pad-%d" % i, b"p") for i in range(pad)]
    mapped = RequestInfo(method=b"GET", target=b"/", headers=headers)
    mapped.header_map()
    assert RequestInfo(method=b"GET", target=b"/", headers=headers).header(name) == mapped.header(name)
