"""Rules, rulesets, decisions and policies.

Cloudflare's pages: https://developers.cloudflare.com/ruleset-engine/about/rules/,
https://developers.cloudflare.com/ruleset-engine/about/rulesets/,
https://developers.cloudflare.com/ruleset-engine/about/phases/ (evaluation order) and
https://developers.cloudflare.com/ruleset-engine/rules-language/actions/.

This module owns the ``Ruleset`` and the evaluation order (``Ruleset._run``, the
one place that defines it). Loading and validating documents is ``loading``, files are
``formats``, the rule index ``index``, ``execute`` binding ``resolve``, traces ``trace``,
account/zone entry points ``policy``; action parameters are validated by ``actions``,
named lists come from ``lists``; expressions are compiled by the language core.

Invariants:

* A ``Ruleset`` that exists is valid: every rule (enabled or not) compiled, every action
  validated, refs unique, limits respected. Loading reports **all** broken rules in one
  ``RulesetError``.
* Evaluation builds one ``Context`` per request holding only ``ruleset.fields`` and then
  only calls precompiled closures: no per-rule dict work, no allocation unless a
  non-terminating rule matches (decisions of terminating rules are prebuilt) or the
  rule index (``_RuleIndex``, large rulesets only) merges its candidate lists.
* The rule index decides exactly like walking every enabled rule: it only leaves out
  rules whose guard (a necessary condition) fails.
* ``evaluate`` never raises for request data (the engine's ``execute`` never does); it
  raises ``RulesetError`` only for a configuration mistake (an ``execute`` rule whose
  target was never loaded) and ``ContextError`` for field values of the wrong type.

Decisions on points Cloudflare's documentation leaves open, also in docs/rulesets.md:

* ``ref`` is any non-empty string, unique within a ruleset; a rule without ``ref`` is
  named by its ``id`` or by its position (``#3``) in messages; ``id`` s are unique too.
* Unknown keys are rejected naming the key; the read-only API keys (``id``,
  ``version``, ``last_updated``, ``categories``) are accepted and written back.
* ``kind`` defaults to ``zone`` and ``phase`` to ``http_request_firewall_custom`` (the
  only phase whose actions edgerules implements; others are refused). ``managed``
  rulesets are refused.
* ``execute`` targets a ``custom`` ruleset by its ``id``, or by its ``name`` when it has
  no ``id`` (handy for hand-written files). Nested ``execute`` is allowed; cycles are
  rejected when targets are resolved.
* A ``skip`` rule with ``ruleset: current`` inside an executed custom ruleset skips the
  rest of that custom ruleset and evaluation continues after the ``execute`` rule (the
  "current ruleset" is the one holding the skip rule). ``skip`` with ``phases`` /
  ``products`` only records what to skip (``Decision.skipped``): those phases and products
  are the host's business.
* After a challenge the decision is final for this evaluation (outcome ``challenge``);
  what happens when the visitor passes is the host's business (Cloudflare only says the
  request is "accepted").
* ``Decision.action`` is ``None`` when nothing terminated the request (outcome
  ``allow``); ``logged``/``skipped`` are tuples of ``Rule``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgerules.lang.context import Context
from edgerules.lang.errors import ContextError
from edgerules.rulesets.actions import Limits
from edgerules.rulesets.errors import RulesetError
from edgerules.rulesets.formats import dump_json, dump_toml, read_document, write_ruleset_file
from edgerules.rulesets.index import RuleIndex
from edgerules.rulesets.loading import gc_paused, rules_from_dict
from edgerules.rulesets.model import ALLOW, PHASE_DONE, Decision, Rule, decide
from edgerules.rulesets.resolve import registry, resolve
from edgerules.rulesets.trace import RulesetTrace, Tracer, trace_entries

if TYPE_CHECKING:  # pragma: no cover
    from edgerules.lang.engine import Filter
    from edgerules.lang.scheme import Scheme

__all__ = ["Ruleset", "context_of", "own_context"]

# Step codes of the compiled plan (ints compare fastest with `is`).
_TERMINATE, _LOG, _SKIP, _EXECUTE = 0, 1, 2, 3
# `_matched` result meaning "go on with the next rule".
_CONTINUE = object()


class Ruleset:
    """An ordered list of rules of one phase. Build with ``load``/``from_dict``."""

    def __init__(self, *, name: str, kind: str, phase: str, rules: list[Rule],
                 description: str = "", id: str | None = None, extra: dict[str, Any] | None = None,
                 scheme: Scheme, lists: Mapping[str, Any] | None, limits: Limits,
                 origin: str | None = None) -> None:
        self.name = name
        self.kind = kind
        self.phase = phase
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.description = description
        self.id = id
        self.extra = dict(extra or {})
        self.scheme = scheme
        self.lists = lists
        self.limits = limits
        self.origin = origin
        self._by_ref = {r.ref: r for r in rules if r.ref}
        self._use_index = True
        self._build_plan()

    # -- loading --------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, lists: Mapping[str, Any] | None = None,
             limits: Limits | str | dict[str, Any] | None = None, scheme: Scheme | None = None,
             rulesets: Mapping[str, Ruleset] | Iterable[Ruleset] | None = None) -> Ruleset:
        """Load a ruleset file, in any format users keep rules in (told by content):
        JSON (a Rulesets API object, or a Cloudflare API response with its
        ``result``/``success`` envelope), TOML (the same keys, rules as ``[[rules]]``),
        a Terraform ``cloudflare_ruleset`` resource, an octorules YAML zone file.
        A missing ``name`` defaults to the stem. Rule errors point at the file's line
        and column (:mod:`edgerules.rulesets.formats`)."""
        p = Path(path)
        doc = read_document(p)
        obj = doc.obj
        if isinstance(obj, dict) and "name" not in obj:
            obj = {"name": p.stem.removesuffix(".ruleset"), **obj}
        try:
            return cls.from_dict(obj, lists=lists, limits=limits, scheme=scheme,
                                 rulesets=rulesets, origin=str(p))
        except RulesetError as exc:
            raise doc.relocate(exc) from None

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any], *, lists: Mapping[str, Any] | None = None,
                  limits: Limits | str | dict[str, Any] | None = None,
                  scheme: Scheme | None = None,
                  rulesets: Mapping[str, Ruleset] | Iterable[Ruleset] | None = None,
                  origin: str | None = None) -> Ruleset:
        """Build a ruleset from the Rulesets API object; compile every rule and report
        every broken one at once (``RulesetError.errors``: ``(label, error)``).

        ``rulesets``: custom rulesets that ``execute`` rules may reference (by id, or
        name); without it, ``execute`` targets stay unresolved until a ``Policy`` binds
        them.
        """
        with gc_paused():  # (the collector's passes were most of a large load's time)
            parts = rules_from_dict(obj, lists=lists, limits=limits, scheme=scheme,
                                    origin=origin)
            rs = cls(**parts)
        if rulesets is not None:
            resolve([rs], registry(rulesets))
        return rs

    # -- writing ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The Rulesets API object (``from_dict(to_dict())`` gives an equal ruleset)."""
        out: dict[str, Any] = {"name": self.name}
        if self.id is not None:
            out["id"] = self.id
        out["description"] = self.description
        out["kind"] = self.kind
        out["phase"] = self.phase
        for key in ("version", "last_updated"):
            if key in self.extra:
                out[key] = self.extra[key]
        out["rules"] = [r.to_dict() for r in self.rules]
        return out

    def to_json(self, *, indent: int = 2) -> str:
        return dump_json(self.to_dict(), indent=indent)

    def to_toml(self) -> str:
        """The same object as a hand-editable TOML document (``[[rules]]`` tables)."""
        return dump_toml(self.to_dict())

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write JSON or TOML by the file's extension."""
        write_ruleset_file(Path(path), self.to_dict())

    # -- evaluation -------------------------------------------------------------------------

    def _build_plan(self) -> None:
        """Precompute the step list (enabled rules only) and the field set.

        A step is ``(closure, code, position in _enabled)``. It deliberately holds no
        ``Rule``: the loop unpacks every step, and touching one more object per rule (its
        reference count) scattered through the heap measured ~1.5× slower at 10,000
        rules. The closures are compiled here, again, in one pass (``_fast_execute``), so
        that the objects evaluated per rule lie together in memory rather than between
        each rule's parse and check data; together that made a 10,000-rule linear scan
        ~2.5× faster (docs/rulesets.md)."""
        enabled = tuple(rule for rule in self.rules if rule.enabled)
        steps = []
        for pos, rule in enumerate(enabled):
            act = rule.act
            if act.terminating:
                code = _TERMINATE
            elif act.name == "log":
                code = _LOG
            elif act.name == "skip":
                code = _SKIP
            else:
                code = _EXECUTE
            steps.append((_fast_execute(rule.filter), code, pos))
        self._enabled: tuple[Rule, ...] = enabled
        self._steps: tuple[tuple[Any, int, int], ...] = tuple(steps)
        self._index = RuleIndex.build(enabled, self.scheme, use_index=self._use_index)
        fields: set[str] = set()
        seen: set[int] = set()
        self._collect_fields(fields, seen)
        self.fields: frozenset[str] = frozenset(fields)

    def _collect_fields(self, out: set[str], seen: set[int]) -> None:
        if id(self) in seen:
            return
        seen.add(id(self))
        for rule in self._enabled:
            out.update(rule.filter.fields)
            if rule.target is not None:
                rule.target._collect_fields(out, seen)

    @property
    def custom_rulesets(self) -> tuple[str, ...]:
        """Ids of the rulesets the enabled and disabled ``execute`` rules reference."""
        return tuple(r.act.execute_id for r in self.rules if r.act.execute_id)

    def context(self, *mappings: Mapping[str, object] | None) -> Context:
        """One ``Context`` holding only ``self.fields``, filled from ``mappings`` in order
        (later ones win): e.g. ``ruleset.context(request_fields, client_auth.fields())``.
        Values are read only for fields the ruleset uses (so a lazy mapping computes
        nothing else)."""
        return context_of(self.scheme, self.fields, mappings)

    def _context(self, fields: Mapping[str, object] | Context) -> Context:
        return own_context(self.scheme, self.fields, fields, f"ruleset {self.name!r}'s")

    def evaluate(self, fields: Mapping[str, object] | Context) -> Decision:
        """Evaluate the request against this ruleset alone (as the only entry point of
        the phase) and return the ``Decision``. No rule matched ⇒ ``allow``."""
        ctx = fields
        if type(ctx) is not Context or ctx.scheme is not self.scheme:  # fast path inline
            ctx = self._context(fields)
        acc: list[Rule] = []
        result = self._run(ctx, acc, None)  # type: ignore[arg-type]
        if result is None and not acc:
            return ALLOW
        return decide(result, acc)

    def _run(self, ctx: Context, acc: list[Rule], tracer: Tracer | None) -> object:
        """Run this ruleset's rules in list order and return how it ended:
        the terminating ``Rule``, ``PHASE_DONE`` (a ``skip phase: current``), or
        ``None`` (ran to its end, or ``skip ruleset: current``: the caller continues).
        What a *matching* rule does is decided in one place, ``_matched``; this method
        only walks (disabled rules are not in ``_steps``). With a tracer every rule is
        evaluated and reported; without one, the rule index may leave out rules that
        cannot match (see ``RuleIndex``) and the loop does nothing else per rule.
        """
        values = ctx.values
        if tracer is None:
            steps: Iterable[tuple[Any, int, int]] = self._steps
            if self._index is not None:
                steps = map(self._steps.__getitem__, self._index.candidates(values))
            for fn, code, pos in steps:
                if fn(values):
                    if code is _TERMINATE:
                        return self._enabled[pos]
                    result = self._matched(code, self._enabled[pos], ctx, acc, None)
                    if result is not _CONTINUE:
                        return result
            return None
        tracer.enter(self)
        for fn, code, pos in self._steps:
            rule = self._enabled[pos]
            matched = bool(fn(values))
            tracer.visit(rule, matched)
            if matched:
                result = rule if code is _TERMINATE else self._matched(code, rule, ctx, acc,
                                                                      tracer)
                if result is not _CONTINUE:
                    tracer.leave(rule, result)
                    return result
        tracer.leave(None, None)
        return None

    @staticmethod
    def _matched(code: int, rule: Rule, ctx: Context, acc: list[Rule],
                 tracer: Tracer | None) -> object:
        """THE semantics of a matching non-terminating rule (Cloudflare's phases page:
        later rules may overwrite earlier effects; skip options).

        (A matching terminating rule — block / *challenge — ends everything: ``_run``
        returns it.) ``log``: recorded in ``acc``, evaluation continues. ``skip``:
        recorded in ``acc``; ``ruleset: current`` ends the ruleset holding the rule
        (``None``: its caller continues), ``phase: current`` ends the phase
        (``PHASE_DONE``), ``phases``/``products`` are only recorded (other phases and
        products are the host's). ``execute``: the target ruleset's rules run in place;
        its terminating rule or phase skip propagates, its end continues here. Returns
        ``_CONTINUE`` to go on with the next rule.
        """
        if code is _LOG:
            acc.append(rule)
            return _CONTINUE
        if code is _SKIP:
            acc.append(rule)
            act = rule.act
            if act.skip_phase:
                return PHASE_DONE
            if act.skip_ruleset:
                return None
            return _CONTINUE
        target = rule.target
        if target is None:
            raise RulesetError(
                f"rule {rule.label!r} executes ruleset {rule.act.execute_id!r}, which "
                "is not loaded: pass rulesets= when loading or evaluate through a Policy"
            )
        result = target._run(ctx, acc, tracer)
        return _CONTINUE if result is None else result

    def trace(self, fields: Mapping[str, object] | Context, *,
              explain: Iterable[str] | str = ()) -> RulesetTrace:
        """Evaluate with a record of every rule: whether it matched, and for the deciding
        rule (plus rules named in ``explain``, or ``explain="all"``) the value of every
        sub-expression."""
        ctx = self._context(fields)
        return trace_entries([self], ctx, explain, self.fields)

    # -- conveniences ------------------------------------------------------------------------

    def rule(self, ref: str) -> Rule:
        try:
            return self._by_ref[ref]
        except KeyError:
            raise KeyError(f"no rule with ref {ref!r} in ruleset {self.name!r}") from None

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ruleset) and self.to_dict() == other.to_dict()

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"Ruleset({self.name!r}, kind={self.kind!r}, {len(self.rules)} rules)"


class _Shim:
    """A stand-in Context for filters that only offer ``execute(ctx)``."""

    __slots__ = ("scheme", "values")

    def __init__(self, scheme: Scheme, values: list[object]) -> None:
        self.scheme = scheme
        self.values = values


def context_of(scheme: Scheme, fields: frozenset[str],
                mappings: Iterable[Mapping[str, object] | None]) -> Context:
    """``Ruleset.context`` / ``Policy.context``: a Context of ``fields`` filled from
    ``mappings`` in order (later ones win), reading only those fields."""
    ctx = scheme.context(None, only=fields)
    for m in mappings:
        if m:
            ctx.update(m, only=fields)
    return ctx


def own_context(scheme: Scheme, fields: frozenset[str], given: Mapping[str, object] | Context,
                 whose: str) -> Context:
    """The Context to evaluate with: ``given`` itself if it is one (of ``scheme``), else
    one built from the mapping (only ``fields`` read)."""
    if isinstance(given, Context):
        if given.scheme is not scheme:
            raise ContextError(f"the context was built for another scheme than {whose}")
        return given
    return scheme.context(given, only=fields)


def _fast_execute(flt: Filter) -> Any:
    """The cheapest callable ``values -> bool`` the filter offers: the engine's closure
    over the context's slot list (one call frame per rule instead of two plus a scheme
    check), compiled afresh from the filter's checked tree (see ``_build_plan``: the
    filter's own ``_fn`` lies among its parse data, and it may be shared through
    ``compile``'s cache), else an adapter around ``execute``."""
    checked = getattr(flt, "_checked", None)
    fn = getattr(flt, "_fn", None)
    if checked is not None and callable(fn):
        from edgerules.lang.compiler import compile_checked

        return compile_checked(checked).fn
    if callable(fn):
        return fn
    scheme = flt.scheme
    return lambda values: flt.execute(_Shim(scheme, values))  # type: ignore[arg-type]
