"""Loading the proxy's rules from ``--rules`` and ``--list`` files, at start and on reload.

Owns: ``load_rules`` — the one function both the start-up and every hot reload
(``proxy.reload``) use, so a reload checks exactly what a start would: every broken rule
is reported at once (``RulesetError``), a missing or malformed list file is an error.
The version is ``proxy.reload.fingerprint`` of what was loaded (docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from edgerules.proxy.reload import LoadedRules, fingerprint

__all__ = ["load_rules", "rules_loader"]


def load_rules(rules: str, lists: Sequence[str] = ()) -> LoadedRules:
    """Read, check and compile the ruleset (and its named lists); raises ``RuleError``."""
    from edgerules.enforcement.decision import RulesetDecider
    from edgerules.rulesets import Ruleset
    from edgerules.rulesets.lists import NamedLists

    named = NamedLists.load(*lists) if lists else None
    ruleset = Ruleset.load(rules, lists=named)
    version = fingerprint(ruleset.to_dict(), named.to_dict() if named is not None else None)
    refs = frozenset(r.ref for r in ruleset.rules if r.ref)
    n = len(ruleset.rules)
    return LoadedRules(
        RulesetDecider(ruleset, version=version),
        version,
        refs,
        f"{rules}, {n} rule{'s' if n != 1 else ''}",
    )


def rules_loader(rules: str, lists: Sequence[str] = ()) -> Callable[[], LoadedRules]:
    paths = tuple(lists)
    return lambda: load_rules(rules, paths)
