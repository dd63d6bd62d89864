"""The data of rulesets: ``Rule``, ``Decision`` and the key vocabulary of the Rulesets API.

Owns: what a rule is once loaded (immutable; its prebuilt ``Decision`` when terminating),
what a decision is, and ``decide`` — turning how an evaluation ended plus the matched
non-terminating rules into a ``Decision`` (shared by ``Ruleset.evaluate``,
``Policy.evaluate`` and traces, so all three decide alike).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgerules.rulesets.actions import Action, BlockResponse

if TYPE_CHECKING:  # pragma: no cover
    from edgerules.lang.engine import Filter
    from edgerules.rulesets.ruleset import Ruleset

__all__ = ["ALLOW", "KINDS", "PHASE", "PHASE_DONE", "Decision", "Rule", "decide"]

PHASE = "http_request_firewall_custom"


KINDS = ("root", "zone", "custom")


RULESET_KEYS = ("name", "id", "description", "kind", "phase", "version", "last_updated",
                 "rules")


RULE_KEYS = ("ref", "id", "description", "expression", "action", "action_parameters",
              "enabled", "logging", "version", "last_updated", "categories")


READ_ONLY_RULE_KEYS = ("version", "last_updated", "categories")

# How ``Ruleset._run`` reports "skip phase current matched: stop the whole phase, allow".
PHASE_DONE = object()


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a request.

    ``outcome``: ``"block"``, ``"challenge"`` or ``"allow"``. ``action``: the deciding
    rule's action (``block``, ``managed_challenge``, ``js_challenge``, ``challenge``) or
    ``None`` for allow. ``rule``: the deciding ``Rule`` (``.ref``, ``.description``) or
    ``None``. ``response``: the custom block response, or ``None`` (the adapter serves its
    default block page, status 403). ``logged``: ``log`` rules that matched, in order.
    ``skipped``: ``skip`` rules that matched (their ``.act`` says what they skipped).
    """

    outcome: str
    action: str | None = None
    rule: Rule | None = None
    response: BlockResponse | None = None
    logged: tuple[Rule, ...] = ()
    skipped: tuple[Rule, ...] = ()

    @property
    def blocked(self) -> bool:
        return self.outcome == "block"

    @property
    def allowed(self) -> bool:
        return self.outcome == "allow"

    @property
    def status(self) -> int | None:
        """The HTTP status of a block (custom or 403); ``None`` otherwise."""
        if self.outcome != "block":
            return None
        return self.response.status if self.response is not None else 403

    @property
    def skipped_phases(self) -> frozenset[str]:
        return frozenset(p for r in self.skipped for p in r.act.skip_phases)

    @property
    def skipped_products(self) -> frozenset[str]:
        return frozenset(p for r in self.skipped for p in r.act.skip_products)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"outcome": self.outcome, "action": self.action}
        out["rule"] = None if self.rule is None else self.rule.label
        if self.rule is not None:
            out["ruleset"] = self.rule.ruleset_name
            out["description"] = self.rule.description
        out["response"] = None if self.response is None else self.response.to_dict()
        out["logged"] = [r.label for r in self.logged]
        out["skipped"] = [r.label for r in self.skipped]
        return out

    def __str__(self) -> str:
        if self.rule is None:
            return "allow (no rule decided)"
        what = self.outcome if self.action == self.outcome else f"{self.outcome} ({self.action})"
        text = f"{what} by rule {self.rule.label!r}"
        if self.response is not None:
            text += f", status {self.response.status} {self.response.content_type}"
        return text


ALLOW = Decision("allow")


class Rule:
    """One rule of a ruleset; immutable after loading.

    ``act`` is the validated ``Action``; ``filter`` the compiled expression; ``target``
    the executed ``Ruleset`` of an ``execute`` rule once resolved.
    """

    __slots__ = ("_decision", "act", "action", "action_parameters", "description",
                 "enabled", "expression", "extra", "filter", "id", "index", "logging",
                 "ref", "ruleset_name", "target")

    def __init__(self, *, ref: str | None, id: str | None, description: str, expression: str,
                 action: str, action_parameters: dict[str, Any] | None, enabled: bool,
                 logging: dict[str, Any] | None, extra: dict[str, Any], index: int,
                 ruleset_name: str, act: Action, filter: Filter) -> None:
        self.ref = ref
        self.id = id
        self.description = description
        self.expression = expression
        self.action = action
        self.action_parameters = action_parameters
        self.enabled = enabled
        self.logging = logging
        self.extra = extra
        self.index = index
        self.ruleset_name = ruleset_name
        self.act = act
        self.filter = filter
        self.target: Ruleset | None = None
        self._decision: Decision | None = None
        if act.terminating:
            self._decision = Decision(act.outcome or "block", action, self, act.response)

    @property
    def label(self) -> str:
        """How messages name the rule: its ref, else its id, else ``#position``."""
        return self.ref or self.id or f"#{self.index + 1}"

    @property
    def fields(self) -> frozenset[str]:
        return self.filter.fields

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.ref is not None:
            out["ref"] = self.ref
        if self.id is not None:
            out["id"] = self.id
        out["description"] = self.description
        out["expression"] = self.expression
        out["action"] = self.action
        if self.action_parameters:
            out["action_parameters"] = _copy(self.action_parameters)
        out["enabled"] = self.enabled
        if self.logging is not None:
            out["logging"] = _copy(self.logging)
        for key in READ_ONLY_RULE_KEYS:
            if key in self.extra:
                out[key] = _copy(self.extra[key])
        return out

    def __repr__(self) -> str:
        return f"Rule({self.label!r}, {self.action})"


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


def decide(result: object, acc: list[Rule]) -> Decision:
    if not acc:
        if result is None or result is PHASE_DONE:
            return ALLOW
        return result._decision  # type: ignore[attr-defined,no-any-return]
    logged = tuple(r for r in acc if r.act.name == "log")
    skipped = tuple(r for r in acc if r.act.name == "skip")
    if result is None or result is PHASE_DONE:
        return Decision("allow", logged=logged, skipped=skipped)
    d: Decision = result._decision  # type: ignore[attr-defined]
    return Decision(d.outcome, d.action, d.rule, d.response, logged, skipped)
