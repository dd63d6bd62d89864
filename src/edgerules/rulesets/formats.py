"""Ruleset files: reading JSON and TOML documents, writing them back.

Owns: the file formats (``*.json`` in the Rulesets API shape; ``*.toml`` with the same
keys and rules as ``[[rules]]`` tables) and their errors: unreadable, not UTF-8, empty,
malformed or absurdly nested files are ``RulesetError`` messages naming the file, never
decoder tracebacks. TOML is written with ``tomli-w``.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from edgerules.rulesets.errors import RulesetError

__all__ = ["dump_json", "dump_toml", "read_ruleset_file", "write_ruleset_file"]


def read_ruleset_file(p: Path) -> Any:
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise RulesetError(f"cannot read ruleset {str(p)!r}: {exc.strerror or exc}") from None
    suffix = p.suffix.lower()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RulesetError(f"{p}: not UTF-8 text") from None
    if suffix in (".toml", ".json") and not text.strip():
        # An empty file is a mistake (a truncated save), not a ruleset without rules.
        raise RulesetError(f"{p}: invalid {suffix[1:].upper()}: the file is empty")
    # Both decoders recurse on nesting; absurdly deep input is a clear error, not a crash.
    if suffix == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RulesetError(f"{p}: invalid TOML: {exc}") from None
        except RecursionError:
            raise RulesetError(f"{p}: invalid TOML: nested too deeply") from None
    if suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise RulesetError(f"{p}: invalid JSON: {exc}") from None
        except RecursionError:
            raise RulesetError(f"{p}: invalid JSON: nested too deeply") from None
    raise RulesetError(f"{p}: unknown ruleset format {suffix or '(none)'!r}; use .json or .toml")


def dump_json(obj: dict[str, Any], *, indent: int = 2) -> str:
    return json.dumps(obj, indent=indent, ensure_ascii=False) + "\n"


def dump_toml(obj: dict[str, Any]) -> str:
    """The ruleset object as a hand-editable TOML document (``[[rules]]`` tables; multi-line
    expressions as multi-line strings)."""
    try:
        return tomli_w.dumps(obj, multiline_strings=True)
    except (TypeError, ValueError) as exc:
        raise RulesetError(f"cannot write the ruleset as TOML: {exc}") from None


def write_ruleset_file(path: Path, obj: dict[str, Any]) -> None:
    """Write JSON or TOML by the file's extension."""
    text = dump_toml(obj) if path.suffix.lower() == ".toml" else dump_json(obj)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise RulesetError(f"cannot write {path}: {exc}") from None
