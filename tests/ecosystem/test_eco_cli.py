"""CLI and package hygiene: --version, machine output alone on stdout, trace's JSON and
--exit-code, one name for the request-fields option, JUnit XML, one exit-status scheme,
non-UTF-8 arguments, cryptography's warnings turned into reasons, the pytest plugin's
collection, the store default shared by the store commands, the proxy and serve."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from edgerules.cli import main

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"
EDGERULES = Path(sys.executable).with_name("edgerules")


def run(*args: str | bytes, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(EDGERULES), *args], capture_output=True, timeout=60, cwd=cwd)


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    from importlib.metadata import version

    assert capsys.readouterr().out.strip() == f"edgerules {version('edgerules')}"


def test_non_utf8_argument_is_refused_with_a_message(tmp_path):
    proc = run(b"check", b"http.host eq \"caf\xe9\"", cwd=tmp_path)
    err = proc.stderr.decode()
    assert proc.returncode == 2
    assert "argument 2 is not valid UTF-8" in err and "\\xe9" in err and "Traceback" not in err
    proc = run(b"lint", b"rules-\xff.json", cwd=tmp_path)
    assert proc.returncode == 2 and "argument 2" in proc.stderr.decode()


@pytest.mark.parametrize("fmt", ["json", "toml"])
def test_lint_dump_prints_only_the_document(capsys, fmt):
    assert main(["lint", str(RULES / "mtls-required.json"), "--dump", fmt]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out) if fmt == "json" else tomllib.loads(out)
    assert doc["name"] == "mTLS required"
    assert "ok, 1 rules" in err and "ok, 1 rules" not in out


def test_lint_dump_takes_one_ruleset(capsys):
    path = str(RULES / "mtls-required.json")
    assert main(["lint", path, path, "--dump", "json"]) == 2
    assert capsys.readouterr().out == ""


def test_trace_json_has_the_response_and_exit_code(tmp_path, capsys):
    req = tmp_path / "req.json"
    req.write_text('{"http.host": "api.localhost"}')
    path = str(RULES / "mtls-required.json")
    assert main(["trace", path, "--fields", str(req), "--json", "--exit-code"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["outcome"] == "block" and out["status"] == 403
    assert out["response"]["status_code"] == 403 and out["response"]["default"] is False
    assert out["response"]["content_type"] == "application/json"
    # allowed: exit 0 even with --exit-code; no response (null)
    assert main(["trace", path, "--fields", str(req), "--client-cert", "valid", "--json",
                 "--exit-code"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["outcome"] == "allow" and out["status"] is None and out["response"] is None
    # without --exit-code a block is exit 0 (the trace was produced)
    assert main(["trace", path, "--fields", str(req)]) == 0


def test_trace_json_default_block_page(tmp_path, capsys):
    rs = tmp_path / "r.json"
    rs.write_text(json.dumps({"name": "r", "rules": [{"ref": "x", "expression": "ssl",
                                                       "action": "block"}]}))
    assert main(["trace", str(rs), "--set", "ssl=true", "--json"]) == 0
    response = json.loads(capsys.readouterr().out)["response"]
    assert response["default"] is True and response["status_code"] == 403
    assert response["content_type"].startswith("text/plain") and "x" in response["content"]


def test_one_name_for_request_fields(tmp_path, capsys):
    req = tmp_path / "req.json"
    req.write_text('{"http.host": "api.localhost"}')
    path = str(RULES / "mtls-required.json")
    assert main(["eval", 'http.host eq "api.localhost"', "--fields", str(req)]) == 0
    assert main(["trace", path, "--fields", str(req)]) == 0
    assert main(["trace", path, "--request", str(req)]) == 0  # the 0.1 name still works
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["trace", "--help"])
    helptext = capsys.readouterr().out
    assert "--fields FILE.json" in helptext and "--request" not in helptext


def _cases(tmp_path: Path, *, failing: bool) -> Path:
    expect = "allow" if failing else "block"
    path = tmp_path / "c.tests.toml"
    path.write_text(f'''
ruleset = "{RULES / "mtls-required.json"}"
[[case]]
name = "valid passes"
request = {{ "http.host" = "api.localhost" }}
client_cert = "valid"
expect = {{ outcome = "allow" }}
[[case]]
name = "no <certificate> & \\"quotes\\""
request = {{ "http.host" = "api.localhost" }}
expect = {{ outcome = "{expect}" }}
''')
    return path


def test_junit_xml(tmp_path, capsys):
    junit = tmp_path / "out" / "junit.xml"
    junit.parent.mkdir()
    assert main(["test", str(_cases(tmp_path, failing=True)), "--junit", str(junit)]) == 1
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "2" and root.get("failures") == "1"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["valid passes", 'no <certificate> & "quotes"']
    failure = cases[1].find("failure")
    assert failure is not None and "outcome: expected 'allow', got 'block'" in failure.get("message")
    assert "trace:" in failure.text
    assert main(["test", str(_cases(tmp_path, failing=False)), "--junit", str(junit)]) == 0
    assert ET.parse(junit).getroot().get("failures") == "0"
    broken = tmp_path / "broken.tests.toml"
    broken.write_text("[[case]\n")
    assert main(["test", str(broken), "--junit", str(junit)]) == 2
    error = ET.parse(junit).getroot().find("testsuite/testcase/error")
    assert error is not None and "invalid TOML" in error.get("message")
    capsys.readouterr()
    assert main(["test", str(_cases(tmp_path, failing=False)), "--junit", "-"]) == 0
    out, err = capsys.readouterr()
    assert ET.fromstring(out).get("tests") == "2" and "2 passed" in err


def test_cryptography_warnings_become_reasons(tmp_path):
    key, crt = tmp_path / "n.key", tmp_path / "n.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-subj", "/CN=neg", "-days", "2", "-set_serial", "-5", "-addext",
                    "basicConstraints=critical,CA:TRUE"], check=True, capture_output=True,
                   timeout=30)
    store = str(tmp_path / "s.db")
    assert run("ca", "create", "--store", store).returncode == 0
    proc = run("ca", "upload", "--store", store, str(crt))
    err = proc.stderr.decode()
    assert "CryptographyDeprecationWarning" not in err and ".py:" not in err, err
    assert err.count("serial number is not positive, which RFC 5280 forbids") == 1, err


PLUGIN_CONFTEST = 'pytest_plugins = ["edgerules.testing"]\n'


def _pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           "-o", "edgerules_policy_tests=true", *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd)


def test_pytest_plugin_malformed_file_is_one_clean_collection_error(tmp_path):
    (tmp_path / "conftest.py").write_text(PLUGIN_CONFTEST)
    (tmp_path / "bad.tests.toml").write_text('ruleset = "nope.json"\n[[case]]\nname = 1\n')
    proc = _pytest(tmp_path, str(tmp_path))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "ERROR collecting bad.tests.toml" in out and "1 error" in out
    assert "Traceback" not in out and "edgerules/" not in out and "site-packages" not in out


def test_pytest_plugin_paths_relative_to_the_case_file_and_ids(tmp_path):
    project = tmp_path / "project"
    (project / "policies" / "rules").mkdir(parents=True)
    (project / "conftest.py").write_text(PLUGIN_CONFTEST)
    (project / "policies" / "rules" / "r.json").write_text((RULES / "mtls-required.json").read_text())
    (project / "policies" / "r.tests.toml").write_text('''
ruleset = "rules/r.json"
[[case]]
name = "valid certificate   passes"
request = { "http.host" = "api.localhost" }
client_cert = "valid"
expect = { outcome = "allow" }
[[case]]
name = "valid certificate passes"
request = { "http.host" = "api.localhost" }
client_cert = "valid"
expect = { outcome = "allow" }
''')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = _pytest(elsewhere, "--rootdir", str(project), str(project), "--collect-only", "-q")
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ids == ["policies/r.tests.toml::valid_certificate_passes",
                   "policies/r.tests.toml::valid_certificate_passes_2"], ids
    assert all(" " not in i for i in ids)
    proc = _pytest(elsewhere, "--rootdir", str(project), str(project), "-q")
    assert proc.returncode == 0 and "2 passed" in proc.stdout, proc.stdout


def test_proxy_and_serve_use_the_store_commands_default(tmp_path, monkeypatch):
    from edgerules.cli import build_parser
    from edgerules.cli.proxy_cmd import build_server

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EDGERULES_STORE", raising=False)
    assert main(["ca", "create"]) == 0  # creates ./edgerules.db, the store default
    assert main(["host", "enable", "api.example.com"]) == 0
    args = build_parser().parse_args(["proxy", "--upstream", "http://127.0.0.1:9",
                                      "--access-log", "off"])
    server = build_server(args)
    try:
        assert server.store is not None and "api.example.com" in server.store.mtls_hostnames()
    finally:
        server.store.close()
    from edgerules.cli.serve_cmd import resolve_store

    store = resolve_store(None, command="serve")
    assert store is not None and "api.example.com" in store.mtls_hostnames()
    store.close()
    os.remove(tmp_path / "edgerules.db")
    assert resolve_store(None, command="serve") is None
