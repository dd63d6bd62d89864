"""Hypothesis properties of the parser and formatter (engine-front), run briefly in
``make test``; ``fuzz/run.py`` runs the same targets at length.

1. any text -> AST or ParseError with a span within [0, len(text)], nothing else escapes;
2. generated ASTs -> parse(format(ast)) == ast, and format is a fixed point.

Example counts come from the hypothesis profile (tests/conftest.py: dev, ci, nightly).
"""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))

import fuzz_parser
from edgerules.lang import ast
from hypothesis_targets import (
    check_any_text,
    check_round_trip,
    expressions,
    texts,
)


@given(texts)
@example("")
@example("(" * 3000)
@example("not " * 1000 + "a")
@example('x eq "\ud800"')
@example("x in {" + "1 " * 2000 + "}")
@example('x matches r#"a"')
def test_any_text_parses_or_raises_parse_error(text: str) -> None:
    check_any_text(text)


@given(expressions)
@example(ast.Comparison(ast.FieldRef("x"), "matches", ast.Regex('a"#b"')))
@example(ast.Comparison(ast.FieldRef("x"), "eq", ast.Literal("string", b'\xff"\\', raw=True)))
@example(
    ast.Logical(
        "or",
        (
            ast.BoolValue(ast.FieldRef("a")),
            ast.Logical("or", (ast.BoolValue(ast.FieldRef("b")), ast.BoolValue(ast.FieldRef("c")))),
        ),
    )
)
def test_format_parse_round_trip(expr: ast.Expr) -> None:
    check_round_trip(expr)


@given(st.binary(max_size=64))
@example(b"x eq \xff\xfe")
@example(b"\xed\xa0\x80")
def test_atheris_target_on_bytes(data: bytes) -> None:
    # The atheris target itself, driven by hypothesis so it runs in every test run.
    fuzz_parser.test_one_input(data)
