"""Hot reload of the rules (issue 13 item 4) on a real ``edgerules proxy`` subprocess:
real SIGHUPs, ``POST /reload`` and the file watch; real HTTPS requests decide which rules
are in force; the access log says which ruleset version decided each request."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from ops_helpers import ProxyProcess, gated_origin, value
from proxy_helpers import PLAIN_HOST, Client

from edgerules.cli.proxy_rules import load_rules


def ruleset(*blocked: str, broken: int = 0) -> str:
    rules = [
        {"ref": f"block_{p.strip('/')}", "expression": f'http.request.uri.path eq "{p}"', "action": "block"}
        for p in blocked
    ]
    bad = [
        {"ref": "typo", "expression": 'http.hots eq "a"', "action": "block"},
        {"ref": "unclosed", "expression": '(http.host eq "a"', "action": "block"},
        {"ref": "bad_action", "expression": "true", "action": "explode"},
    ]
    return json.dumps({"name": "ops", "rules": rules + bad[:broken]})


def status(port: int, path: str) -> int:
    with Client(port, PLAIN_HOST) as c:
        return c.request(path=path)[0]


def access_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def version_of(rules: Path) -> str:
    return load_rules(str(rules)).version  # type: ignore[return-value]


def test_a_broken_ruleset_is_rejected_with_every_error_and_the_old_one_stays(
    tmp_path, origin
) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(ruleset("/one"))
    old = version_of(rules)
    with ProxyProcess("--upstream", f"http://127.0.0.1:{origin.port}", "--rules", str(rules),
                      "--access-log", "off") as proxy:
        assert status(proxy.port, "/one") == 403
        rules.write_text(ruleset("/two", broken=3))
        mark = proxy.hup()
        first = proxy.wait_for("rejected", after=mark)
        proxy.wait_for("explode", after=mark)  # the last of the three errors
        report = proxy.stderr_since(mark)
        assert first.startswith("ERROR ")
        assert f"ruleset {old} stays in force" in first
        # Every broken rule, in one report: the caret errors of both expressions and the
        # unknown action.
        for text in ("3 broken rules", "'typo'", 'unknown field "http.hots"',
                     "'unclosed'", "'bad_action'", "explode", "^"):
            assert text in report, text
        assert "Traceback" not in report
        # The old rules are still enforced; the new, half-good ones are not.
        assert status(proxy.port, "/one") == 403
        assert status(proxy.port, "/two") == 200
        metrics = proxy.metrics()
        assert value(metrics, "edgerules_ruleset_reloads_total", result="rejected") == 1
        assert value(metrics, "edgerules_ruleset_reloads_total", result="ok") == 0
        assert value(metrics, "edgerules_ruleset_info", version=old, generation="1") == 1
        # A ruleset file that is not even JSON, and one that vanished: rejected too.
        rules.write_text("{not json")
        mark = proxy.hup()
        assert "invalid JSON" in proxy.wait_for("invalid JSON", after=mark)
        rules.unlink()
        mark = proxy.hup()
        assert "cannot read ruleset" in proxy.wait_for("cannot read ruleset", after=mark)
        assert status(proxy.port, "/one") == 403
        assert proxy.proc.poll() is None


def test_a_good_ruleset_takes_effect_for_new_requests_and_the_log_names_it(
    tmp_path, origin
) -> None:
    rules = tmp_path / "rules.json"
    log = tmp_path / "access.log"
    rules.write_text(ruleset("/one"))
    v1 = version_of(rules)
    with ProxyProcess("--upstream", f"http://127.0.0.1:{origin.port}", "--rules", str(rules),
                      "--access-log", str(log)) as proxy:
        with Client(proxy.port, PLAIN_HOST) as keep_alive:
            assert keep_alive.request(path="/one")[0] == 403
            assert keep_alive.request(path="/two")[0] == 200
            rules.write_text(ruleset("/two"))
            v2 = version_of(rules)
            mark = proxy.hup()
            line = proxy.wait_for("in force", after=mark)
            assert f"ruleset {v2} in force (generation 2)" in line
            # The next request decides with the new rules, on the same connection too.
            assert keep_alive.request(path="/one")[0] == 200
            assert keep_alive.request(path="/two")[0] == 403
        metrics = proxy.metrics()
        assert value(metrics, "edgerules_ruleset_reloads_total", result="ok") == 1
        assert value(metrics, "edgerules_ruleset_info", version=v2, generation="2") == 1
        # The same content again: reloaded, version unchanged.
        mark = proxy.hup()
        assert "unchanged" in proxy.wait_for("in force", after=mark)
    records = access_log(log)
    assert [(r["path"], r["status"], r["ruleset"]) for r in records] == [
        ("/one", 403, v1),
        ("/two", 200, v1),
        ("/one", 200, v2),
        ("/two", 403, v2),
    ]
    assert v1 != v2


def test_an_in_flight_request_finishes_under_the_rules_it_started_with(tmp_path) -> None:
    rules = tmp_path / "rules.json"
    log = tmp_path / "access.log"
    rules.write_text(ruleset("/other"))
    v1 = version_of(rules)
    with gated_origin() as origin, ProxyProcess(
        "--upstream", f"http://127.0.0.1:{origin.port}", "--rules", str(rules),
        "--access-log", str(log),
    ) as proxy:
        result: dict[str, int] = {}

        def slow_request() -> None:
            result["status"] = status(proxy.port, "/gated")

        slow = threading.Thread(target=slow_request)
        slow.start()
        # The request was decided (allowed by v1) and is waiting at the origin.
        assert origin.arrived.wait(30)
        rules.write_text(ruleset("/gated"))
        v2 = version_of(rules)
        mark = proxy.hup()
        proxy.wait_for(f"ruleset {v2} in force", after=mark)
        assert status(proxy.port, "/gated") == 403  # a new request: the new rules
        assert "status" not in result  # the old one is still in flight
        origin.release.set()
        slow.join(30)
        assert result["status"] == 200  # finished under the rules it started with
    by_status = {r["status"]: r for r in access_log(log) if r["path"] == "/gated"}
    assert by_status[200]["ruleset"] == v1
    assert by_status[403]["ruleset"] == v2 and by_status[403]["rule"] == "block_gated"


def test_post_reload_on_the_admin_listener(tmp_path, origin) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(ruleset("/one"))
    v1 = version_of(rules)
    with ProxyProcess("--upstream", f"http://127.0.0.1:{origin.port}", "--rules", str(rules),
                      "--access-log", "off") as proxy:
        rules.write_text(ruleset("/two", broken=1))
        code, _h, body = proxy.admin("POST", "/reload")
        answer = json.loads(body)
        assert code == 422 and answer["result"] == "rejected" and answer["version"] == v1
        assert 'unknown field "http.hots"' in answer["errors"]
        _code, _h, ready = proxy.admin("GET", "/readyz")
        assert json.loads(ready)["checks"]["rules"]["last_reload_error"]  # still ready
        assert status(proxy.port, "/one") == 403
        rules.write_text(ruleset("/two"))
        code, _h, body = proxy.admin("POST", "/reload")
        answer = json.loads(body)
        assert code == 200 and answer["result"] == "ok" and answer["changed"] is True
        assert answer["version"] == version_of(rules) and answer["generation"] == 2
        assert status(proxy.port, "/one") == 200
        assert status(proxy.port, "/two") == 403
        # GET does not reload.
        assert proxy.admin("GET", "/reload")[0] == 405


def test_the_file_watch_reloads_when_asked_to(tmp_path, origin) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(ruleset("/one"))
    with ProxyProcess("--upstream", f"http://127.0.0.1:{origin.port}", "--rules", str(rules),
                      "--access-log", "off", "--watch-rules", "0.1") as proxy:
        mark = proxy.mark()
        rules.write_text(ruleset("/two"))
        line = proxy.wait_for("in force", after=mark)
        assert "rules file changed" in line
        assert status(proxy.port, "/two") == 403
        mark = proxy.mark()
        rules.write_text(ruleset("/three", broken=1))
        assert "rejected" in proxy.wait_for("rejected", after=mark)
        assert status(proxy.port, "/two") == 403


def test_sighup_without_rules_changes_nothing(origin) -> None:
    with ProxyProcess("--upstream", f"http://127.0.0.1:{origin.port}", "--access-log", "off",
                      admin=False) as proxy:
        mark = proxy.hup()
        assert "nothing to reload" in proxy.wait_for("nothing to reload", after=mark)
        assert status(proxy.port, "/") == 200


@pytest.mark.parametrize("bad", ["-1", "nan", "inf"])
def test_a_negative_watch_interval_is_an_error(origin, bad) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "edgerules", "proxy", "--listen", "127.0.0.1:0", "--upstream",
         f"http://127.0.0.1:{origin.port}", "--watch-rules", bad],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    assert "--watch-rules must be >= 0" in proc.stderr and "Traceback" not in proc.stderr
