"""Explaining a decision: which rule matched, which did not, and why.

Owns: recording an evaluation (``Tracer``, fed by ``Ruleset._run``), ``RulesetTrace``
and ``TraceStep``, the sub-expression values of explained rules, and the text rendering
(``edgerules trace``). Tracing evaluates every rule (no rule index), so it is for
explaining, not for serving.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edgerules.errors import RuleError
from edgerules.rulesets.model import Decision, Rule, decide

if TYPE_CHECKING:  # pragma: no cover
    from edgerules.lang.context import Context
    from edgerules.lang.engine import TraceNode
    from edgerules.rulesets.ruleset import Ruleset

__all__ = ["RulesetTrace", "TraceStep", "Tracer", "format_value", "trace_entries"]


@dataclass
class _Invocation:
    ruleset: Ruleset
    visits: list[tuple[Rule, bool]] = field(default_factory=list)
    children: dict[int, _Invocation] = field(default_factory=dict)  # rule index -> call
    ended_by: Rule | None = None
    result: object = None


class Tracer:
    """Records what ``Ruleset._run`` did (enter/visit/leave), as a tree of invocations."""

    def __init__(self) -> None:
        self.top: list[_Invocation] = []
        self._stack: list[_Invocation] = []

    def enter(self, rs: Ruleset) -> None:
        inv = _Invocation(rs)
        if self._stack:
            parent = self._stack[-1]
            rule = parent.visits[-1][0]
            parent.children[rule.index] = inv
        else:
            self.top.append(inv)
        self._stack.append(inv)

    def visit(self, rule: Rule, matched: bool) -> None:
        self._stack[-1].visits.append((rule, matched))

    def leave(self, rule: Rule | None, result: object) -> None:
        inv = self._stack.pop()
        inv.ended_by = rule
        inv.result = result


@dataclass(frozen=True)
class TraceStep:
    """One rule's line in a trace. ``status``: ``matched``, ``no match``, ``disabled`` or
    ``not evaluated``; ``note`` explains why; ``node`` holds sub-expression values when
    explained; ``depth`` is the ``execute`` nesting level."""

    rule: Rule
    ruleset: Ruleset
    status: str
    note: str
    depth: int
    node: TraceNode | None = None
    values: tuple[tuple[str, object], ...] = ()

    @property
    def matched(self) -> bool:
        return self.status == "matched"


@dataclass(frozen=True)
class RulesetTrace:
    """The explanation of one evaluation: ``decision``, one ``TraceStep`` per rule (in
    order, executed rulesets nested), and the values of the fields the rules read."""

    decision: Decision
    steps: tuple[TraceStep, ...]
    values: tuple[tuple[str, object], ...]

    def step(self, ref: str) -> TraceStep:
        for s in self.steps:
            if s.rule.ref == ref or s.rule.label == ref:
                return s
        raise KeyError(ref)

    def render(self) -> str:
        return _render_trace(self)

    __str__ = render


def trace_entries(entries: list[Ruleset], ctx: Context, explain: Iterable[str] | str,
           fields: frozenset[str]) -> RulesetTrace:
    tracer = Tracer()
    acc: list[Rule] = []
    result: object = None
    for i, rs in enumerate(entries):
        result = rs._run(ctx, acc, tracer)
        if result is not None:
            # Later entry points never ran: show their rules as not evaluated.
            stop = tracer.top[-1].ended_by
            for later in entries[i + 1:]:
                tracer.top.append(_Invocation(later, ended_by=stop))
            break
    decision = decide(result, acc)
    want_all = explain == "all"
    wanted = set() if isinstance(explain, str) else set(explain)
    if isinstance(explain, str) and not want_all and explain:
        wanted = {explain}
    steps: list[TraceStep] = []
    decider = decision.rule

    def explain_node(rule: Rule) -> TraceNode | None:
        if rule is decider or want_all or rule.ref in wanted or rule.label in wanted:
            try:
                return rule.filter.trace(ctx)
            except RuleError:
                return None
        return None

    def emit(inv: _Invocation, depth: int) -> None:
        visited = {r.index: m for r, m in inv.visits}
        stop = inv.ended_by
        for rule in inv.ruleset.rules:
            if not rule.enabled:
                steps.append(TraceStep(rule, inv.ruleset, "disabled", "rule is disabled", depth))
                continue
            if rule.index in visited:
                matched = visited[rule.index]
                note = _effect(rule) if matched else ""
                node = explain_node(rule)
                steps.append(TraceStep(rule, inv.ruleset, "matched" if matched else "no match",
                                       note, depth, node,
                                       _values(ctx, rule.filter.fields) if node else ()))
                child = inv.children.get(rule.index)
                if child is not None:
                    emit(child, depth + 1)
                continue
            why = "not evaluated"
            if stop is not None:
                if stop.act.name == "skip":
                    why = f"skipped by rule {stop.label!r}"
                elif stop.act.terminating:
                    why = f"request already decided by rule {stop.label!r}"
                else:
                    why = f"evaluation ended inside the ruleset executed by rule {stop.label!r}"
            steps.append(TraceStep(rule, inv.ruleset, "not evaluated", why, depth))

    for inv in tracer.top:
        emit(inv, 0)
    return RulesetTrace(decision, tuple(steps), _values(ctx, fields))


def _values(ctx: Context, names: Iterable[str]) -> tuple[tuple[str, object], ...]:
    out = []
    for name in sorted(names):
        try:
            out.append((name, ctx[name]))
        except RuleError:  # not a field of this scheme: nothing to show
            continue
    return tuple(out)


def _effect(rule: Rule) -> str:
    act = rule.act
    if act.terminating:
        return f"→ {act.outcome} (decides)"
    if act.name == "log":
        return "→ logged, evaluation continues"
    if act.name == "skip":
        parts = []
        if act.skip_phase:
            parts.append("the rest of the phase")
        if act.skip_ruleset:
            parts.append("the rest of this ruleset")
        if act.skip_phases:
            parts.append("phases " + ", ".join(act.skip_phases))
        if act.skip_products:
            parts.append("products " + ", ".join(act.skip_products))
        return "→ skips " + "; ".join(parts)
    target = rule.target
    return f"→ executes ruleset {target.name if target else act.execute_id!r}"


def format_value(value: object) -> str:
    """A field or sub-expression value the way rule text writes it."""
    import ipaddress

    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, bytes):
        return json.dumps(value.decode("utf-8", "backslashreplace"))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    if isinstance(value, tuple | list):
        inner = ", ".join(format_value(v) for v in value[:8])
        more = ", …" if len(value) > 8 else ""
        return f"[{inner}{more}]"
    if isinstance(value, dict):
        items = list(value.items())
        inner = ", ".join(f"{format_value(k)}: {format_value(v)}" for k, v in items[:8])
        more = ", …" if len(items) > 8 else ""
        return "{" + inner + more + "}"
    if type(value).__name__ == "Missing":
        return "(missing)"
    return repr(value)


def _render_node(node: TraceNode, indent: str, lines: list[str]) -> None:
    text = " ".join(node.text.split())
    if len(text) > 160:
        text = text[:157] + "..."
    lines.append(f"{indent}{text}  = {format_value(node.value)}")
    children = list(node.children)
    # A bare Boolean field is both a condition and a value: show it once.
    while (len(children) == 1 and " ".join(children[0].text.split()) == " ".join(node.text.split())
           and children[0].value == node.value):
        children = list(children[0].children)
    for child in children:
        _render_node(child, indent + "  ", lines)


def _render_trace(trace: RulesetTrace) -> str:
    lines: list[str] = []
    current: object = None
    shown: set[int] = set()
    for step in trace.steps:
        if step.ruleset is not current:
            current = step.ruleset
            rs = step.ruleset
            pad = "  " * step.depth
            again = " (continued)" if id(rs) in shown else ""
            shown.add(id(rs))
            lines.append(f"{pad}ruleset {rs.name!r} ({rs.kind}, {rs.phase}){again}")
        pad = "  " * (step.depth + 1)
        mark = {"matched": "MATCH", "no match": "-", "disabled": "off",
                "not evaluated": "·"}[step.status]
        line = f"{pad}{step.rule.index + 1:>3}. {step.rule.label:<24} {step.rule.action:<17} {mark}"
        if step.status == "no match":
            line += " (no match)"
        if step.note:
            line += f"  {step.note}"
        lines.append(line.rstrip())
        if step.node is not None:
            _render_node(step.node, pad + "       ", lines)
            if step.values:
                lines.append(f"{pad}       where:")
                width = max(len(n) for n, _ in step.values)
                for name, value in step.values:
                    lines.append(f"{pad}         {name:<{width}} = {format_value(value)}")
    lines.append("")
    lines.append(f"decision: {trace.decision}")
    d = trace.decision
    if d.logged:
        lines.append("logged: " + ", ".join(r.label for r in d.logged))
    if d.skipped:
        lines.append("skip rules matched: " + ", ".join(r.label for r in d.skipped))
    if trace.values:
        lines.append("fields read:")
        width = max(len(n) for n, _ in trace.values)
        for name, value in trace.values:
            lines.append(f"  {name:<{width}} = {format_value(value)}")
    return "\n".join(lines)
