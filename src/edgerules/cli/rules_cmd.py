"""``edgerules check`` and ``edgerules eval``: one expression from the command line.

Owns only argument handling and I/O for these two subcommands; parsing, checking and
evaluation are ``edgerules.lang.engine.compile`` and ``Filter.matches``.

Exit status (documented in docs/engine-front.md):

* ``check EXPR``: 0 and the canonical form on stdout if the expression is valid for the
  Cloudflare scheme; 1 and the caret error on stderr if not; 2 when the expression cannot
  be read (stdin not UTF-8).
* ``eval EXPR --fields FILE.json``: prints ``true`` or ``false``; exit 0 for true,
  1 for false (so shell ``if`` works), and 2 with the caret error on stderr when the
  expression, the fields file or a list file is invalid — an error is never mistaken for
  "false". (argparse's own usage errors also exit 2.)

``EXPR`` may be ``-`` to read the expression from stdin (rules with quotes and newlines
are easier to pass that way); ``--fields -`` reads the JSON fields from stdin.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

EXIT_TRUE = 0
EXIT_FALSE = 1
EXIT_ERROR = 2


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``check`` and ``eval`` to the ``edgerules`` command."""
    check = subparsers.add_parser(
        "check",
        help="check a rule expression and print its canonical form",
        description="Parse and type-check EXPR against the Cloudflare field scheme. Prints "
        "the canonical form (exit 0) or a caret error (exit 1).",
    )
    check.add_argument("expr", metavar="EXPR", help="the expression, or - to read it from stdin")
    check.add_argument(
        "--ast", action="store_true", help="print the syntax tree instead of the canonical form"
    )
    check.add_argument(
        "--parse-only",
        action="store_true",
        help="check the syntax only (no field names, no types)",
    )
    check.set_defaults(func=run_check)

    ev = subparsers.add_parser(
        "eval",
        help="evaluate a rule expression against field values",
        description="Evaluate EXPR against the field values in a JSON object "
        '(e.g. {"http.host": "a.com", "ip.src": "192.0.2.1", "ssl": true}). Prints true or '
        "false; exit status 0 for true, 1 for false, 2 for an invalid expression or input.",
    )
    ev.add_argument("expr", metavar="EXPR", help="the expression, or - to read it from stdin")
    ev.add_argument(
        "--fields",
        metavar="FILE.json",
        help="JSON object of field values (- for stdin); absent fields take their defaults",
    )
    ev.add_argument(
        "--list",
        metavar="FILE",
        action="append",
        default=[],
        dest="lists",
        help="a named list file for `in $name` (JSON or text, see edgerules.rulesets.lists); repeatable",
    )
    ev.set_defaults(func=run_eval)


def _read_stdin() -> str:
    """All of stdin as text; input that is not UTF-8 is a ``RuleError``, not a traceback."""
    from edgerules.errors import RuleError

    try:
        buffer = getattr(sys.stdin, "buffer", None)
        if buffer is not None:
            return buffer.read().decode("utf-8")
        return sys.stdin.read()
    except UnicodeDecodeError as exc:
        raise RuleError(f"stdin is not UTF-8 text: {exc}") from None
    except OSError as exc:
        raise RuleError(f"cannot read stdin: {exc.strerror or exc}") from None


def _read_expr(arg: str) -> str:
    if arg == "-":
        return _read_stdin().rstrip("\r\n")
    return arg


def run_check(args: argparse.Namespace) -> int:
    from edgerules.errors import RuleError

    text = _read_expr(args.expr)  # unreadable input is an input error (exit 2), not "invalid"
    try:
        if args.parse_only:
            from edgerules.lang.engine import format as format_expr
            from edgerules.lang.engine import parse

            tree = parse(text)
            print(repr(tree) if args.ast else format_expr(tree))
        else:
            from edgerules.lang.engine import compile as compile_filter

            f = compile_filter(text)
            print(repr(f.ast) if args.ast else str(f))
    except RuleError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    return 0


def _load_fields(path: str | None) -> dict[str, Any]:
    from edgerules.errors import RuleError
    from edgerules.lang.errors import ContextError

    if path is None:
        return {}
    try:
        if path == "-":
            data = json.loads(_read_stdin())
        else:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
    except OSError as exc:
        raise ContextError(f"cannot read fields file {path!r}: {exc.strerror or exc}") from None
    except RuleError as exc:
        raise ContextError(f"cannot read fields from stdin: {exc}") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ContextError(f"fields file {path!r} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ContextError(f"fields file {path!r} is not valid JSON: arrays or objects "
                           "nested too deeply") from None
    if not isinstance(data, dict):
        raise ContextError(f"fields file {path!r} must hold a JSON object of field values")
    return data


def run_eval(args: argparse.Namespace) -> int:
    from edgerules.errors import RuleError
    from edgerules.lang.engine import compile as compile_filter
    from edgerules.lang.errors import ContextError

    try:
        text = _read_expr(args.expr)
        lists = None
        if args.lists:
            from edgerules.rulesets.lists import load_list

            lists = {}
            path_of: dict[str, str] = {}  # list name -> the file that first named it
            for path in args.lists:
                lst = load_list(path)
                first = path_of.setdefault(lst.name, path)
                if os.path.realpath(first) != os.path.realpath(path):
                    raise RuleError(f"two lists named {lst.name!r}: {first} and {path}")
                lists[lst.name] = lst
        f = compile_filter(text, lists=lists)
        fields = _load_fields(args.fields)
        # Every name and value of the file is checked, not only those the expression
        # reads: a typo or a wrong type is an error (exit 2), never a silent "false".
        try:
            ctx = f.scheme.context(fields)
        except ContextError as exc:
            where = "stdin" if args.fields == "-" else f"fields file {args.fields!r}"
            raise ContextError(f"{where}: {exc}") from None
        result = f.execute(ctx)
    except RuleError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_ERROR
    print("true" if result else "false")
    return EXIT_TRUE if result else EXIT_FALSE
