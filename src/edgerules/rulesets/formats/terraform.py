"""Terraform HCL: the ``cloudflare_ruleset`` resource of a ``.tf`` file, as a ruleset.

Owns reading a resource in either provider syntax — v4 ``rules { … }`` blocks with
``action_parameters { response { … } }`` sub-blocks, or v5 ``rules = [{ … }]`` attribute
lists — into the Rulesets API object: ``name``, ``description``, ``kind``, ``phase`` and
the rules' ``expression``, ``action``, ``action_parameters``, ``enabled``, ``ref``,
``description``, ``logging``. Terraform-only arguments (``zone_id``, ``account_id``) are
dropped. Parsing is ``python-hcl2``'s.

Invariants: only literal strings are read. A value that is a Terraform expression
(``var.x``, ``local.rules[0]``, ``"${…}"`` interpolation, ``dynamic`` blocks) cannot be
known without running Terraform and is an error naming it; ``$${`` and ``%%{`` are
Terraform's escapes for a literal ``${`` / ``%{``. Heredocs (``<<EOT``, indented
``<<-EOT``) are read as Terraform does (the indented form loses the common indentation,
the text keeps its final newline). Exactly one resource in phase
``http_request_firewall_custom`` is read; several are an error listing them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edgerules.rulesets.errors import RulesetError

__all__ = ["read_terraform"]

PHASE = "http_request_firewall_custom"
_DROPPED = ("zone_id", "account_id")
_HEREDOC = re.compile(r"\A<<(-?)([A-Za-z_][A-Za-z0-9_]*)\n(.*?)\n?[ \t]*\2\Z", re.S)
_INTERPOLATION = re.compile(r"(?<![$%])[$%]\{")


def read_terraform(text: str, path: Path) -> tuple[dict[str, Any], str]:
    import hcl2

    options = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
    try:
        doc = hcl2.loads(text, serialization_options=options)
    except Exception as exc:  # lark's UnexpectedInput & co. carry the line
        detail = " ".join(str(exc).split())[:300]
        raise RulesetError(f"{path}: invalid Terraform HCL: {detail}") from None
    found: list[tuple[str, dict[str, Any]]] = []
    for block in doc.get("resource", []) if isinstance(doc, dict) else []:
        for rtype, named in (block or {}).items():
            if rtype != "cloudflare_ruleset" or not isinstance(named, dict):
                continue
            for name, body in named.items():
                if isinstance(body, dict):
                    found.append((name, body))
    if not found:
        raise RulesetError(f"{path}: no cloudflare_ruleset resource in this Terraform file")
    custom = [(n, b) for n, b in found if _string(b.get("phase"), path, n, "phase") == PHASE]
    if not custom:
        phases = ", ".join(sorted({f"{n} ({b.get('phase')})" for n, b in found}))
        raise RulesetError(f"{path}: no cloudflare_ruleset in phase {PHASE} (found: {phases}); "
                           "edgerules evaluates the custom-rules phase")
    if len(custom) > 1:
        names = ", ".join(n for n, _ in custom)
        raise RulesetError(f"{path}: {len(custom)} cloudflare_ruleset resources in phase {PHASE} "
                           f"({names}); keep one per file to test it")
    name, body = custom[0]
    if "dynamic" in body:
        raise RulesetError(f"{path}: cloudflare_ruleset.{name} builds its rules with a "
                           "`dynamic` block, which only Terraform can expand; write the rules "
                           "out (or test `terraform show -json` output)")
    obj: dict[str, Any] = {}
    for key, value in body.items():
        if key in _DROPPED or key.startswith("__"):
            continue
        if key == "rules":
            rules = value if isinstance(value, list) else [value]
            obj["rules"] = [_value(r, path, name, f"rules[{i}]") for i, r in enumerate(rules)]
        else:
            obj[key] = _value(value, path, name, key)
    obj.setdefault("name", name)
    return obj, f"cloudflare_ruleset.{name}"


def _value(value: Any, path: Path, resource: str, where: str) -> Any:
    if isinstance(value, dict):
        return {k: _value(v, path, resource, f"{where}.{k}") for k, v in value.items()
                if not k.startswith("__")}
    if isinstance(value, list):
        # v4 blocks arrive as a list of one object: action_parameters { response { … } }
        if len(value) == 1 and isinstance(value[0], dict) and not where.endswith("rules"):
            return _value(value[0], path, resource, where)
        return [_value(v, path, resource, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):
        return _string(value, path, resource, where)
    return value


def _string(value: Any, path: Path, resource: str, where: str) -> Any:
    if not isinstance(value, str):
        return value
    m = _HEREDOC.match(value)
    if m:
        lines = m.group(3).split("\n")
        if m.group(1):  # <<- : strip the common indentation
            indents = [len(x) - len(x.lstrip(" \t")) for x in lines if x.strip()]
            cut = min(indents, default=0)
            lines = [x[cut:] for x in lines]
        value = "\n".join(lines) + "\n"
    if _INTERPOLATION.search(value):
        raise RulesetError(
            f"{path}: cloudflare_ruleset.{resource} {where} is a Terraform expression "
            f"({value.strip()[:80]!r}), not a literal: edgerules can only test literal rules "
            "(write $${ for a literal ${)")
    return value.replace("$${", "${").replace("%%{", "%{")
