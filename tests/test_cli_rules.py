"""``edgerules check`` / ``edgerules eval`` (engine-front's CLI), run in-process through
``edgerules.cli.main`` with captured output."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from edgerules.cli import main


def test_check_prints_canonical_form(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", 'http.host == "a.com" && !ssl']) == 0
    out, err = capsys.readouterr()
    assert out == 'http.host eq "a.com" and not ssl\n'
    assert err == ""


def test_check_syntax_error_is_caret_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "ip.src == 192.0.2.0/24"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "error: CIDR only allowed inside { } (line 1, column 11)\n"
        "  | ip.src == 192.0.2.0/24\n"
        "  |           ^^^^^^^^^^^^ write {192.0.2.0/24} with in\n"
    )


def test_check_type_error_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", 'http.hots eq "a"']) == 1
    _, err = capsys.readouterr()
    assert err.startswith("error: ")
    assert "^^^^^^^^^" in err


def test_check_parse_only_accepts_unknown_fields(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--parse-only", "some.field == 0x10"]) == 0
    assert capsys.readouterr().out == "some.field eq 16\n"


def test_check_ast(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--ast", "ssl"]) == 0
    assert capsys.readouterr().out == "BoolValue(value=FieldRef(name='ssl'))\n"


def test_check_reads_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO('http.host eq "a"\nand ssl\n'))
    assert main(["check", "-"]) == 0
    assert capsys.readouterr().out == 'http.host eq "a" and ssl\n'


@pytest.fixture
def fields_file(tmp_path: Path) -> Path:
    path = tmp_path / "fields.json"
    path.write_text(json.dumps({"http.host": "a.com", "ip.src": "192.0.2.1", "ssl": True}))
    return path


def test_eval_true_exit_0(capsys: pytest.CaptureFixture[str], fields_file: Path) -> None:
    code = main(
        ["eval", 'http.host eq "a.com" and ip.src in {192.0.2.0/24}', "--fields", str(fields_file)]
    )
    assert code == 0
    assert capsys.readouterr().out == "true\n"


def test_eval_false_exit_1(capsys: pytest.CaptureFixture[str], fields_file: Path) -> None:
    assert main(["eval", "not ssl", "--fields", str(fields_file)]) == 1
    assert capsys.readouterr().out == "false\n"


def test_eval_without_fields_uses_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", 'http.host eq ""']) == 0
    assert capsys.readouterr().out == "true\n"


def test_eval_error_exit_2(capsys: pytest.CaptureFixture[str], fields_file: Path) -> None:
    assert main(["eval", "http.host eq", "--fields", str(fields_file)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "expected a value after eq" in err


def test_eval_bad_fields_file_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    assert main(["eval", "ssl", "--fields", str(bad)]) == 2
    assert "JSON object" in capsys.readouterr().err
    bad.write_text("{")
    assert main(["eval", "ssl", "--fields", str(bad)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert main(["eval", "ssl", "--fields", str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_eval_wrong_field_type_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    path.write_text(json.dumps({"ip.src": "not an ip"}))
    assert main(["eval", "ip.src eq 1.2.3.4", "--fields", str(path)]) == 2
    assert capsys.readouterr().err.strip() != ""


def test_eval_fields_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO('{"cf.edge.server_port": 443}'))
    assert main(["eval", "cf.edge.server_port in {80 443}", "--fields", "-"]) == 0
    assert capsys.readouterr().out == "true\n"


def test_eval_with_named_list(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fields_file: Path
) -> None:
    lst = tmp_path / "office.txt"
    lst.write_text("# kind: ip\n192.0.2.0/24\n")
    assert (
        main(["eval", "ip.src in $office", "--list", str(lst), "--fields", str(fields_file)]) == 0
    )
    assert capsys.readouterr().out == "true\n"
    assert main(["eval", "ip.src in $other", "--list", str(lst), "--fields", str(fields_file)]) == 2
