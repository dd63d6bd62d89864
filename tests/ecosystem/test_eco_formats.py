"""Rules kept as code: Cloudflare API responses, Terraform ``cloudflare_ruleset``
resources and octorules YAML load like the JSON they stand for, detected by content, and
every rule error points at the line and column of the ORIGINAL file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from edgerules.cli import main
from edgerules.rulesets import Ruleset, RulesetError

MTLS = 'http.host eq "api.example.com" and not cf.tls_client_auth.cert_verified'

RULESET = {
    "name": "Custom firewall",
    "kind": "zone",
    "phase": "http_request_firewall_custom",
    "rules": [
        {"ref": "mtls", "description": "require mTLS", "expression": MTLS, "action": "block",
         "action_parameters": {"response": {"status_code": 403, "content": '{"error": "cert"}',
                                            "content_type": "application/json"}},
         "enabled": True},
        {"ref": "log_x", "expression": 'http.request.uri.path eq "/x"\nand ssl\n',
         "action": "log", "enabled": False},
    ],
}

TERRAFORM_V4 = r'''
terraform {
  required_providers {
    cloudflare = { source = "cloudflare/cloudflare", version = "~> 4" }
  }
}

resource "cloudflare_ruleset" "zone_custom_firewall" {
  zone_id     = var.zone_id
  name        = "Custom firewall"
  kind        = "zone"
  phase       = "http_request_firewall_custom"

  rules {
    ref         = "mtls"
    description = "require mTLS"
    expression  = "http.host eq \"api.example.com\" and not cf.tls_client_auth.cert_verified"
    action      = "block"
    action_parameters {
      response {
        status_code  = 403
        content      = "{\"error\": \"cert\"}"
        content_type = "application/json"
      }
    }
    enabled = true
  }
  rules {
    ref        = "log_x"
    expression = <<-EOT
      http.request.uri.path eq "/x"
      and ssl
    EOT
    action     = "log"
    enabled    = false
  }
}

resource "cloudflare_ruleset" "transform" {
  zone_id = var.zone_id
  name    = "transform"
  kind    = "zone"
  phase   = "http_request_late_transform"
}
'''

TERRAFORM_V5 = r'''
resource "cloudflare_ruleset" "zone_custom_firewall" {
  zone_id = "0da42c8d2132a9ddaf714f9e7c920711"
  name    = "Custom firewall"
  kind    = "zone"
  phase   = "http_request_firewall_custom"
  rules = [{
    ref         = "mtls"
    description = "require mTLS"
    expression  = "http.host eq \"api.example.com\" and not cf.tls_client_auth.cert_verified"
    action      = "block"
    action_parameters = {
      response = {
        status_code  = 403
        content      = "{\"error\": \"cert\"}"
        content_type = "application/json"
      }
    }
    enabled = true
  }, {
    ref        = "log_x"
    expression = "http.request.uri.path eq \"/x\"\nand ssl\n"
    action     = "log"
    enabled    = false
  }]
}
'''

OCTORULES = '''# Cloudflare rules for example.com (octorules zone file)
redirect_rules:
  - ref: www-redirect
    expression: 'http.host eq "www.example.com"'
    action_parameters:
      from_value:
        target_url:
          expression: 'concat("https://example.com", http.request.uri)'
        status_code: 301

waf_custom_rules:
  - ref: mtls
    description: "require mTLS"
    expression: 'http.host eq "api.example.com" and not cf.tls_client_auth.cert_verified'
    action: block
    action_parameters:
      response:
        status_code: 403
        content: '{"error": "cert"}'
        content_type: application/json
    enabled: true
  - ref: log_x
    expression: |
      http.request.uri.path eq "/x"
      and ssl
    action: log
    enabled: false
  - ref: experimental
    expression: 'ip.src.country in {"XX"}'
    action: block
    octorules:
      ignored: true
'''


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def decisions(rs: Ruleset) -> list[tuple[str, str | None]]:
    out = []
    for host, verified in (("api.example.com", False), ("api.example.com", True),
                           ("other.example", False)):
        d = rs.evaluate({"http.host": host, "cf.tls_client_auth.cert_verified": verified})
        out.append((d.outcome, d.rule.ref if d.rule else None))
    return out


EXPECTED = Ruleset.from_dict(RULESET)


@pytest.mark.parametrize(("name", "text"), [
    ("api.json", json.dumps({"result": {**RULESET, "id": "2f2feab2026849078ba485f918791bdc",
                                        "version": "3", "last_updated": "2026-01-01T00:00:00Z"},
                             "success": True, "errors": [], "messages": []}, indent=2)),
    ("main.tf", TERRAFORM_V4),
    ("v5.tf", TERRAFORM_V5),
    ("example.com.yaml", OCTORULES),
    ("no-extension", TERRAFORM_V4),        # detected by content, not by name
    ("response.txt", json.dumps({"result": RULESET, "success": True})),
])
def test_every_format_loads_the_same_rules(tmp_path, name, text):
    rs = Ruleset.load(write(tmp_path, name, text))
    assert [r.to_dict()["expression"] for r in rs.rules] == [r.expression for r in EXPECTED.rules]
    assert [(r.ref, r.action, r.enabled) for r in rs.rules] == [("mtls", "block", True),
                                                                 ("log_x", "log", False)]
    assert rs.rule("mtls").action_parameters == RULESET["rules"][0]["action_parameters"]
    assert decisions(rs) == decisions(EXPECTED)


def test_octorules_ignored_rules_and_zone_name(tmp_path):
    rs = Ruleset.load(write(tmp_path, "example.com.yaml", OCTORULES))
    assert rs.name == "example.com" and "experimental" not in {r.ref for r in rs.rules}
    nested = "cloudflare:\n  waf_custom_rules:\n    - ref: a\n      expression: ssl\n      action: block\n"
    assert [r.ref for r in Ruleset.load(write(tmp_path, "z.yaml", nested)).rules] == ["a"]


@pytest.mark.parametrize(("name", "text", "needle"), [
    ("failed.json", json.dumps({"result": None, "success": False, "errors": [
        {"code": 10000, "message": "Authentication error"}], "messages": []}),
     "failed Cloudflare API response (success: false): 10000: Authentication error"),
    ("list.json", json.dumps({"result": [{"id": "a"}], "success": True}), "listing 1 rulesets"),
    ("interp.tf", TERRAFORM_V4.replace('"http.host eq', '"${var.host} eq'), "Terraform expression"),
    ("two.tf", TERRAFORM_V4 + TERRAFORM_V5.replace("zone_custom_firewall", "second"),
     "2 cloudflare_ruleset resources"),
    ("none.tf", 'resource "cloudflare_ruleset" "t" {\n  phase = "http_request_late_transform"\n}\n',
     "no cloudflare_ruleset in phase http_request_firewall_custom"),
    ("bad.tf", 'resource "cloudflare_ruleset" "t" {\n  rules {\n', "invalid Terraform HCL"),
    ("dyn.tf", 'resource "cloudflare_ruleset" "t" {\n phase = "http_request_firewall_custom"\n'
               ' dynamic "rules" {\n  for_each = local.r\n  content {\n   action = "block"\n  }\n }\n}\n',
     "dynamic"),
    ("other.yaml", "name: x\nrules: []\n", "not an octorules zone file"),
    ("bad.yaml", "waf_custom_rules:\n  - ref: [\n", "invalid YAML"),
    ("mystery.txt", "just some words\n", "cannot tell the format"),
])
def test_format_errors_are_clear(tmp_path, name, text, needle):
    with pytest.raises(RulesetError) as err:
        Ruleset.load(write(tmp_path, name, text))
    assert needle in str(err.value)
    assert str(tmp_path) in str(err.value)


def _caret_target(message: str) -> tuple[int, int, str, str]:
    """(line, column, the file line shown, the text under the caret)."""
    m = re.search(r"line (\d+), column (\d+)\)", message)
    assert m, message
    lines = message.splitlines()
    shown = next(x for x in lines if x.startswith("  | ") and "^" not in x)[4:]
    carets = next(x for x in lines if x.startswith("  | ") and "^" in x)[4:]
    start = carets.index("^")
    return int(m.group(1)), int(m.group(2)), shown, shown[start:start + carets.count("^")]


BAD = 'http.host eq "a\\"b" and http.hots eq "x"'  # an escaped quote before the mistake


@pytest.mark.parametrize(("name", "text"), [
    ("r.json", '{\n  "name": "x",\n  "rules": [\n    {"ref": "ok", "expression": "ssl", "action": "log"},\n'
               '    {"ref": "bad",\n     "expression": "http.host eq \\"a\\\\\\"b\\" and http.hots eq \\"x\\"",\n'
               '     "action": "block"}\n  ]\n}\n'),
    ("r.toml", 'name = "x"\n\n[[rules]]\nref = "bad"\naction = "block"\nexpression = \'\'\'\n'
               'http.host eq "a\\"b"\nand http.hots eq "x"\'\'\'\n'),
    ("r.tf", 'resource "cloudflare_ruleset" "z" {\n  name  = "x"\n  phase = "http_request_firewall_custom"\n'
             '  rules {\n    ref        = "bad"\n    action     = "block"\n'
             '    expression = <<-EOT\n      http.host eq "a\\"b"\n      and http.hots eq "x"\n    EOT\n  }\n}\n'),
    ("r.yaml", 'waf_custom_rules:\n  - ref: bad\n    action: block\n    expression: |-\n'
               '      http.host eq "a\\"b"\n      and http.hots eq "x"\n'),
    ("q.yaml", 'waf_custom_rules:\n  - ref: bad\n    action: block\n'
               '    expression: "http.host eq \\"a\\\\\\"b\\" and http.hots eq \\"x\\""\n'),
])
def test_expression_errors_point_into_the_file(tmp_path, name, text):
    path = write(tmp_path, name, text)
    with pytest.raises(RulesetError) as err:
        Ruleset.load(path)
    message = str(err.value)
    line, column, shown, under = _caret_target(message)
    file_lines = text.split("\n")
    assert shown == file_lines[line - 1].replace("\t", "    ")  # the file's own line is shown
    assert under == "http.hots"  # the caret is under the mistake, in the file
    assert shown.index("http.hots") == column - 1
    assert f"rule \"bad\" in {path}" in message


def test_other_rule_errors_name_the_file_line(tmp_path):
    text = TERRAFORM_V4.replace('action      = "block"', 'action      = "allow"')
    path = write(tmp_path, "main.tf", text)
    with pytest.raises(RulesetError) as err:
        Ruleset.load(path)
    line = next(i for i, x in enumerate(text.split("\n"), 1) if "http.host eq" in x)
    assert f"{path}, line {line}: unsupported action 'allow'" in str(err.value)


def test_cli_test_runs_cases_against_terraform(tmp_path, capsys):
    write(tmp_path, "main.tf", TERRAFORM_V4)
    cases = write(tmp_path, "main.tests.toml", '''
ruleset = "main.tf"
[[case]]
name = "no certificate is blocked"
request = { "http.host" = "api.example.com" }
expect = { outcome = "block", rule = "mtls", status = 403 }
[[case]]
name = "valid certificate passes"
request = { "http.host" = "api.example.com" }
client_cert = "valid"
expect = { outcome = "allow" }
''')
    assert main(["test", str(cases)]) == 0, capsys.readouterr()
    assert "2 passed, 0 failed" in capsys.readouterr().out
    assert main(["lint", str(tmp_path / "main.tf")]) == 0
