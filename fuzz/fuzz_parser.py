"""Atheris fuzz target for the parser: any bytes -> ``parse_expression`` must return an
AST or raise ``ParseError`` with an in-range span; anything else is a crash.

Run directly (``python fuzz/fuzz_parser.py [atheris/libFuzzer options]``) or through
``make fuzz`` (``fuzz/run.py``), which falls back to the hypothesis targets when atheris
is not installed. Bytes are decoded as UTF-8 with ``surrogateescape`` so every input
reaches the parser (lone surrogates included).
"""

from __future__ import annotations

import sys


def test_one_input(data: bytes) -> None:
    from edgerules.errors import ParseError
    from edgerules.lang.formatter import format_expr
    from edgerules.lang.parser import parse_expression

    text = data.decode("utf-8", "surrogateescape")
    try:
        expr = parse_expression(text)
    except ParseError as err:
        if not 0 <= err.span.start <= err.span.end <= len(text):
            raise AssertionError(f"span {err.span} outside [0, {len(text)}] for {text!r}") from None
        if err.message.startswith("internal"):
            raise AssertionError(f"internal error for {text!r}: {err.message}") from None
        err.render()
        return
    # Whatever parses must format and re-parse to the same tree.
    again = parse_expression(format_expr(expr))
    if again != expr:
        raise AssertionError(f"round trip changed {text!r}: {expr!r} -> {again!r}")


def main(argv: list[str] | None = None) -> None:
    import atheris  # imported here so that the module itself imports without atheris

    with atheris.instrument_imports():
        import edgerules.lang.formatter
        import edgerules.lang.parser  # noqa: F401
    atheris.Setup(sys.argv if argv is None else argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
