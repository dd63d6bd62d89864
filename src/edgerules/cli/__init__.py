"""The ``edgerules`` command line: one entry point, subcommands registered by modules.

Each subcommand module exposes ``register(subparsers) -> None``; it adds its parsers and
sets ``func`` (``argparse.Namespace -> int``) as the default. ``main`` never lets an
exception reach the user as a traceback.

Exit status, the same for every command (docs/cli.md):

* 0 — done; the answer is yes (tests passed, the expression is valid / true, allowed);
* 1 — the command ran and the answer is no: a policy test failed, ``check`` found the
  expression invalid, ``eval`` evaluated to false, ``lint`` found problems, ``trace
  --exit-code`` saw a block or challenge;
* 2 — the command could not run: a usage error (argparse), an argument that is not
  UTF-8, an unreadable or invalid input (a ruleset that does not load, a malformed cases
  file, a missing store), a refused operation — every edgerules error (``RuleError``) and
  I/O error ends here, printed as one message;
* 70 — a bug in edgerules (EX_SOFTWARE): one line naming it, or the traceback with
  ``EDGERULES_DEBUG=1``;
* 130 — interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Sequence

# Modules that contribute subcommands, in the order `--help` lists them. A module whose
# optional dependencies are not installed is skipped, so the core CLI keeps working.
_COMMAND_MODULES = (
    "edgerules.cli.rules_cmd",  # check, eval
    "edgerules.cli.ruleset_cmd",  # test, trace
    "edgerules.cli.ca_cmd",  # ca
    "edgerules.cli.cert_cmd",  # cert
    "edgerules.cli.host_cmd",  # host
    "edgerules.cli.crl_cmd",  # crl
    "edgerules.cli.store_cmd",  # store
    "edgerules.cli.proxy_cmd",  # proxy
    "edgerules.cli.serve_cmd",  # serve
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgerules",
        description="Cloudflare-compatible firewall rules with client-certificate (mTLS) enforcement.",
    )
    parser.add_argument("--version", action="version", version=f"edgerules {_version()}")
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


def _version() -> str:
    """The installed distribution's version (the package's own as a fallback)."""
    from importlib import metadata

    try:
        return metadata.version("edgerules")
    except metadata.PackageNotFoundError:  # run from a source tree without installing
        return str(importlib.import_module("edgerules").__version__)


EXIT_OK = 0
EXIT_FAILED = 1  # the command ran; the answer is "no" (failed test, false, invalid, blocked)
EXIT_ERROR = 2  # the command could not run: usage, input, refused operation
EXIT_INTERNAL = 70  # EX_SOFTWARE (sysexits.h): an unexpected exception, i.e. a bug


def _not_utf8(argv: Sequence[str]) -> str | None:
    """A message for the first argument that is not UTF-8 text, or None.

    Python hands undecodable bytes of the command line over as lone surrogates
    (``surrogateescape``); passed on, they would be silently changed (or crash later),
    so they are refused here, naming the argument and its bytes."""
    for position, arg in enumerate(argv, 1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raw = arg.encode("utf-8", "surrogateescape")
            return (f"edgerules: argument {position} is not valid UTF-8 text: {ascii(raw)[1:]}; "
                    "give names, paths and expressions as UTF-8")
    return None


# cryptography's warnings name what is wrong with a certificate; the CLI says that in one
# line (once per distinct reason) instead of letting Python print a warning with a
# source location of edgerules' code.
_CRYPTOGRAPHY_REASONS = (
    ("serial number which wasn't positive",
     "a certificate's serial number is not positive, which RFC 5280 forbids (cryptography "
     "will refuse such certificates in a future release)"),
    ("negative serial number",
     "a certificate's serial number is negative, which RFC 5280 forbids"),
)


_SERVERS = frozenset({"proxy", "serve"})


def _report_warnings(caught: Sequence[warnings.WarningMessage]) -> None:
    seen: set[str] = set()
    for w in caught:
        text = str(w.message)
        module = getattr(w, "filename", "") or ""
        from_crypto = "cryptography" in type(w.message).__module__ or "cryptography" in module \
            or type(w.message).__name__ == "CryptographyDeprecationWarning"
        if not from_crypto:
            if issubclass(w.category, UserWarning):  # what Python would show by default
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
            continue
        reason = next((r for key, r in _CRYPTOGRAPHY_REASONS if key in text), None)
        if reason is None:
            reason = " ".join(text.split())
        if reason not in seen:
            seen.add(reason)
            print(f"edgerules: warning: {reason}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    problem = _not_utf8(argv)
    if problem is not None:
        print(problem, file=sys.stderr)
        return EXIT_ERROR
    if argv and argv[0] in _SERVERS:
        return _main(argv)  # long-running: warnings are not collected for the process's life
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return _main(argv)
        finally:
            _report_warnings(caught)


def _main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    from edgerules.errors import RuleError

    try:
        status = int(func(args))
        sys.stdout.flush()  # a failing write (disk full, closed pipe) is reported here
        return status
    except RuleError as exc:
        code = getattr(exc, "code", None)
        prefix = f"error {code}: " if code is not None else ""
        from edgerules.cli.common import safe  # user text in messages: no raw escapes

        print(f"{prefix}{safe(exc, keep=chr(10) + chr(9))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`edgerules … | head`): not an error
        _drop_stdout()
        return 0
    except OSError as exc:  # the environment, not a bug: a file or the output failed
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"edgerules: I/O error{where}: {exc.strerror or exc}", file=sys.stderr)
        _drop_stdout()
        return EXIT_ERROR
    except Exception as exc:  # a bug in edgerules: one line naming it, not a traceback
        if os.environ.get("EDGERULES_DEBUG"):
            raise
        print(
            f"edgerules: internal error: {type(exc).__name__}: {exc} (this is a bug in "
            "edgerules; rerun with EDGERULES_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _drop_stdout() -> None:
    """Flush stdout; if that fails, point it at /dev/null so the interpreter's own flush at
    exit does not print "Exception ignored … BrokenPipeError" (Python docs' recipe)."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        if sys.stdout is sys.__stdout__:
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            except (OSError, ValueError):
                pass


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
