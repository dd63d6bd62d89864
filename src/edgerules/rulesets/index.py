"""The rule index: pre-selecting the rules that can match a request.

Owns ``RuleIndex`` and the guards it is built from (see its docstring). Invariant: the
index decides exactly like walking every enabled rule — it only leaves out rules whose
guard (a necessary condition) fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgerules.lang import ast as A
from edgerules.lang.types import BOOL, BYTES, INT

if TYPE_CHECKING:  # pragma: no cover
    from edgerules.lang.scheme import Scheme
    from edgerules.rulesets.model import Rule

__all__ = ["RuleIndex"]


class RuleIndex:
    """Pre-selection of the rules that can match a request, keeping rule order.

    A rule whose expression is ``A and B and …`` (or a single condition) where one
    conjunct is ``field eq "literal"``, ``field in {"a" "b"}`` (String/Int literals only),
    ``bool_field`` or ``not bool_field`` on a plain, non-optional field can only match
    when that field holds one of those values: such a conjunct is the rule's *guard*.
    An ``or`` whose every alternative has a guard is guarded by all of them (the rule is
    a candidate when any holds); ``_guards`` derives them from the AST.
    The index maps, per guarded field slot, each value to the sorted positions of the
    rules it guards; rules without a guard are always candidates. ``candidates(values)``
    costs one dict lookup per guarded field plus merging the (sorted) position lists, so
    a ruleset of many host- or path-specific rules evaluates only the rules for this
    request's host/path. Semantics are unchanged: a rule left out would have evaluated
    false (its guard is a necessary condition, compared exactly as the engine compares:
    bytes and ints by equality, Booleans by identity). IP literals are never guards
    (address-family subtleties stay with the engine).
    """

    __slots__ = ("_always", "_multi", "_tables")
    MIN_RULES = 32  # below this, walking every rule is as cheap as selecting

    def __init__(self, always: tuple[int, ...],
                 tables: tuple[tuple[int, dict[object, tuple[int, ...]]], ...],
                 multi: bool) -> None:
        self._always = always
        self._tables = tables
        self._multi = multi

    @classmethod
    def build(cls, rules: tuple[Rule, ...], scheme: Scheme,
              *, use_index: bool = True) -> RuleIndex | None:
        """The index of ``rules`` (the enabled rules, positions as in ``_steps``)."""
        if not use_index or len(rules) < cls.MIN_RULES:
            return None
        always: list[int] = []
        tables: dict[int, dict[object, list[int]]] = {}
        multi = False
        for pos, rule in enumerate(rules):
            guard = _guards(rule.filter.ast, scheme)
            if guard is None:
                always.append(pos)
                continue
            per_slot: dict[int, dict[object, None]] = {}
            for slot, keys in guard:
                per_slot.setdefault(slot, {}).update(dict.fromkeys(keys))
            multi = multi or len(per_slot) > 1
            for slot, keys_seen in per_slot.items():
                table = tables.setdefault(slot, {})
                for key in keys_seen:
                    table.setdefault(key, []).append(pos)
        guarded = len(rules) - len(always)
        if guarded < len(rules) // 4:
            return None  # too few guarded rules to pay for the selection
        frozen = tuple((slot, {k: tuple(v) for k, v in t.items()}) for slot, t in tables.items())
        return cls(tuple(always), frozen, multi)

    def candidates(self, values: list[object]) -> tuple[int, ...] | list[int]:
        """Positions (ascending) of the rules that can match ``values``."""
        hits = None
        for slot, table in self._tables:
            found = table.get(values[slot])
            if found is not None:
                hits = found if hits is None else hits + found
        if hits is None:
            return self._always
        if self._multi:  # a rule guarded on two fields may be hit twice
            return sorted(set(self._always + hits))
        return sorted(self._always + hits)


_Guard = list[tuple[int, tuple[object, ...]]]


def _guards(expr: object, scheme: Scheme) -> _Guard | None:
    """Necessary conditions of ``expr`` as a disjunction of ``(field slot, allowed
    values)``: the expression can only be true when, for at least one entry, the slot
    holds one of the values. ``None`` when no such condition is known (see
    ``RuleIndex``)."""
    if isinstance(expr, A.Logical) and expr.op == "or":
        out: _Guard = []
        for item in expr.items:
            g = _guards(item, scheme)
            if g is None:
                return None  # one unguarded alternative makes the whole `or` unguarded
            out.extend(g)
        return out
    if isinstance(expr, A.Logical) and expr.op == "and":
        best: _Guard | None = None
        for item in expr.items:
            g = _guards(item, scheme)
            if g is not None and (best is None or _guard_score(g) > _guard_score(best)):
                best = g
        return best
    negated = False
    if isinstance(expr, A.Not) and isinstance(expr.operand, A.BoolValue):
        expr, negated = expr.operand, True
    if isinstance(expr, A.BoolValue) and isinstance(expr.value, A.FieldRef):
        fld = scheme.get(expr.value.name)
        if fld is not None and fld.type == BOOL and not fld.optional:
            return [(fld.index, (not negated,))]
        return None
    if negated or not isinstance(expr, A.Comparison) or not isinstance(expr.lhs, A.FieldRef):
        return None
    fld = scheme.get(expr.lhs.name)
    if fld is None or fld.optional or fld.type not in (BYTES, INT):
        return None
    kind = "string" if fld.type == BYTES else "int"
    rhs = expr.rhs
    if expr.op == "eq" and isinstance(rhs, A.Literal) and rhs.kind == kind:
        return [(fld.index, (rhs.value,))]
    if (expr.op == "in" and isinstance(rhs, A.SetLiteral) and rhs.items
            and all(isinstance(x, A.Literal) and x.kind == kind for x in rhs.items)):
        return [(fld.index, tuple(x.value for x in rhs.items))]  # type: ignore[union-attr]
    return None


def _guard_score(g: _Guard) -> tuple[int, int]:
    """Prefer guards on many-valued fields (not Booleans), then fewer allowed values."""
    bool_only = all(isinstance(k, bool) for _, keys in g for k in keys)
    return (0 if bool_only else 1, -sum(len(keys) for _, keys in g))
