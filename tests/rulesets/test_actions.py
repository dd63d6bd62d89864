"""Action parameter validation and plan limits (edgerules.rulesets.actions)."""

from __future__ import annotations

import pytest

from edgerules.errors import RuleError
from edgerules.rulesets.actions import Limits, parse_action


def test_block_default_and_custom_response() -> None:
    a = parse_action("block", None)
    assert a.terminating and a.outcome == "block" and a.response is None
    a = parse_action("block", {"response": {"status_code": 418, "content_type": "application/json",
                                            "content": '{"e": 1}'}})
    assert a.response is not None
    assert (a.response.status, a.response.content_type, a.response.body) == (
        418, "application/json", b'{"e": 1}')
    a = parse_action("block", {"response": {"content": "x"}})
    assert a.response is not None and a.response.status == 403
    assert a.response.content_type == "text/plain"


@pytest.mark.parametrize(
    "response,match",
    [
        ({"status_code": 399}, "400-499"),
        ({"status_code": 500}, "400-499"),
        ({"status_code": "403"}, "400-499"),
        ({"status_code": True}, "400-499"),
        ({"content_type": "text/css"}, "not allowed"),
        ({"content_type": "application/json", "content": "{nope"}, "not valid JSON"),
        ({"content_type": "text/xml", "content": "<a>"}, "well-formed XML"),
        ({"content": "x" * 2049}, "2048 bytes"),
        ({"content": "é" * 1025}, "2050 bytes"),
        ({"content": 5}, "must be a string"),
        ({"body": "x"}, "unknown key 'body'"),
        ("x", "must be an object"),
    ],
)
def test_block_bad_response(response: object, match: str) -> None:
    with pytest.raises(RuleError, match=match):
        parse_action("block", {"response": response})


def test_block_content_limit_is_inclusive() -> None:
    a = parse_action("block", {"response": {"content": "x" * 2048}})
    assert a.response is not None and len(a.response.body) == 2048
    parse_action("block", {"response": {"content_type": "text/xml", "content": "<a>b</a>"}})
    parse_action("block", {"response": {"content_type": "text/html", "content": "<p>unclosed"}})


@pytest.mark.parametrize("name", ["managed_challenge", "js_challenge", "challenge"])
def test_challenges(name: str) -> None:
    a = parse_action(name, {})
    assert a.terminating and a.outcome == "challenge"
    with pytest.raises(RuleError, match="no action_parameters"):
        parse_action(name, {"response": {}})


def test_allow_is_rejected_pointing_to_skip() -> None:
    with pytest.raises(RuleError, match='use "skip"'):
        parse_action("allow", None)
    with pytest.raises(RuleError, match="replaced by \"skip\""):
        parse_action("bypass", None)
    with pytest.raises(RuleError, match="unknown action 'blok'"):
        parse_action("blok", None)
    with pytest.raises(RuleError, match="must be a string"):
        parse_action(None, None)


def test_skip_parameters() -> None:
    a = parse_action("skip", {"ruleset": "current", "phases": ["http_ratelimit"],
                              "products": ["waf", "uaBlock"]})
    assert a.skip_ruleset and not a.skip_phase and not a.terminating and a.outcome is None
    assert a.skip_phases == ("http_ratelimit",) and a.skip_products == ("waf", "uaBlock")
    a = parse_action("skip", {"phase": "current"}, kind="zone")
    assert a.skip_phase
    a = parse_action("skip", {"products": ["bic"]}, logging={"enabled": False})
    assert not a.log_matches


@pytest.mark.parametrize(
    "params,match",
    [
        ({}, "needs action_parameters"),
        ({"ruleset": "other"}, '"current"'),
        ({"phase": "next"}, '"current"'),
        ({"phase": "current", "ruleset": "current"}, "cannot be combined"),
        ({"phases": ["http_request_firewall_custom"]}, "not one of"),
        ({"phases": []}, "non-empty"),
        ({"phases": "http_ratelimit"}, "non-empty array"),
        ({"products": ["WAF"]}, 'case-sensitive: did you mean "waf"'),
        ({"products": ["waf", "waf"]}, "twice"),
        ({"rules": {}}, "unknown skip parameter"),
    ],
)
def test_skip_bad(params: dict, match: str) -> None:
    with pytest.raises(RuleError, match=match):
        parse_action("skip", params)


def test_skip_phase_current_is_zone_level_only() -> None:
    with pytest.raises(RuleError, match="zone-level"):
        parse_action("skip", {"phase": "current"}, kind="root")


def test_logging_only_on_skip() -> None:
    with pytest.raises(RuleError, match="skip rules only"):
        parse_action("block", None, logging={"enabled": False})
    with pytest.raises(RuleError, match="true or false"):
        parse_action("skip", {"ruleset": "current"}, logging={"enabled": "no"})


def test_log_and_execute() -> None:
    assert parse_action("log", None).name == "log"
    assert parse_action("execute", {"id": "abc"}).execute_id == "abc"
    with pytest.raises(RuleError, match="execute needs"):
        parse_action("execute", {})
    with pytest.raises(RuleError, match="unknown execute parameter"):
        parse_action("execute", {"id": "a", "version": "latest"})


def test_plan_limits() -> None:
    free = Limits.for_plan("free")
    assert free.max_rules == 5 and not free.regex and not free.log and not free.custom_response
    with pytest.raises(RuleError, match="free plan"):
        parse_action("log", None, limits=free)
    with pytest.raises(RuleError, match="free plan"):
        parse_action("block", {"response": {"content": "x"}}, limits=free)
    pro = Limits.for_plan("pro")
    parse_action("block", {"response": {"content": "x"}}, limits=pro)
    assert Limits.for_plan("business").regex and not Limits.for_plan("business").log
    assert Limits() == Limits.for_plan("enterprise")
    assert Limits.coerce({"plan": "pro", "max_rules": 7}).max_rules == 7
    assert Limits.coerce("free") == free
    with pytest.raises(RuleError, match="unknown plan"):
        Limits.for_plan("gold")
    with pytest.raises(RuleError, match="unknown limit"):
        Limits.coerce({"rules": 3})
