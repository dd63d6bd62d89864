"""Binding ``execute`` rules to the custom rulesets they run.

Owns: the registry of custom rulesets (by id, else name), resolving every ``execute``
rule reachable from some entry points (unknown targets, non-custom targets, other phases
and cycles are all reported at once), and the zone-level-only rule for ``skip phase``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from edgerules.errors import RuleError
from edgerules.rulesets.errors import RulesetError

if TYPE_CHECKING:  # pragma: no cover
    from edgerules.rulesets.ruleset import Ruleset

__all__ = ["reachable", "refuse_account_phase_skips", "registry", "resolve"]


def registry(rulesets: Mapping[str, Ruleset] | Iterable[Ruleset]) -> dict[str, Ruleset]:
    if isinstance(rulesets, Mapping):
        return dict(rulesets)
    reg: dict[str, Ruleset] = {}
    for rs in rulesets:
        key = rs.id or rs.name
        if key in reg and reg[key] is not rs:
            raise RulesetError(f"two rulesets share the id {key!r}")
        reg[key] = rs
    return reg


def resolve(roots: Iterable[Ruleset], registry: Mapping[str, Ruleset]) -> None:
    """Bind every ``execute`` rule reachable from ``roots`` to its target, rejecting
    unknown targets, non-custom targets and cycles; then refresh plans and fields."""
    errors: list[tuple[str, RuleError]] = []
    state: dict[int, int] = {}  # id(ruleset) -> 1 visiting, 2 done
    touched: list[Ruleset] = []

    def visit(rs: Ruleset, path: list[str]) -> None:
        mark = state.get(id(rs))
        if mark == 2:
            return
        if mark == 1:
            cycle = " -> ".join([*path, rs.id or rs.name])
            errors.append((rs.name, RuleError(f"execute cycle: {cycle}")))
            return
        state[id(rs)] = 1
        touched.append(rs)
        for rule in rs.rules:
            target_id = rule.act.execute_id
            if target_id is None:
                continue
            target = registry.get(target_id)
            if target is None:
                known = ", ".join(sorted(registry)) or "none loaded"
                errors.append((rule.label, RuleError(
                    f"execute: no custom ruleset with id {target_id!r} (known: {known})")))
                continue
            if target.kind != "custom":
                errors.append((rule.label, RuleError(
                    f"execute: ruleset {target_id!r} is a {target.kind} ruleset; only custom "
                    "rulesets can be executed")))
                continue
            if target.phase != rs.phase:
                errors.append((rule.label, RuleError(
                    f"execute: ruleset {target_id!r} belongs to phase {target.phase!r}")))
                continue
            rule.target = target
            visit(target, [*path, rs.id or rs.name])
        state[id(rs)] = 2

    for root in roots:
        visit(root, [])
    if errors:
        raise RulesetError("cannot resolve execute rules", errors)
    # Plans hold targets through the rules; refresh the field sets bottom-up (any order
    # works because _collect_fields follows targets itself).
    for rs in touched:
        rs._build_plan()


def refuse_account_phase_skips(account: Ruleset) -> None:
    """``skip phase: current`` is zone-level only (https://developers.cloudflare.com/waf/custom-rules/skip/options/). ``parse_action`` refuses it in
    the account entry point itself; a custom ruleset the account executes runs at
    account level too, where it would end the zone's rules as well."""
    errors = [
        (rule.label, RuleError(
            f'skip phase "current" is only available at zone level; ruleset {target.name!r} '
            f"is executed by the account-level entry point {account.name!r}"))
        for target in reachable(account) for rule in target.rules if rule.act.skip_phase
    ]
    if errors:
        raise RulesetError("cannot run at account level", errors)


def reachable(rs: Ruleset | None) -> list[Ruleset]:
    out: list[Ruleset] = []
    seen: set[int] = set()
    stack = [rs] if rs is not None else []
    while stack:
        cur = stack.pop()
        for rule in cur.rules:
            t = rule.target
            if t is not None and id(t) not in seen:
                seen.add(id(t))
                out.append(t)
                stack.append(t)
    return out
