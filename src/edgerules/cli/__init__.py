"""The ``edgerules`` command line: one entry point, subcommands registered by modules.

Each subcommand module exposes ``register(subparsers) -> None``; it adds its parsers and
sets ``func`` (``argparse.Namespace -> int``) as the default. ``main`` never lets an
exception reach the user as a traceback: edgerules errors are printed as messages and
become exit status 1 (2 for usage errors, which argparse reports itself).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules that contribute subcommands, in the order `--help` lists them. A module whose
# optional dependencies are not installed is skipped, so the core CLI keeps working.
_COMMAND_MODULES = (
    "edgerules.cli.rules_cmd",  # check, eval
    "edgerules.cli.ruleset_cmd",  # test, trace
    "edgerules.cli.pki_cmd",  # ca, cert, host
    "edgerules.cli.proxy_cmd",  # proxy
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgerules",
        description="Cloudflare-compatible firewall rules with client-certificate (mTLS) enforcement.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and exc.name.startswith("edgerules.cli."):
                continue  # that command group is not built yet
            if exc.name is not None and not exc.name.startswith("edgerules"):
                continue  # an optional dependency (e.g. the proxy extra) is absent
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    from edgerules.errors import RuleError

    try:
        return int(func(args))
    except RuleError as exc:
        code = getattr(exc, "code", None)
        prefix = f"error {code}: " if code is not None else ""
        print(f"{prefix}{exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
