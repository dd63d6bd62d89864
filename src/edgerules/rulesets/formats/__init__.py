"""Ruleset files: every format users keep rules in, detected by content, read into the
Rulesets API object; and writing rulesets back as JSON or TOML.

Owns the file formats and their errors:

* **JSON** — a Rulesets API ruleset object, or a Cloudflare API response as returned
  (``{"result": {…}, "success": true, "errors": [], "messages": []}``; a failed call's
  ``errors`` are reported);
* **TOML** — the same keys, rules as ``[[rules]]`` tables;
* **Terraform HCL** — a ``cloudflare_ruleset`` resource in phase
  ``http_request_firewall_custom`` (:mod:`.terraform`);
* **octorules YAML** — a zone file's ``waf_custom_rules`` section (:mod:`.octorules`).

The format is told by the content (the extension only breaks a tie). Every problem is a
``RulesetError`` naming the file — unreadable, not UTF-8, empty, malformed (with the
decoder's line), absurdly nested — never a decoder traceback. A rule's errors are moved
to the **file's** line and column (:meth:`Document.relocate`, :mod:`.positions`): an
expression error's caret points into the file, other rule errors name the rule's line.
TOML is written with ``tomli-w``.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from edgerules.errors import RuleError
from edgerules.rulesets.errors import RulesetError
from edgerules.rulesets.formats.positions import align, expression_literals, line_of

__all__ = [
    "Document",
    "detect_format",
    "dump_json",
    "dump_toml",
    "read_document",
    "read_ruleset_file",
    "write_ruleset_file",
]

_MAX_FILE = 64 * 1024 * 1024  # a ruleset file larger than this is not a ruleset file
_TERRAFORM = re.compile(r'(?m)^[ \t]*(?:resource|data|terraform|provider|variable|locals|'
                        r'module|output)\b[^\n=]*\{')
_YAML_KEY = re.compile(r"(?m)^[A-Za-z_][\w.-]*:(?:[ \t]|$)")
_TOML_LINE = re.compile(r"""(?m)^[ \t]*(?:\[\[?[^\]\n]+\]\]?[ \t]*$|[A-Za-z_"'][\w."'-]*[ \t]*=)""")
_TOML_HEADER = re.compile(r"""\[\[?[ \t]*[A-Za-z_"'][\w."' -]*\]\]?[ \t]*(?:#[^\n]*)?(?:\n|$)""")
_BY_SUFFIX = {".json": "json", ".toml": "toml", ".tf": "terraform", ".hcl": "terraform",
              ".yaml": "yaml", ".yml": "yaml"}
_NAMES = {"json": "JSON", "toml": "TOML", "terraform": "Terraform HCL", "yaml": "YAML"}


@dataclass
class Document:
    """One ruleset file, read: the ruleset object and where it came from."""

    path: Path
    text: str
    fmt: str  # json | toml | terraform | yaml
    obj: Any
    source: str = ""  # e.g. "Cloudflare API response", "cloudflare_ruleset.zone"

    def relocate(self, exc: RulesetError) -> RulesetError:
        """``exc`` with each broken rule's error at its place in this file."""
        if not exc.errors or not isinstance(self.obj, dict):
            return exc
        rules = self.obj.get("rules")
        if not isinstance(rules, list):
            return exc
        index: dict[str, int] = {}
        for i, raw in enumerate(rules):
            label = f"#{i + 1}"
            if isinstance(raw, dict):
                for key in ("ref", "id"):
                    if isinstance(raw.get(key), str) and raw[key]:
                        label = raw[key]
                        break
            index.setdefault(label, i)
        moved: list[tuple[str, RuleError]] = []
        for label, err in exc.errors:
            i = index.get(label)
            moved.append((label, self._relocate_one(label, err, i, rules)))
        head = str(exc).split("\n", 1)[0]
        return RulesetError(head, moved)

    def _relocate_one(self, label: str, err: RuleError, i: int | None,
                      rules: list[Any]) -> RuleError:
        offsets = self._expression_offsets(i, rules) if i is not None else None
        from edgerules.lang.errors import ExpressionError
        from edgerules.lang.source import Source, Span

        if offsets is None:
            return err
        if isinstance(err, ExpressionError) and err.source.text == rules[i]["expression"]:
            start = offsets[min(err.span.start, len(offsets) - 1)]
            end = offsets[min(err.span.end, len(offsets) - 1)]
            name = f"rule {json.dumps(label)} in {self.path}"
            try:
                return type(err)(err.message, Source(self.text, name), Span(start, max(start, end)),
                                 hint=err.hint, suggestion=err.suggestion)
            except Exception:  # an error class with another signature: keep it as it was
                return err
        return RuleError(f"{self.path}, line {line_of(self.text, offsets[0])}: {err}")

    def _expression_offsets(self, i: int, rules: list[Any]) -> list[int] | None:
        rule = rules[i] if 0 <= i < len(rules) else None
        expr = rule.get("expression") if isinstance(rule, dict) else None
        if not isinstance(expr, str) or not expr:
            return None
        skip = sum(1 for r in rules[:i] if isinstance(r, dict) and r.get("expression") == expr)
        fmt = "yaml" if self.fmt == "yaml" else self.fmt
        for start, end, escapes in expression_literals(self.text, fmt):
            offsets = align(self.text[start:end], expr, escapes=escapes)
            if offsets is None:
                continue
            if skip:
                skip -= 1
                continue
            return [start + o for o in offsets]
        return None


def detect_format(text: str, suffix: str = "") -> str | None:
    """``json``, ``toml``, ``terraform`` or ``yaml`` by content (the suffix breaks ties)."""
    body = text.lstrip("\ufeff \t\r\n")
    if body[:1] == "{" or (body[:1] == "[" and not _TOML_HEADER.match(body)):
        return "json"
    if _TERRAFORM.search(text):
        return "terraform"
    yaml_like = bool(_YAML_KEY.search(text))
    toml_like = bool(_TOML_LINE.search(text))
    if yaml_like != toml_like:
        return "yaml" if yaml_like else "toml"
    return _BY_SUFFIX.get(suffix.lower())


def read_document(p: Path) -> Document:
    try:
        size = p.stat().st_size
        if size > _MAX_FILE:
            raise RulesetError(f"{p}: {size} bytes is too large for a ruleset file")
        data = p.read_bytes()
    except OSError as exc:
        raise RulesetError(f"cannot read ruleset {str(p)!r}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise RulesetError(f"{p}: not UTF-8 text") from None
    suffix = p.suffix.lower()
    if not text.strip():
        # An empty file is a mistake (a truncated save), not a ruleset without rules.
        kind = _NAMES.get(_BY_SUFFIX.get(suffix, ""), suffix[1:].upper() or "ruleset")
        raise RulesetError(f"{p}: invalid {kind}: the file is empty")
    fmt = detect_format(text, suffix)
    if fmt is None:
        raise RulesetError(
            f"{p}: cannot tell the format: expected a JSON ruleset or Cloudflare API "
            "response, TOML, a Terraform cloudflare_ruleset resource or an octorules YAML "
            f"zone file (the extension {suffix or '(none)'!r} does not say either)")
    try:
        if fmt == "json":
            return _read_json(p, text)
        if fmt == "toml":
            return Document(p, text, fmt, tomllib.loads(text))
        if fmt == "terraform":
            from edgerules.rulesets.formats.terraform import read_terraform

            obj, source = read_terraform(text, p)
            return Document(p, text, fmt, obj, source)
        from edgerules.rulesets.formats.octorules import read_octorules

        obj, source = read_octorules(text, p)
        return Document(p, text, fmt, obj, source)
    except tomllib.TOMLDecodeError as exc:
        raise RulesetError(f"{p}: invalid TOML: {exc}") from None
    except RecursionError:
        raise RulesetError(f"{p}: invalid {_NAMES[fmt]}: nested too deeply") from None


def _read_json(p: Path, text: str) -> Document:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RulesetError(f"{p}: invalid JSON: {exc}") from None
    if isinstance(obj, dict) and "result" in obj and "success" in obj:
        # A Cloudflare API response as returned: the envelope around the ruleset.
        if obj.get("success") is not True:
            errors = obj.get("errors") or []
            what = "; ".join(
                f"{e.get('code', '?')}: {e.get('message', '')}" if isinstance(e, dict) else str(e)
                for e in errors) or "no errors given"
            raise RulesetError(f"{p}: a failed Cloudflare API response (success: "
                               f"{json.dumps(obj.get('success'))}): {what}")
        result = obj["result"]
        if isinstance(result, list):
            raise RulesetError(
                f"{p}: a Cloudflare API response listing {len(result)} rulesets (without "
                "their rules); save the response of GET …/rulesets/{ruleset_id} or "
                "…/rulesets/phases/http_request_firewall_custom/entrypoint instead")
        if not isinstance(result, dict):
            raise RulesetError(f"{p}: the Cloudflare API response's 'result' is not a ruleset")
        return Document(p, text, "json", result, "Cloudflare API response")
    return Document(p, text, "json", obj)


def read_ruleset_file(p: Path) -> Any:
    """The ruleset object of a file (any format; see :func:`read_document`)."""
    return read_document(p).obj


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
