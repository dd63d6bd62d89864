"""The account-level and zone-level entry points of one zone's custom-rules phase.

Owns ``Policy``: which rulesets are entry points, the plan limits that count rules across
a zone's entry point and its custom rulesets, and evaluation across entry points (the
account's first; a terminating action anywhere ends evaluation).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from edgerules.lang.context import Context
from edgerules.rulesets.actions import Limits
from edgerules.rulesets.errors import RulesetError
from edgerules.rulesets.loading import scheme_or_default
from edgerules.rulesets.model import Decision, Rule, decide
from edgerules.rulesets.resolve import reachable, refuse_account_phase_skips, registry, resolve
from edgerules.rulesets.ruleset import Ruleset, context_of, own_context
from edgerules.rulesets.trace import RulesetTrace, trace_entries

if TYPE_CHECKING:  # pragma: no cover
    from edgerules.lang.scheme import Scheme

__all__ = ["Policy"]


class Policy:
    """The ``http_request_firewall_custom`` phase of one zone: the account-level entry
    point (``kind: root``) runs first, then the zone-level one (``kind: zone``), each
    possibly executing ``custom`` rulesets (https://developers.cloudflare.com/ruleset-engine/about/phases/).

    A terminating action anywhere ends evaluation. ``skip`` with ``ruleset: current``
    ends the ruleset holding the rule (the account entry point's skip lets the zone
    entry point still run); ``phase: current`` (zone level) ends the phase.
    """

    def __init__(self, rulesets: Iterable[Ruleset], *, limits: Limits | str | dict[str, Any] | None = None) -> None:
        lim = Limits.coerce(limits)
        self.limits = lim
        self.account: Ruleset | None = None
        self.zone: Ruleset | None = None
        custom: list[Ruleset] = []
        for rs in rulesets:
            if rs.kind == "root":
                if self.account is not None:
                    raise RulesetError(f"two account-level entry points: {self.account.name!r} "
                                       f"and {rs.name!r}")
                if not lim.account_rulesets:
                    raise RulesetError(f"account-level rulesets are not available on the "
                                       f"{lim.plan} plan")
                self.account = rs
            elif rs.kind == "zone":
                if self.zone is not None:
                    raise RulesetError(f"two zone-level entry points: {self.zone.name!r} and "
                                       f"{rs.name!r}")
                self.zone = rs
            else:
                custom.append(rs)
        self.custom: tuple[Ruleset, ...] = tuple(custom)
        schemes = {id(rs.scheme) for rs in (self.account, self.zone, *custom) if rs is not None}
        if len(schemes) > 1:
            raise RulesetError("the rulesets of a policy must share one scheme")
        by_id = registry(custom)
        entries = [rs for rs in (self.account, self.zone) if rs is not None]
        resolve(entries + custom, by_id)
        if self.account is not None:
            refuse_account_phase_skips(self.account)
        # Zone limits: rules of the zone entry point + rules of the zone's custom rulesets.
        zone_custom = {id(t): t for t in reachable(self.zone)} if self.zone else {}
        total = (len(self.zone.rules) if self.zone else 0) + sum(
            len(t.rules) for t in zone_custom.values())
        if total > lim.max_rules:
            raise RulesetError(f"the zone has {total} custom rules (entry point plus custom "
                               f"rulesets); the limit is {lim.max_rules} ({lim.plan} plan)")
        if len(zone_custom) > lim.max_custom_rulesets:
            raise RulesetError(f"the zone executes {len(zone_custom)} custom rulesets; the "
                               f"limit is {lim.max_custom_rulesets} ({lim.plan} plan)")
        self.entry_points: tuple[Ruleset, ...] = tuple(entries)
        fields: set[str] = set()
        for rs in entries:
            fields |= rs.fields
        self.fields: frozenset[str] = frozenset(fields)
        self.scheme = entries[0].scheme if entries else scheme_or_default(None)

    @classmethod
    def load(cls, *paths: str | os.PathLike[str], lists: Mapping[str, Any] | None = None,
             limits: Limits | str | dict[str, Any] | None = None,
             scheme: Scheme | None = None) -> Policy:
        """Load ruleset files (entry points and custom rulesets, in any order)."""
        rulesets = [Ruleset.load(p, lists=lists, limits=limits, scheme=scheme) for p in paths]
        return cls(rulesets, limits=limits)

    def context(self, *mappings: Mapping[str, object] | None) -> Context:
        return context_of(self.scheme, self.fields, mappings)

    def _context(self, fields: Mapping[str, object] | Context) -> Context:
        return own_context(self.scheme, self.fields, fields, "the policy's")

    def evaluate(self, fields: Mapping[str, object] | Context) -> Decision:
        ctx = self._context(fields)
        acc: list[Rule] = []
        result: object = None
        for rs in self.entry_points:
            result = rs._run(ctx, acc, None)
            if result is not None:
                break
        return decide(result, acc)

    def trace(self, fields: Mapping[str, object] | Context, *,
              explain: Iterable[str] | str = ()) -> RulesetTrace:
        ctx = self._context(fields)
        return trace_entries(list(self.entry_points), ctx, explain, self.fields)

    @property
    def rulesets(self) -> tuple[Ruleset, ...]:
        return self.entry_points + self.custom

    def __repr__(self) -> str:
        names = [rs.name for rs in self.rulesets]
        return f"Policy({names})"
