"""Rulesets: loading, validation, round trips, evaluation order, policies, trace."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

import edgerules
from edgerules.errors import ContextError, ExpressionError, RuleError, RulesetError
from edgerules.rulesets import ALLOW, Decision, Policy, Ruleset
from edgerules.rulesets.actions import Limits
from edgerules.rulesets.lists import NamedLists

RULES = Path(__file__).resolve().parents[2] / "rules"
CERT = "cf.tls_client_auth."


def rs(*rules: dict, **top: object) -> Ruleset:
    obj = {"name": "t", **top, "rules": list(rules)}
    return Ruleset.from_dict(obj)


def rule(ref: str, expression: str = "true", action: str = "block", **kw: object) -> dict:
    return {"ref": ref, "expression": expression, "action": action, **kw}


# --- loading -----------------------------------------------------------------------------


def test_public_names() -> None:
    assert edgerules.Ruleset is Ruleset and edgerules.Decision is Decision
    assert edgerules.Policy is Policy and edgerules.NamedLists is NamedLists


def test_load_json_and_toml_equivalent(tmp_path: Path) -> None:
    js = Ruleset.load(RULES / "mtls-required.json")
    toml_path = tmp_path / "same.toml"
    toml_path.write_text(js.to_toml())
    again = Ruleset.load(toml_path)
    assert again.to_dict() == js.to_dict()
    assert again == js


EXAMPLES = [p for p in sorted(RULES.glob("*.json")) + sorted(RULES.glob("*.toml"))
            if not p.name.endswith(".tests.toml")]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_rulesets_round_trip(path: Path) -> None:
    lists = NamedLists.load(RULES / "lists")
    r = Ruleset.load(path, lists=lists)
    d = r.to_dict()
    assert Ruleset.from_dict(d, lists=lists).to_dict() == d
    assert Ruleset.from_dict(json.loads(r.to_json()), lists=lists).to_dict() == d
    assert Ruleset.from_dict(tomllib.loads(r.to_toml()), lists=lists).to_dict() == d
    if path.suffix == ".json":
        assert d == json.loads(path.read_text())  # nothing lost, nothing invented


def test_to_dict_keeps_read_only_api_keys() -> None:
    obj = {"id": "abc", "name": "n", "description": "", "kind": "custom",
           "phase": "http_request_firewall_custom", "version": "3",
           "last_updated": "2024-01-01T00:00:00Z",
           "rules": [{"id": "1" * 32, "version": "1", "last_updated": "2024-01-01T00:00:00Z",
                      "description": "", "expression": "ssl", "action": "log",
                      "enabled": False, "categories": []}]}
    assert Ruleset.from_dict(obj).to_dict() == obj


def test_toml_writer_quoting(tmp_path: Path) -> None:
    tricky = [
        'http.host eq "a"',
        "http.user_agent contains \"it's\"",
        'http.request.uri.path eq "/a\\\\b"',
        'http.host eq "x"\nand ssl',
        "http.host eq \"'''\"\nand ssl",
        'http.host eq "tab\there"',
    ]
    r = Ruleset.from_dict({"name": "q\"uote", "description": "multi\nline 'x' \"y\"",
                           "rules": [rule(f"r{i}", e) for i, e in enumerate(tricky)]})
    back = Ruleset.from_dict(tomllib.loads(r.to_toml()))
    assert [x.expression for x in back.rules] == tricky
    assert back.to_dict() == r.to_dict()
    p = tmp_path / "out.toml"
    r.save(p)
    assert Ruleset.load(p) == r
    r.save(tmp_path / "out.json")
    assert Ruleset.load(tmp_path / "out.json") == r


def test_name_defaults_to_file_stem(tmp_path: Path) -> None:
    p = tmp_path / "my-rules.toml"
    p.write_text('[[rules]]\nref = "a"\nexpression = "ssl"\naction = "block"\n')
    r = Ruleset.load(p)
    assert r.name == "my-rules" and r.kind == "zone" and r.phase == "http_request_firewall_custom"


def test_all_broken_rules_reported_at_once(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"name": "x", "rules": [
        rule("ok", "ssl"),
        rule("mtls_enforce", 'http.hots eq "a"'),
        rule("syntax", "ssl and"),
        rule("act", action="allow"),
        rule("ok", "ssl"),
        {"expression": "ssl", "action": "block", "enabld": True},
    ]}))
    with pytest.raises(RulesetError) as info:
        Ruleset.load(p)
    err = info.value
    labels = [label for label, _ in err.errors]
    assert labels == ["mtls_enforce", "syntax", "act", "ok", "#6"]
    first = err.errors[0][1]
    assert isinstance(first, ExpressionError)
    assert f'rule "mtls_enforce" in {p}' in str(first)
    assert "^^^^^^^^^" in str(err) and 'did you mean "http.host"' in str(err)
    assert "duplicate ref 'ok'" in str(err)
    assert "unknown key 'enabld'" in str(err) and 'did you mean "enabled"' in str(err)
    assert "5 broken rules" in str(err)


@pytest.mark.parametrize(
    "obj,match",
    [
        ({"rules": []}, "name"),
        ({"name": "x", "kind": "managed"}, "kind 'managed'"),
        ({"name": "x", "phase": "http_request_transform"}, "phase"),
        ({"name": "x", "rules": {}}, "array"),
        ({"name": "x", "rulez": []}, "unknown key 'rulez'"),
        ({"name": "x", "description": 1}, "description"),
        ([], "object"),
    ],
)
def test_ruleset_level_errors(obj: object, match: str) -> None:
    with pytest.raises(RulesetError, match=match):
        Ruleset.from_dict(obj)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad,match",
    [
        ({"enabled": "yes"}, "'enabled' must be true or false"),
        ({"ref": ""}, "'ref' must be a non-empty string"),
        ({"expression": 5}, "'expression' must be a string"),
        ({"description": None}, "'description' must be a string"),
        ({"action": "execute"}, "execute needs"),
        ({"position": {"index": 1}}, "unknown key 'position'"),
    ],
)
def test_rule_level_errors(bad: dict, match: str) -> None:
    with pytest.raises(RulesetError, match=match):
        rs({**rule("r", "ssl"), **bad})


def test_missing_expression_or_action() -> None:
    with pytest.raises(RulesetError, match="no 'expression'"):
        rs({"ref": "a", "action": "block"})
    with pytest.raises(RulesetError, match="no 'action'"):
        rs({"ref": "a", "expression": "ssl"})


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(RulesetError, match="cannot read"):
        Ruleset.load(tmp_path / "nope.json")
    (tmp_path / "a.yaml").write_text("x")  # YAML, but not an octorules zone file
    with pytest.raises(RulesetError, match="octorules zone file"):
        Ruleset.load(tmp_path / "a.yaml")
    (tmp_path / "a.txt").write_text("just words")
    with pytest.raises(RulesetError, match="cannot tell the format"):
        Ruleset.load(tmp_path / "a.txt")
    (tmp_path / "b.json").write_text("{")
    with pytest.raises(RulesetError, match="invalid JSON"):
        Ruleset.load(tmp_path / "b.json")
    (tmp_path / "c.toml").write_text("[[rules]")
    with pytest.raises(RulesetError, match="invalid TOML"):
        Ruleset.load(tmp_path / "c.toml")


def test_limits() -> None:
    many = [rule(f"r{i}", "ssl") for i in range(6)]
    with pytest.raises(RulesetError, match="exceed the limit of 5"):
        Ruleset.from_dict({"name": "x", "rules": many}, limits="free")
    Ruleset.from_dict({"name": "x", "rules": many[:5]}, limits="free")
    long_expr = "ssl" + " or ssl" * 700
    assert len(long_expr) > 4096
    with pytest.raises(RulesetError, match="limit is 4096"):
        rs(rule("long", long_expr))
    with pytest.raises(RulesetError, match="limit is 10"):
        Ruleset.from_dict({"name": "x", "rules": [rule("short", "ssl or ssl or ssl")]},
                          limits={"max_expression_length": 10})
    regex = rule("re", 'http.host matches "^a"')
    with pytest.raises(RulesetError, match="regular expressions"):
        Ruleset.from_dict({"name": "x", "rules": [regex]}, limits="pro")
    Ruleset.from_dict({"name": "x", "rules": [regex]}, limits="business")
    with pytest.raises(RulesetError, match="log action"):
        Ruleset.from_dict({"name": "x", "rules": [rule("l", "ssl", "log")]}, limits="business")


def test_ruleset_regex_budget_names_every_rule_over_it() -> None:
    """The total RE2 program size of a ruleset's regexes is capped (Limits.max_regex_program):
    rules are admitted in order while their regexes fit, and every rule that does not is
    reported in the one RulesetError, with the other broken rules."""
    import edgerules

    def size(pattern: str) -> int:
        return edgerules.compile(f'http.host matches "{pattern}"').regex_size

    big, other, small = "[a-z]{400}x", "[0-9]{400}y", "^ab"
    cap = size(big) + size(small) + 10  # room for `big` and `small`, not for `other` too
    rules = [
        rule("big", f'http.host matches "{big}"'),
        rule("other", f'http.request.uri.path matches "{other}"'),
        rule("typo", "http.hots eq 1"),
        rule("small", f'http.host matches "{small}"'),
        rule("again", f'http.user_agent matches "{big}" and ssl'),  # the same pattern
        rule("other2", f'http.host matches "{other}" or http.host matches "{small}"'),
    ]
    with pytest.raises(RulesetError) as info:
        Ruleset.from_dict({"name": "x", "rules": rules}, limits={"max_regex_program": cap})
    errors = dict(info.value.errors)
    assert list(errors) == ["other", "typo", "other2"]
    message = str(errors["other"])
    assert "regexes are too large" in message and f"{cap:,}" in message
    assert "max_regex_program" in message
    # Without the over-budget rules, the rest loads (a pattern repeated across rules is
    # compiled once and counted once).
    ok = [r for r in rules if r["ref"] in ("big", "small", "again")]
    loaded = Ruleset.from_dict({"name": "x", "rules": ok}, limits={"max_regex_program": cap})
    assert len(loaded) == 3
    # The default admits a realistic ruleset: 1,000 rules of typical patterns.
    typical = [rule(f"r{i}", f'http.request.uri.path matches "^/api/v{i}/[a-z0-9_-]+$" '
                             f'or http.user_agent matches "(?i)bot{i}|crawl|spider"')
               for i in range(1000)]
    Ruleset.from_dict({"name": "x", "rules": typical})
    assert Limits().max_regex_program == 1_000_000
    with pytest.raises(RuleError, match="non-negative integer"):
        Limits.coerce({"max_regex_program": -1})


def test_loading_pauses_the_cyclic_collector_and_restores_it() -> None:
    """A load runs no automatic collection (they were most of a large load's CPU time),
    then leaves the collector as it found it, also after an error; an application's own
    gc.disable() is kept."""
    import gc

    rules = [rule(f"r{i}", f'http.host eq "h{i}" and not ssl') for i in range(200)]
    runs: list[int] = []

    def seen(phase: str, info: dict) -> None:
        if phase == "start":
            runs.append(info["generation"])

    saved = gc.get_threshold()
    gc.set_threshold(10, 1, 1)  # a collection every few allocations, were it running
    gc.callbacks.append(seen)
    try:
        assert gc.isenabled()
        loaded = Ruleset.from_dict({"name": "x", "rules": rules})
        n_during = len(runs)  # (no allocation: the collector is running again)
        assert gc.isenabled()
        with pytest.raises(RulesetError):
            Ruleset.from_dict({"name": "x", "rules": [rule("bad", "http.hots eq 1")]})
        assert gc.isenabled()
        gc.disable()
        try:
            Ruleset.from_dict({"name": "x", "rules": rules[:3]})
            assert not gc.isenabled()
        finally:
            gc.enable()
    finally:
        gc.callbacks.remove(seen)
        gc.set_threshold(*saved)
    assert len(loaded) == 200
    # (Running, it would collect hundreds of times here.) At most one collection while
    # entering the load and the one young-generation pass at the end.
    assert len(runs[:n_during]) <= 2, runs[:n_during]


def test_named_lists_are_type_checked_by_the_engine() -> None:
    lists = NamedLists()
    lists.define("office", "ip", ["192.0.2.0/24"])
    lists.define("hosts", "hostname", ["*.example.com"])
    r = Ruleset.from_dict({"name": "x", "rules": [
        rule("a", "ip.src in $office"), rule("b", "http.host in $hosts")]}, lists=lists)
    assert r.evaluate({"ip.src": "192.0.2.9"}).rule.ref == "a"
    assert r.evaluate({"http.host": "a.example.com"}).rule.ref == "b"
    assert r.evaluate({"http.host": "example.com"}) is ALLOW
    with pytest.raises(RulesetError) as info:
        Ruleset.from_dict({"name": "x", "rules": [rule("c", "http.host in $office"),
                                                  rule("d", "ip.src in $missing")]},
                          lists=lists)
    assert [label for label, _ in info.value.errors] == ["c", "d"]


# --- evaluation --------------------------------------------------------------------------


def test_no_match_allows_and_first_terminating_rule_decides() -> None:
    r = rs(rule("a", 'http.host eq "a"'), rule("b", 'http.host eq "b"', "js_challenge"),
           rule("c", "true"))
    d = r.evaluate({"http.host": "a"})
    assert (d.outcome, d.action, d.rule.ref, d.status) == ("block", "block", "a", 403)
    d = r.evaluate({"http.host": "b"})
    assert (d.outcome, d.action, d.rule.ref, d.status) == ("challenge", "js_challenge", "b", None)
    assert r.evaluate({"http.host": "z"}).rule.ref == "c"
    r2 = rs(rule("a", 'http.host eq "a"'))
    assert r2.evaluate({"http.host": "z"}) is ALLOW
    assert ALLOW.outcome == "allow" and ALLOW.rule is None and ALLOW.action is None


def test_disabled_rules_are_ignored_but_compiled() -> None:
    r = rs(rule("off", "true", enabled=False), rule("on", 'http.host eq "x"'))
    assert r.evaluate({"http.host": "y"}) is ALLOW
    with pytest.raises(RulesetError, match="unknown field"):
        rs(rule("off", "nonexistent.field", enabled=False))


def test_log_is_recorded_and_evaluation_continues() -> None:
    r = rs(rule("l1", "true", "log"), rule("l2", "ssl", "log"), rule("b", 'http.host eq "x"'))
    d = r.evaluate({"http.host": "x", "ssl": True})
    assert d.outcome == "block" and [x.ref for x in d.logged] == ["l1", "l2"]
    d = r.evaluate({"http.host": "y"})
    assert d.outcome == "allow" and [x.ref for x in d.logged] == ["l1"]


def test_skip_ruleset_current() -> None:
    r = rs(rule("s", 'http.request.uri.path eq "/ok"', "skip",
                action_parameters={"ruleset": "current", "products": ["waf"]},
                logging={"enabled": False}),
           rule("b", "true"))
    d = r.evaluate({"http.request.uri.path": "/ok"})
    assert d.outcome == "allow" and [x.ref for x in d.skipped] == ["s"]
    assert d.skipped_products == {"waf"} and not d.skipped[0].act.log_matches
    assert r.evaluate({"http.request.uri.path": "/no"}).outcome == "block"


def test_skip_phases_only_records() -> None:
    r = rs(rule("s", "true", "skip", action_parameters={"phases": ["http_ratelimit"]}),
           rule("b", "true"))
    d = r.evaluate({})
    assert d.outcome == "block" and d.skipped_phases == {"http_ratelimit"}
    assert [x.ref for x in d.skipped] == ["s"]


def test_evaluate_accepts_context_and_checks_scheme() -> None:
    r = rs(rule("b", 'http.host eq "x"'))
    ctx = r.context({"http.host": "x"})
    assert r.evaluate(ctx).outcome == "block"
    other = edgerules.Scheme([("http.host", edgerules.lang.types.BYTES)])
    with pytest.raises(ContextError):
        r.evaluate(other.context({"http.host": "x"}))
    with pytest.raises(ContextError):
        r.evaluate({"http.host": 5})


class LazyFields(Mapping[str, object]):
    """A mapping that records which keys were read (like ClientAuth.fields())."""

    def __init__(self, values: dict[str, object]) -> None:
        self.values = values
        self.read: list[str] = []

    def __getitem__(self, key: str) -> object:
        self.read.append(key)
        return self.values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def test_context_reads_only_the_fields_rules_use() -> None:
    r = Ruleset.load(RULES / "mtls-required.json")
    assert r.fields == {"http.host", CERT + "cert_verified", CERT + "cert_revoked"}
    lazy = LazyFields({CERT + "cert_verified": True, CERT + "cert_revoked": False,
                       CERT + "cert_serial": "AB"})
    ctx = r.context({"http.host": "api.localhost", "http.user_agent": "x"}, lazy)
    assert CERT + "cert_serial" not in lazy.read
    assert r.evaluate(ctx).outcome == "allow"


def test_fields_exclude_disabled_rules() -> None:
    r = rs(rule("a", "ssl"), rule("b", 'http.host eq "a"', enabled=False))
    assert r.fields == {"ssl"}


# --- execute and policies -----------------------------------------------------------------


def custom(rid: str, *rules: dict) -> Ruleset:
    return Ruleset.from_dict({"id": rid, "name": rid, "kind": "custom", "rules": list(rules)})


def test_execute_runs_custom_ruleset_in_place() -> None:
    c = custom("c1", rule("c_skip", 'http.host eq "skip"', "skip",
                          action_parameters={"ruleset": "current"}),
               rule("c_block", 'http.host eq "block"'))
    zone = Ruleset.from_dict({"name": "z", "rules": [
        rule("exec", "true", "execute", action_parameters={"id": "c1"}),
        rule("after", 'http.host eq "skip" or http.host eq "after"'),
    ]}, rulesets=[c])
    assert zone.fields >= {"http.host"}
    assert zone.evaluate({"http.host": "block"}).rule.ref == "c_block"
    d = zone.evaluate({"http.host": "skip"})  # skip ends the custom ruleset only
    assert d.rule.ref == "after" and [x.ref for x in d.skipped] == ["c_skip"]
    assert zone.evaluate({"http.host": "none"}) is ALLOW


def test_unresolved_execute() -> None:
    zone = rs(rule("exec", "true", "execute", action_parameters={"id": "nope"}))
    assert zone.custom_rulesets == ("nope",)
    with pytest.raises(RulesetError, match="not loaded"):
        zone.evaluate({})
    with pytest.raises(RulesetError, match="no custom ruleset with id 'nope'"):
        Policy([zone])


def test_execute_target_must_be_custom_and_acyclic() -> None:
    a = Ruleset.from_dict({"id": "a", "name": "a", "kind": "custom", "rules": [
        rule("to_b", "true", "execute", action_parameters={"id": "b"})]})
    b = Ruleset.from_dict({"id": "b", "name": "b", "kind": "custom", "rules": [
        rule("to_a", "true", "execute", action_parameters={"id": "a"})]})
    zone = rs(rule("go", "true", "execute", action_parameters={"id": "a"}))
    with pytest.raises(RulesetError, match="execute cycle"):
        Policy([zone, a, b])
    z2 = Ruleset.from_dict({"id": "z2", "name": "z2", "kind": "zone", "rules": []})
    with pytest.raises(RulesetError, match="only custom"):
        Ruleset.from_dict({"name": "x", "rules": [
            rule("go", "true", "execute", action_parameters={"id": "z2"})]}, rulesets=[z2])


def test_execute_by_name_when_no_id() -> None:
    c = Ruleset.from_dict({"name": "shared", "kind": "custom", "rules": [rule("x", "ssl")]})
    zone = rs(rule("go", "true", "execute", action_parameters={"id": "shared"}))
    p = Policy([zone, c])
    assert p.evaluate({"ssl": True}).rule.ref == "x"


def test_policy_account_then_zone() -> None:
    root = Ruleset.from_dict({"name": "acct", "kind": "root", "rules": [
        rule("acct_skip", 'http.host eq "trusted"', "skip",
             action_parameters={"ruleset": "current"}),
        rule("acct_block", 'http.request.uri.path eq "/blocked-by-account"'),
        rule("acct_log", "true", "log"),
    ]})
    zone = Ruleset.from_dict({"name": "zone", "kind": "zone", "rules": [
        rule("zone_phase_skip", 'http.host eq "vip"', "skip",
             action_parameters={"phase": "current"}),
        rule("zone_block", 'starts_with(http.request.uri.path, "/blocked")'),
    ]})
    p = Policy([zone, root])
    assert p.account is root and p.zone is zone
    d = p.evaluate({"http.request.uri.path": "/blocked-by-account"})
    assert d.rule.ref == "acct_block" and d.logged == ()
    d = p.evaluate({"http.request.uri.path": "/blocked-by-zone"})
    assert d.rule.ref == "zone_block" and [x.ref for x in d.logged] == ["acct_log"]
    # an account-level skip of its own ruleset still lets the zone entry point run
    d = p.evaluate({"http.host": "trusted", "http.request.uri.path": "/blocked-by-account"})
    assert d.rule.ref == "zone_block" and [x.ref for x in d.skipped] == ["acct_skip"]
    d = p.evaluate({"http.host": "vip", "http.request.uri.path": "/blocked-by-zone"})
    assert d.outcome == "allow" and [x.ref for x in d.skipped] == ["zone_phase_skip"]
    assert p.fields == root.fields | zone.fields


def test_skip_phase_in_a_ruleset_the_account_executes_is_refused() -> None:
    # skip phase "current" is zone-level only (Cloudflare's skip options). A custom ruleset executed by the
    # account entry point runs at account level: its phase skip would end the zone's
    # rules too, which Cloudflare does not offer. The same ruleset under the zone is fine.
    shared = Ruleset.from_dict({"name": "shared", "kind": "custom", "rules": [
        rule("vip", 'http.host eq "vip"', "skip", action_parameters={"phase": "current"}),
    ]})
    root = Ruleset.from_dict({"name": "acct", "kind": "root", "rules": [
        rule("run", "true", "execute", action_parameters={"id": "shared"}),
    ]})
    zone = rs(rule("go", "true", "execute", action_parameters={"id": "shared"}),
              rule("zone_block", "true"))
    with pytest.raises(RulesetError, match="only available at zone level") as err:
        Policy([root, rs(rule("zone_block", "true")), shared])
    assert "vip" in str(err.value.errors)
    assert Policy([zone, shared]).evaluate({"http.host": "vip"}).outcome == "allow"


def test_policy_validation() -> None:
    z = rs(rule("a", "ssl"))
    with pytest.raises(RulesetError, match="two zone-level"):
        Policy([z, rs(rule("b", "ssl"))])
    root = Ruleset.from_dict({"name": "r", "kind": "root", "rules": []})
    with pytest.raises(RulesetError, match="account-level rulesets are not available"):
        Policy([root], limits="business")
    many = [custom(f"c{i}", rule("x", "ssl")) for i in range(3)]
    zone = rs(*[rule(f"e{i}", "true", "execute", action_parameters={"id": f"c{i}"})
                for i in range(3)])
    with pytest.raises(RulesetError, match="custom rulesets"):
        Policy([zone, *many], limits="pro")
    with pytest.raises(RulesetError, match="custom rules"):
        Policy([zone, *many], limits={"max_rules": 5})
    Policy([zone, *many], limits={"max_rules": 6})


def test_policy_load_examples() -> None:
    lists = NamedLists.load(RULES / "lists")
    p = Policy.load(RULES / "api-shield.json", RULES / "api-shield-payments.json", lists=lists)
    d = p.evaluate({"http.host": "payments.example.com"})
    assert d.rule.ref == "payments_requires_cert" and d.rule.ruleset_name == "payments mTLS"
    assert d.to_dict()["rule"] == "payments_requires_cert"


# --- trace ------------------------------------------------------------------------------


def test_trace_statuses_and_values() -> None:
    r = rs(rule("off", "true", enabled=False),
           rule("l", "ssl", "log"),
           rule("host", 'http.host eq "a" and not ssl'),
           rule("b", 'http.host eq "a"'),
           rule("never", "true"))
    t = r.trace({"http.host": "a"})
    assert t.decision == r.evaluate({"http.host": "a"})
    statuses = [(s.rule.label, s.status) for s in t.steps]
    assert statuses == [("off", "disabled"), ("l", "no match"), ("host", "matched"),
                        ("b", "not evaluated"), ("never", "not evaluated")]
    host = t.step("host")
    assert host.node is not None and host.node.value is True
    assert ("http.host", b"a") in host.values
    assert "decides" in host.note and "already decided by rule 'host'" in t.step("b").note
    text = t.render()
    assert "decision: block by rule 'host'" in text
    assert 'http.host eq "a"' in text and 'http.host = "a"' in text
    assert t.step("l").node is None
    t2 = r.trace({"http.host": "a"}, explain=["l"])
    assert t2.step("l").node is not None and t2.step("l").node.value is False
    t3 = r.trace({"http.host": "a"}, explain="all")
    assert all(s.node is not None for s in t3.steps if s.status in ("matched", "no match"))


def test_trace_nested_and_policy() -> None:
    c = custom("c1", rule("c_skip", "true", "skip", action_parameters={"ruleset": "current"}),
               rule("c_block", "true"))
    root = Ruleset.from_dict({"name": "acct", "kind": "root", "rules": [
        rule("go", "true", "execute", action_parameters={"id": "c1"}),
        rule("acct_block", 'http.host eq "x"')]})
    zone = rs(rule("zone_block", "true"))
    p = Policy([root, zone, c])
    t = p.trace({"http.host": "x"})
    got = [(s.rule.label, s.status, s.depth) for s in t.steps]
    assert got == [("go", "matched", 0), ("c_skip", "matched", 1), ("c_block", "not evaluated", 1),
                   ("acct_block", "matched", 0), ("zone_block", "not evaluated", 0)]
    assert "skipped by rule 'c_skip'" in t.step("c_block").note
    assert "already decided by rule 'acct_block'" in t.step("zone_block").note
    assert t.decision == p.evaluate({"http.host": "x"})
    assert "(continued)" in t.render()


def test_decision_helpers() -> None:
    r = rs(rule("b", "true", action_parameters={"response": {
        "status_code": 429, "content_type": "application/json", "content": "{}"}}))
    d = r.evaluate({})
    assert d.blocked and not d.allowed and d.status == 429 and d.response.content == "{}"
    assert str(d) == "block by rule 'b', status 429 application/json"
    assert d.to_dict() == {"outcome": "block", "action": "block", "rule": "b", "ruleset": "t",
                           "description": "", "response": {"status_code": 429,
                           "content_type": "application/json", "content": "{}"},
                           "logged": [], "skipped": []}
    assert r.rule("b").label == "b"
    with pytest.raises(KeyError):
        r.rule("zz")
    assert isinstance(RulesetError("x"), RuleError)


# --- rule index (pre-selection of candidate rules) -----------------------------------------


def _indexed_and_plain(rules: list[dict]) -> tuple[Ruleset, Ruleset]:
    indexed = Ruleset.from_dict({"name": "i", "rules": rules})
    plain = Ruleset.from_dict({"name": "p", "rules": rules})
    plain._use_index = False
    plain._build_plan()
    return indexed, plain


def test_rule_index_agrees_with_walking_every_rule() -> None:
    import random

    rnd = random.Random(5)
    hosts = [f"h{i}.example.com" for i in range(12)]
    templates = [
        lambda: f'http.host eq "{rnd.choice(hosts)}" and not cf.tls_client_auth.cert_verified',
        lambda: f'http.host in {{"{rnd.choice(hosts)}" "{rnd.choice(hosts)}"}} and ssl',
        lambda: f'not ssl and http.request.uri.path eq "/p{rnd.randrange(5)}"',
        lambda: f'cf.edge.server_port eq {rnd.choice([80, 443, 8443])} and http.host eq "{rnd.choice(hosts)}"',
        lambda: f'starts_with(http.request.uri.path, "/p{rnd.randrange(5)}")',
        lambda: 'cf.tls_client_auth.cert_revoked',
        lambda: f'http.host eq "{rnd.choice(hosts)}" or ssl',
        lambda: f'lower(http.host) eq "{rnd.choice(hosts).upper()}"',
        lambda: f'http.request.uri.path eq "/p{rnd.randrange(5)}" or http.host eq "{rnd.choice(hosts)}"',
        lambda: f'(http.host eq "{rnd.choice(hosts)}" and ssl) or not cf.tls_client_auth.cert_verified',
    ]
    actions = ["block", "block", "managed_challenge", "log"]
    rules = [rule(f"r{i}", rnd.choice(templates)(), rnd.choice(actions)) for i in range(120)]
    rules.insert(60, rule("skipper", 'http.request.uri.path eq "/p3" and ssl', "skip",
                          action_parameters={"ruleset": "current"}))
    indexed, plain = _indexed_and_plain(rules)
    assert indexed._index is not None and plain._index is None
    for _ in range(400):
        req = {
            "http.host": rnd.choice([*hosts, "other.example.com", "H1.EXAMPLE.COM"]),
            "ssl": rnd.random() < 0.5,
            "cf.tls_client_auth.cert_verified": rnd.random() < 0.5,
            "cf.tls_client_auth.cert_revoked": rnd.random() < 0.05,
            "http.request.uri.path": f"/p{rnd.randrange(7)}",
            "cf.edge.server_port": rnd.choice([80, 443, 8443, 8080]),
        }
        a, b = indexed.evaluate(req), plain.evaluate(req)
        da, db = a.to_dict(), b.to_dict()
        da.pop("ruleset", None)
        db.pop("ruleset", None)
        assert da == db, req
        assert indexed.trace(req).decision == a


def test_rule_index_agrees_on_negations_aliases_ints_disabled_and_skips() -> None:
    """Constructs that must not yield a guard (``not``/``xor`` over a guard, ``ne``,
    ranges) beside ones that must (aliases, hex Int literals, escapes), with disabled
    rules and skip rules of every scope in between."""
    import random

    rnd = random.Random(11)
    hosts = ["a.example", "b.example", "C.example", "é.example"]
    h = lambda: rnd.choice(hosts)  # noqa: E731
    templates = [
        lambda: f'not (http.host eq "{h()}")',
        lambda: f'http.host eq "{h()}" xor ssl',
        lambda: f'not (http.host eq "{h()}" or ssl)',
        lambda: f'http.host ne "{h()}" and not ssl',
        lambda: f'ip.geoip.country eq "{rnd.choice(["DE", "FR"])}"',
        lambda: f'ip.src.country in {{"DE" "{rnd.choice(["FR", "US"])}"}} and ssl',
        lambda: f'cf.edge.server_port eq {rnd.choice(["0x1bb", "443", "80"])}',
        lambda: 'cf.edge.server_port in {80..443}',
        lambda: f'http.host eq "\\x{ord(h()[0]):02x}.example"',
        lambda: f'http.host in {{"{h()}" "{h()}"}} or cf.edge.server_port eq 80',
        lambda: 'not not ssl',
    ]
    skips = [{"ruleset": "current"}, {"phase": "current"}, {"phases": ["http_ratelimit"]}]
    rules = []
    for i in range(150):
        action = rnd.choice(["block", "managed_challenge", "log", "skip"])
        extra = {"action_parameters": rnd.choice(skips)} if action == "skip" else {}
        rules.append(rule(f"r{i}", rnd.choice(templates)(), action,
                          enabled=rnd.random() > 0.2, **extra))
    indexed, plain = _indexed_and_plain(rules)
    assert indexed._index is not None
    for _ in range(400):
        req = {
            "http.host": rnd.choice([*hosts, "c.example", "x"]),
            "ssl": rnd.random() < 0.5,
            "ip.src.country": rnd.choice(["DE", "FR", "US", "de"]),
            "cf.edge.server_port": rnd.choice([80, 443, 8443]),
        }
        a, b = indexed.evaluate(req).to_dict(), plain.evaluate(req).to_dict()
        a.pop("ruleset", None)
        b.pop("ruleset", None)
        assert a == b, req


def test_rule_index_is_skipped_for_small_or_unguarded_rulesets() -> None:
    small, _ = _indexed_and_plain([rule(f"r{i}", f'http.host eq "h{i}"') for i in range(10)])
    assert small._index is None
    unguarded, _ = _indexed_and_plain(
        [rule(f"r{i}", f'starts_with(http.host, "h{i}")') for i in range(40)])
    assert unguarded._index is None
