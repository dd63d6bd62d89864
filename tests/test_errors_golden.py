"""Golden caret renderings of parse errors, compared as whole strings (not just "an error was raised"), plus the
ParseError cases of ``tests/cases/syntax.toml`` checked against the parser alone (so the
syntax cases hold even where the checker/compiler would fail first)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from edgerules.errors import ParseError
from edgerules.lang.parser import parse_expression

HERE = Path(__file__).parent
GOLDEN = tomllib.loads((HERE / "golden" / "parse_errors.toml").read_text(encoding="utf-8"))["case"]


@pytest.mark.parametrize("case", GOLDEN, ids=[c["id"] for c in GOLDEN])
def test_golden_rendering(case: dict[str, Any]) -> None:
    with pytest.raises(ParseError) as info:
        parse_expression(case["expr"], case.get("name"))
    assert str(info.value) + "\n" == case["rendered"]


def _syntax_error_cases() -> list[Any]:
    data = tomllib.loads((HERE / "cases" / "syntax.toml").read_text(encoding="utf-8"))
    params = []
    for group in data["group"]:
        for case in group["case"]:
            if case.get("error", {}).get("class") == "ParseError":
                params.append(pytest.param(case, id=case["id"]))
    return params


@pytest.mark.parametrize("case", _syntax_error_cases())
def test_syntax_case_is_a_parse_error(case: dict[str, Any]) -> None:
    want = case["error"]
    with pytest.raises(ParseError) as info:
        parse_expression(case["expr"])
    err = info.value
    assert [err.span.start, err.span.end] == want["span"], repr(err)
    assert 0 <= err.span.start <= err.span.end <= len(case["expr"])
    if "contains" in want:
        assert want["contains"] in str(err)


def test_messages_are_lowercase_and_unpunctuated() -> None:
    for case in _syntax_error_cases():
        with pytest.raises(ParseError) as info:
            parse_expression(case.values[0]["expr"])
        message = info.value.message
        # lower-case, except acronyms such as "CIDR"
        assert not re.match(r"[A-Z][a-z]", message), message
        assert not message.endswith("."), message
        for lark_name in ("RPAR", "LPAR", "STRING", "FIELD", "$END", "CMP_OP", "Token("):
            assert lark_name not in message, message


def _regenerate() -> None:  # pragma: no cover - a maintenance helper
    """Re-render every golden case in place (``python tests/test_errors_golden.py``);
    review the diff line by line before keeping it."""
    import json

    path = HERE / "golden" / "parse_errors.toml"
    header = [
        line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#")
    ]
    out = [*header, ""]
    for case in GOLDEN:
        try:
            parse_expression(case["expr"], case.get("name"))
        except ParseError as err:
            rendered = str(err)
        else:
            raise SystemExit(f"{case['id']}: no error any more")
        assert "'''" not in rendered
        out += ["[[case]]", f"id = {json.dumps(case['id'])}", f"expr = {json.dumps(case['expr'])}"]
        if case.get("name"):
            out.append(f"name = {json.dumps(case['name'])}")
        out += [f"rendered = '''\n{rendered}\n'''", ""]
    path.write_text("\n".join(out), encoding="utf-8")


if __name__ == "__main__":  # pragma: no cover
    _regenerate()
