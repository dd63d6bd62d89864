"""octorules YAML: a zone file's Cloudflare WAF custom rules, as a ruleset.

Owns reading the octorules zone-file format (``rules/<zone>.yaml``: phase sections as
top-level keys, or nested under a provider namespace ``cloudflare:``) into the
Rulesets API object. The section read is ``waf_custom_rules`` (octorules' name for
phase ``http_request_firewall_custom``); rules keep their keys (``ref``, ``description``,
``expression``, ``action``, ``action_parameters``, ``enabled``, ``logging``). octorules'
own per-rule metadata ``octorules:`` is removed; a rule marked ``octorules: {ignored:
true}`` is not deployed by octorules and is not loaded. The ruleset is named after the
zone (the file's stem). Other sections (redirects, cache rules, lists, …) belong to other
phases and are left alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgerules.rulesets.errors import RulesetError

__all__ = ["read_octorules"]

SECTION = "waf_custom_rules"
PHASE = "http_request_firewall_custom"


def read_octorules(text: str, path: Path) -> tuple[dict[str, Any], str]:
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise RulesetError(f"{path}: invalid YAML: {detail}") from None
    if not isinstance(doc, dict):
        raise RulesetError(f"{path}: an octorules zone file is a mapping of sections")
    section: Any = None
    where = SECTION
    if SECTION in doc:
        section = doc[SECTION]
    elif isinstance(doc.get("cloudflare"), dict) and SECTION in doc["cloudflare"]:
        section, where = doc["cloudflare"][SECTION], f"cloudflare.{SECTION}"
    else:
        keys = ", ".join(sorted(str(k) for k in doc)) or "none"
        raise RulesetError(
            f"{path}: YAML, but not an octorules zone file with WAF custom rules: no "
            f"{SECTION} section (top-level keys: {keys})")
    if section is None:
        section = []
    if not isinstance(section, list):
        raise RulesetError(f"{path}: {where} must be a list of rules")
    rules = []
    for i, rule in enumerate(section):
        if not isinstance(rule, dict):
            raise RulesetError(f"{path}: {where}[{i}] must be a mapping (a rule)")
        meta = rule.get("octorules")
        if isinstance(meta, dict) and meta.get("ignored") is True:
            continue
        rules.append({k: v for k, v in rule.items() if k != "octorules"})
    name = path.name.removesuffix(path.suffix) or "zone"
    return {"name": name, "kind": "zone", "phase": PHASE, "rules": rules}, f"octorules {where}"
