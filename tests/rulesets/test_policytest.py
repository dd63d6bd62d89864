"""Policy tests (edgerules.rulesets.policytest), the example rulesets in rules/, the CLI commands
test/trace/lint, and the pytest helpers of edgerules.testing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgerules.cli import main
from edgerules.errors import RuleError, RulesetError
from edgerules.rulesets import Ruleset
from edgerules.rulesets.policytest import (
    PROFILES,
    TEST_CA_SKI,
    load_cases,
    parse_cases,
    profile_fields,
    run_cases,
)
from edgerules.testing import assert_decision, decide

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"
CASE_FILES = sorted(RULES.glob("*.tests.toml"))
P = "cf.tls_client_auth."


def test_every_example_ruleset_has_policy_tests() -> None:
    rulesets = {p.name for p in RULES.iterdir() if p.suffix in (".json", ".toml")
                and not p.name.endswith(".tests.toml")}
    covered = set()
    for cf_path in CASE_FILES:
        cf = load_cases(cf_path)
        assert cf.ruleset is not None
        covered.add(cf.ruleset.name)
        covered.update(p.name for p in cf.rulesets)
    assert rulesets <= covered
    assert "mtls-required.json" in rulesets


@pytest.mark.parametrize("path", CASE_FILES, ids=lambda p: p.name)
def test_example_policy_tests_pass(path: Path) -> None:
    cf = load_cases(path)
    report = run_cases(cf.load_target(), cf.cases)
    assert report.ok, report.render()
    assert len(report.results) >= 5


def test_demo_ruleset_contract() -> None:
    """The demo relies on these facts of rules/mtls-required.json."""
    r = Ruleset.load(RULES / "mtls-required.json")
    enforce = r.rule("mtls_enforce")
    assert enforce.act.response is not None and enforce.act.response.status == 403
    assert enforce.act.response.content_type == "application/json"
    d = decide(r, {"http.host": "api.localhost"}, client_cert="none")
    assert d.blocked and d.rule.ref == "mtls_enforce"
    assert json.loads(d.response.body)["error"]


def test_profiles() -> None:
    assert set(PROFILES) >= {"none", "valid", "expired", "revoked", "wrong_ca", "self_signed",
                             "not_yet_valid", "not_requested"}
    flags = {name: (v[P + "cert_presented"], v[P + "cert_verified"], v[P + "cert_revoked"])
             for name, v in PROFILES.items()}
    assert flags["none"] == (False, False, False)
    assert flags["valid"] == (True, True, False)
    assert flags["revoked"] == (True, True, True)
    for name in ("expired", "not_yet_valid", "wrong_ca", "self_signed"):
        assert flags[name] == (True, False, False)
    valid = PROFILES["valid"]
    assert valid[P + "cert_issuer_ski"] == TEST_CA_SKI
    assert len(str(valid[P + "cert_fingerprint_sha256"])) == 64
    assert str(valid[P + "cert_serial"]).isupper()
    ss = PROFILES["self_signed"]
    assert ss[P + "cert_issuer_dn"] == ss[P + "cert_subject_dn"]
    assert PROFILES["wrong_ca"][P + "cert_issuer_ski"] != TEST_CA_SKI
    assert profile_fields("valid", {"cert_serial": "AB"})[P + "cert_serial"] == "AB"
    with pytest.raises(RuleError, match="unknown client certificate profile"):
        profile_fields("bogus")
    with pytest.raises(RuleError, match="unknown client certificate field"):
        profile_fields("valid", {"cert_colour": "red"})


@pytest.mark.parametrize(
    "obj,match",
    [
        ({}, "no \\[\\[case\\]\\]"),
        ({"case": [{"expect": {"outcome": "deny"}}]}, "block, allow or challenge"),
        ({"case": [{"name": "a"}]}, "expect"),
        ({"case": [{"expect": {"outcome": "allow", "rul": "x"}}]}, "unknown expect key 'rul'"),
        ({"case": [{"expect": {"outcome": "allow"}, "client_cert": "stolen"}]}, "profile"),
        ({"case": [{"expect": {"outcome": "allow"}, "requst": {}}]}, "unknown key 'requst'"),
        ({"case": [{"name": "a", "expect": {"outcome": "allow"}},
                   {"name": "a", "expect": {"outcome": "allow"}}]}, "duplicate"),
        ({"rulset": "x", "case": []}, "unknown key 'rulset'"),
    ],
)
def test_case_file_validation(obj: dict, match: str) -> None:
    with pytest.raises(RulesetError, match=match):
        parse_cases(obj)


def test_failing_case_report_and_unknown_request_field() -> None:
    r = Ruleset.load(RULES / "mtls-required.json")
    cf = parse_cases({"case": [
        {"name": "wrong expectation", "request": {"http.host": "api.localhost"},
         "client_cert": "valid", "expect": {"outcome": "block", "rule": "mtls_enforce"}},
        {"name": "typo in field", "request": {"http.hots": "api.localhost"},
         "expect": {"outcome": "allow"}},
        {"name": "fine", "request": {"http.host": "api.localhost"},
         "expect": {"outcome": "block", "logged": [], "skipped": [], "action": "block"}},
    ]})
    report = run_cases(r, cf.cases)
    assert not report.ok and [x.case.name for x in report.failed] == [
        "wrong expectation", "typo in field"]
    text = report.render()
    assert "FAIL  wrong expectation" in text
    assert "outcome: expected 'block', got 'allow'" in text
    assert "rule: expected 'mtls_enforce', got None" in text
    assert "trace:" in text and "mtls_enforce" in text and "= false" in text
    assert 'unknown field \'http.hots\' in request (did you mean "http.host"?)' in text
    assert "PASS  fine" in text and "1 passed, 2 failed" in text


def test_cli_test_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(RULES / "mtls-required.json")]) == 0
    out = capsys.readouterr().out
    assert "PASS  no certificate is blocked" in out and "0 failed" in out
    assert main(["test", str(RULES / "api-shield.tests.toml")]) == 0
    bad = tmp_path / "bad.tests.toml"
    bad.write_text(f'ruleset = "{RULES / "mtls-required.json"}"\n'
                   '[[case]]\nname = "expects allow"\nrequest = { "http.host" = "api.localhost" }\n'
                   'expect = { outcome = "allow" }\n')
    assert main(["test", str(RULES / "mtls-required.json"), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  expects allow" in out and "trace:" in out
    assert main(["test", str(bad)]) == 1
    assert main(["test", str(tmp_path / "nothing.json")]) == 2


def test_cli_trace_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    req = tmp_path / "req.json"
    req.write_text(json.dumps({"http.host": "api.localhost", "http.request.uri.path": "/"}))
    assert main(["trace", str(RULES / "mtls-required.json"), "--request", str(req),
                 "--client-cert", "revoked"]) == 0
    out = capsys.readouterr().out
    assert "MATCH" in out and "decision: block by rule 'mtls_enforce'" in out
    assert "cf.tls_client_auth.cert_revoked  = true" in out
    assert main(["trace", str(RULES / "api-shield.json"), "--with",
                 str(RULES / "api-shield-payments.json"), "--list", str(RULES / "lists"),
                 "--set", "http.host=payments.example.com", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rule"] == "payments_requires_cert" and out["ruleset"] == "payments mTLS"
    assert {"ruleset": "API Shield mTLS per host", "rule": "staging_requires_cert",
            "action": "block", "status": "disabled", "note": "rule is disabled"} in out["rules"]
    case_shape = tmp_path / "case.json"
    case_shape.write_text(json.dumps({"request": {"http.host": "api.localhost"},
                                      "client_cert": "valid"}))
    assert main(["trace", str(RULES / "mtls-required.json"), "-r", str(case_shape)]) == 0
    assert "decision: allow" in capsys.readouterr().out
    assert main(["trace", str(RULES / "mtls-required.json"), "--set", "http.hots=x"]) == 2
    assert "did you mean" in capsys.readouterr().err


def test_cli_lint_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", str(RULES / "mtls-required.json"), "--dump", "toml"]) == 0
    out, err = capsys.readouterr()
    assert "ok, 1 rules" in err and "[[rules]]" in out  # only the document on stdout
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"name": "b", "rules": [
        {"ref": "one", "expression": "http.hots eq 1", "action": "block"},
        {"ref": "two", "expression": "ssl", "action": "allow"}]}))
    assert main(["lint", str(broken)]) == 1
    err = capsys.readouterr().err
    assert "rule 'one'" in err and "rule 'two'" in err and "^" in err
    assert main(["lint", str(RULES / "api-shield.json"), "--list", str(RULES / "lists"),
                 "--with", str(RULES / "api-shield-payments.json")]) == 0
    assert main(["lint", str(RULES / "api-shield.json"), "--list", str(RULES / "lists")]) == 1


def test_assert_decision_one_liners() -> None:
    path = RULES / "mtls-required.json"
    assert_decision(path, {"http.host": "api.localhost"}, "block", rule="mtls_enforce")
    assert_decision(path, {"http.host": "api.localhost"}, "allow", client_cert="valid", rule=None)
    d = assert_decision(path, {"http.host": "api.localhost"}, "block", status=403,
                        client_cert="revoked")
    assert d.rule.ref == "mtls_enforce"
    with pytest.raises(AssertionError) as info:
        assert_decision(path, {"http.host": "api.localhost"}, "allow")
    msg = str(info.value)
    assert "outcome: expected 'allow', got 'block'" in msg and "trace:" in msg
    with pytest.raises(AssertionError, match="unknown field"):
        assert_decision(path, {"http.hostname": "x"}, "allow")


def test_pytest_plugin(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["edgerules.testing"]\n')
    (tmp_path / "pytest.ini").write_text("[pytest]\nedgerules_policy_tests = true\n")
    (tmp_path / "test_user.py").write_text(
        "from edgerules.testing import assert_decision\n"
        "def test_fixture(edgerules_ruleset, edgerules_request):\n"
        f"    rs = edgerules_ruleset({str(RULES / 'mtls-required.json')!r})\n"
        "    assert edgerules_request(rs, {'http.host': 'api.localhost'}).outcome == 'block'\n"
        "    assert_decision(rs, {'http.host': 'api.localhost'}, 'allow', client_cert='valid')\n"
    )
    cases = (RULES / "mtls-required.tests.toml").read_text().replace(
        'ruleset = "mtls-required.json"', f'ruleset = {json.dumps(str(RULES / "mtls-required.json"))}')
    (tmp_path / "mtls.tests.toml").write_text(cases + (
        '\n[[case]]\nname = "deliberately wrong"\nclient_cert = "valid"\n'
        'expect = { outcome = "block" }\n'))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         str(tmp_path)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "1 failed, 11 passed" in out, out
    assert "policy case 'deliberately wrong' failed" in out, out
