"""Validating a ruleset document (the Rulesets API object) and compiling its rules.

Owns: every check on a ruleset's and a rule's keys and values, the plan limits (rule
count, expression length, regex and HMAC availability), compiling each expression, and
reporting **all** broken rules at once in one ``RulesetError``; also the total size of the
ruleset's regexes (``Limits.max_regex_program``). Reading and writing
files is :mod:`edgerules.rulesets.formats`; this module only sees parsed objects.
"""

from __future__ import annotations

import gc
import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from edgerules.errors import RuleError
from edgerules.rulesets.actions import Limits, parse_action
from edgerules.rulesets.errors import RulesetError
from edgerules.rulesets.model import (
    KINDS,
    PHASE,
    READ_ONLY_RULE_KEYS,
    RULE_KEYS,
    RULESET_KEYS,
    Rule,
)

if TYPE_CHECKING:  # pragma: no cover
    from edgerules.lang.scheme import Scheme

__all__ = [
    "RulesetParts", "build_rule", "did_you_mean", "gc_paused", "rules_from_dict",
    "scheme_or_default",
]  # fmt: skip


RulesetParts = dict[str, Any]

_gc_lock = threading.Lock()
_gc_depth = 0  # loads in progress (any thread) that paused the collector
_gc_resume = False  # whether the collector was enabled when the first of them began


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's automatic cyclic garbage collector while a ruleset is built.

    Compiling a rule allocates a few hundred container objects of which ~60 stay alive
    (AST nodes, spans, closures); with the collector running, the heap's growth triggers
    full collections that traverse every live object again, which measured more than
    half of a 10,000-rule load's CPU time (docs/rulesets.md, "Performance"). Paused, the
    load's young objects are collected once at the end (generations 0 and 1 only: the
    work is proportional to what the load allocated, not to the process's heap).

    The collector is process-wide: concurrent loads share one pause (a counter under a
    lock; the last one to finish resumes it), and a collector the application had
    disabled stays disabled. Reference counting still frees acyclic garbage meanwhile.
    """
    global _gc_depth, _gc_resume
    with _gc_lock:
        if _gc_depth == 0:
            _gc_resume = gc.isenabled()
            gc.disable()
        _gc_depth += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0 and _gc_resume:
                if gc.get_count()[0] > gc.get_threshold()[0]:  # one would have run
                    gc.collect(1)
                gc.enable()


def rules_from_dict(obj: Mapping[str, Any], *, lists: Mapping[str, Any] | None,
                    limits: Limits | str | dict[str, Any] | None, scheme: Scheme | None,
                    origin: str | None) -> RulesetParts:
    """Validate ``obj`` and compile its rules; return the keyword arguments of
    ``Ruleset(...)``. Raises ``RulesetError`` listing every broken rule."""
    lim = Limits.coerce(limits)
    where = origin or "ruleset"
    if not isinstance(obj, Mapping):
        raise RulesetError(f"{where}: a ruleset must be an object")
    unknown = [k for k in obj if k not in RULESET_KEYS]
    if unknown:
        raise RulesetError(f"{where}: unknown key {unknown[0]!r} in ruleset"
                       f"{did_you_mean(unknown[0], RULESET_KEYS)} "
                           f"(expected {', '.join(RULESET_KEYS)})")
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise RulesetError(f"{where}: the ruleset needs a non-empty string 'name'")
    kind = obj.get("kind", "zone")
    if kind not in KINDS:
        raise RulesetError(f"{where}: kind {kind!r} is not supported "
                           f"(expected {', '.join(KINDS)})")
    phase = obj.get("phase", PHASE)
    if phase != PHASE:
        raise RulesetError(f"{where}: phase {phase!r} is not supported; edgerules "
                           f"implements the custom-rules phase {PHASE!r}")
    description = obj.get("description", "")
    if not isinstance(description, str):
        raise RulesetError(f"{where}: 'description' must be a string")
    rs_id = obj.get("id")
    if rs_id is not None and (not isinstance(rs_id, str) or not rs_id):
        raise RulesetError(f"{where}: 'id' must be a non-empty string")
    raw_rules = obj.get("rules", [])
    if not isinstance(raw_rules, list):
        raise RulesetError(f"{where}: 'rules' must be an array")
    if len(raw_rules) > lim.max_rules:
        raise RulesetError(f"{where}: {len(raw_rules)} rules exceed the limit of "
                           f"{lim.max_rules} ({lim.plan} plan)")
    scheme = scheme_or_default(scheme)
    from edgerules.lang.engine import compile as compile_expr

    origin_text = origin or f"ruleset {name!r}"
    errors: list[tuple[str, RuleError]] = []
    rules: list[Rule] = []
    refs: set[str] = set()
    ids: set[str] = set()
    regex_program = 0  # RE2 instructions of the rules' distinct regexes so far
    regex_seen: dict[int, int] = {}  # id -> size of those regexes (held by their rules)
    for index, raw in enumerate(raw_rules):
        label = f"#{index + 1}"
        if isinstance(raw, Mapping):
            for key in ("ref", "id"):
                if isinstance(raw.get(key), str) and raw[key]:
                    label = raw[key]
                    break
        if isinstance(raw, Mapping):
            for key, seen in (("ref", refs), ("id", ids)):
                value = raw.get(key)
                if isinstance(value, str) and value:
                    if value in seen:
                        errors.append((label, RuleError(
                            f"duplicate {key} {value!r} (rule #{index + 1})")))
                    seen.add(value)
        try:
            rule = build_rule(raw, index, name, kind, lim, scheme, lists, origin_text,
                              compile_expr)
        except RuleError as exc:
            errors.append((label, exc))
            continue
        # The ruleset's regex budget: rules are admitted in order while their regexes
        # fit; each rule that does not is reported (with the others' errors).
        new = {id(rx): rx.program_size for rx in rule.filter.regexes
               if id(rx) not in regex_seen}  # (a shared pattern is compiled once)
        size = sum(new.values())
        if size and regex_program + size > lim.max_regex_program:
            errors.append((label, RuleError(
                f"the ruleset's regexes are too large: this rule's {size:,} RE2 "
                f"instructions would bring the ruleset's total to "
                f"{regex_program + size:,} (the limit is {lim.max_regex_program:,} per "
                f"ruleset: limits max_regex_program)")))
            continue
        regex_program += size
        regex_seen.update(new)
        rules.append(rule)
    if errors:
        n = len(errors)
        raise RulesetError(f"{where}: {n} broken rule{'s' if n > 1 else ''}", errors)
    extra = {k: obj[k] for k in ("version", "last_updated") if k in obj}
    return dict(name=name, kind=kind, phase=phase, rules=rules, description=description,
                id=rs_id, extra=extra, scheme=scheme, lists=lists, limits=lim, origin=origin)


def scheme_or_default(scheme: Scheme | None) -> Scheme:
    if scheme is not None:
        return scheme
    from edgerules.lang.scheme import default_scheme

    return default_scheme()


def _uses(node: object, pred: Any) -> bool:
    """Whether any AST node below ``node`` satisfies ``pred`` (walks the slots of the
    dataclass nodes, skipping spans)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if pred(n):
            return True
        slots = getattr(type(n), "__slots__", ())
        for name in slots if isinstance(slots, tuple) else ():
            if name == "span":
                continue
            child = getattr(n, name, None)
            if isinstance(child, tuple):
                stack.extend(child)
            elif hasattr(type(child), "__dataclass_fields__"):
                stack.append(child)
    return False


def _is_regex(n: object) -> bool:
    return type(n).__name__ == "Comparison" and getattr(n, "op", None) == "matches"


def _is_hmac(n: object) -> bool:
    return type(n).__name__ == "FunctionCall" and getattr(n, "name", "") == "is_timed_hmac_valid_v0"


def build_rule(raw: object, index: int, rs_name: str, kind: str, lim: Limits, scheme: Scheme,
                lists: Mapping[str, Any] | None, origin: str, compile_expr: Any) -> Rule:
    if not isinstance(raw, Mapping):
        raise RuleError("a rule must be an object")
    unknown = [k for k in raw if k not in RULE_KEYS]
    if unknown:
        raise RuleError(f"unknown key {unknown[0]!r} in rule{did_you_mean(unknown[0], RULE_KEYS)}"
                        f" (expected {', '.join(RULE_KEYS)})")
    ref = raw.get("ref")
    if ref is not None and (not isinstance(ref, str) or not ref):
        raise RuleError("'ref' must be a non-empty string")
    rid = raw.get("id")
    if rid is not None and (not isinstance(rid, str) or not rid):
        raise RuleError("'id' must be a non-empty string")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise RuleError("'description' must be a string")
    enabled = raw.get("enabled", True)
    if type(enabled) is not bool:
        raise RuleError(f"'enabled' must be true or false, not {enabled!r}")
    if "expression" not in raw:
        raise RuleError("the rule has no 'expression'")
    expression = raw["expression"]
    if not isinstance(expression, str):
        raise RuleError("'expression' must be a string")
    if "action" not in raw:
        raise RuleError("the rule has no 'action'")
    params = raw.get("action_parameters")
    logging = raw.get("logging")
    act = parse_action(raw["action"], params, logging=logging, limits=lim, kind=kind)
    if len(expression) > lim.max_expression_length:
        raise RuleError(f"the expression is {len(expression)} characters long; the limit is "
                        f"{lim.max_expression_length}")
    label = ref or rid or f"#{index + 1}"
    flt = compile_expr(expression, scheme, lists=lists, name=f"rule {json.dumps(label)} in {origin}")
    if not lim.regex and _uses(flt.ast, _is_regex):
        raise RuleError(f"regular expressions (matches) are not available on the {lim.plan} plan")
    if not lim.hmac and _uses(flt.ast, _is_hmac):
        raise RuleError(f"is_timed_hmac_valid_v0 is not available on the {lim.plan} plan")
    extra = {k: raw[k] for k in READ_ONLY_RULE_KEYS if k in raw}
    return Rule(ref=ref, id=rid, description=description, expression=expression,
                action=raw["action"], action_parameters=dict(params) if params else None,
                enabled=enabled, logging=dict(logging) if logging is not None else None,
                extra=extra, index=index, ruleset_name=rs_name, act=act, filter=flt)


def did_you_mean(key: object, known: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""
