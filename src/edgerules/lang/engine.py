"""The public engine API: ``parse``, ``compile``, ``format``, ``Filter``, ``TraceNode``.

Data flow: text -> ``parser.parse_expression`` (AST with spans) -> ``checker.check``
(names, types, patterns) -> ``Filter``; on first use ``execgen``/``matchgen`` generate
the filter's ``execute``/``matches`` functions, or (expressions they do not cover)
``compiler.compile_checked`` builds closures.

Invariants:

* A ``Filter`` is immutable and holds no per-request state, so one filter may be shared
  by threads and tasks. (Its generated functions, closures and the per-node closures
  ``trace`` reads are built on first use and cached on the filter; building them twice
  is harmless.)
* ``Filter.execute(ctx)`` checks that the context belongs to the filter's scheme and
  then raises for data only when it reads a bad value from a lazily built Context
  (``scheme.context(mapping, lazy=True)``); a filled Context's values were coerced and
  checked when it was built.
* ``compile`` keeps a small ``functools.lru_cache`` keyed by (text, scheme, name) for
  calls without named lists; a cached ``Filter`` is immutable, so sharing it is safe.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edgerules.lang import ast
from edgerules.lang.checker import Checked, check
from edgerules.lang.compiler import Compiled, compile_checked
from edgerules.lang.context import Context
from edgerules.lang.errors import ContextError
from edgerules.lang.formatter import format_expr
from edgerules.lang.scheme import Field, Scheme, default_scheme
from edgerules.lang.source import Source, Span
from edgerules.lang.types import BOOL, BYTES, INT, INT64_MAX, INT64_MIN, MISSING

__all__ = ["Filter", "TraceNode", "compile", "format", "parse"]

_ABSENT = object()
_STR, _BOOL, _INT, _OTHER = 0, 1, 2, 3


def _not_a_mapping(fields: object) -> ContextError:
    """The error for ``matches(x)`` with something that is not a mapping. The matches
    closures call ``fields.get`` inside a try block (free in CPython 3.11 until it
    raises), so the common path pays nothing for this check."""
    return ContextError(f"expected a mapping of field names to values, got {type(fields).__name__}")


def _single_field_matches(
    reader: tuple[str, int, int, Any], default: object, fn: Callable[[list], bool]
) -> Callable[[Mapping[str, object]], bool]:
    """``matches`` for a filter reading one field (no loop; the absent-field result is
    computed once, since filters are pure)."""
    name, _i, kind, coerce = reader
    absent = fn([default])
    if kind == _STR:

        def matches_str(fields: Mapping[str, object]) -> bool:
            try:
                x = fields.get(name, _ABSENT)
            except AttributeError:
                raise _not_a_mapping(fields) from None
            if x is _ABSENT:
                return absent
            if type(x) is str:
                try:
                    return fn([x.encode()])
                except UnicodeEncodeError:
                    pass
            return fn([coerce(x)])

        return matches_str

    def matches_one(fields: Mapping[str, object]) -> bool:
        try:
            x = fields.get(name, _ABSENT)
        except AttributeError:
            raise _not_a_mapping(fields) from None
        if x is _ABSENT:
            return absent
        return fn([coerce(x)])

    return matches_one


def parse(text: str, *, name: str | None = None) -> ast.Expr:
    """Parse rule text into an AST (no names resolved, nothing typed).

    Raises:
        ParseError: syntax errors, malformed literals, exceeded limits.
    """
    from edgerules.lang.parser import parse_expression

    return parse_expression(text, name)


def compile(
    text: str,
    scheme: Scheme | None = None,
    *,
    lists: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> Filter:
    """Parse, check and compile ``text`` into a ``Filter``.

    Args:
        text: the rule expression.
        scheme: the fields and functions available (default: Cloudflare's).
        lists: named lists ``{name: NamedList}`` for ``in $name`` (default: none).
        name: a name for error messages (``rule "block-ua"``).

    Raises:
        ParseError: syntax errors and patterns the regex/wildcard engine cannot take.
        RuleTypeError: unknown names, type errors, argument mistakes.

    >>> f = compile('http.host eq "a.com" and not ssl')
    >>> f.matches({"http.host": "a.com"}), f.matches({"http.host": "a.com", "ssl": True})
    (True, False)
    """
    if scheme is None:
        scheme = default_scheme()
    if lists is None and type(text) is str and (name is None or type(name) is str):
        return _compile_cached(text, scheme, name)
    return _compile(text, scheme, lists, name)


@functools.lru_cache(maxsize=512)
def _compile_cached(text: str, scheme: Scheme, name: str | None) -> Filter:
    return _compile(text, scheme, None, name)


def _compile(
    text: str, scheme: Scheme, lists: Mapping[str, Any] | None, name: str | None
) -> Filter:
    from edgerules.lang.parser import parse_expression

    source = Source(text, name)
    tree = parse_expression(text, name, limits=scheme.limits)
    checked = check(tree, scheme, source, lists=lists)
    return Filter(checked)


def format(expr: str | ast.Expr | Filter) -> str:
    """The canonical text of an expression (text is parsed first). The output parses back
    to the same AST."""
    if isinstance(expr, Filter):
        return format_expr(expr.ast)
    if isinstance(expr, str):
        return format_expr(parse(expr))
    return format_expr(expr)


@dataclass(frozen=True)
class TraceNode:
    """One evaluated sub-expression: its canonical ``text``, ``span`` in the rule, the
    ``value`` it had (bool, a tuple of bools for element-wise conditions, or a field's
    value) and its ``children``."""

    text: str
    span: Span
    value: object
    children: tuple[TraceNode, ...] = ()

    def render(self, indent: int = 0) -> str:
        """An indented, human-readable tree."""
        lines = [f"{'  ' * indent}{_show(self.value)}  {self.text}"]
        lines.extend(child.render(indent + 1) for child in self.children)
        return "\n".join(lines)


def _show(value: object) -> str:
    if value is True:
        return "true "
    if value is False:
        return "false"
    if value is MISSING:
        return "(missing)"
    return repr(value)


class Filter:
    """A compiled rule expression.

    Attributes:
        source: the text and its name.
        ast: the parsed expression.
        scheme: the scheme it was checked against (contexts must come from it).
        fields: canonical names of every field the filter reads.
    """

    __slots__ = (
        "_checked",
        "_compiled",
        "_fn",
        "_traced",
        "ast",
        "execute",
        "fields",
        "matches",
        "scheme",
        "source",
    )

    # ``execute`` and ``matches`` are per-instance closures rather than methods: a closure
    # reads its captured cells instead of ``self.`` attributes, which measured ~40% less
    # overhead per call on the fast path (71 vs 112 ns for a bare Boolean rule).
    execute: Callable[[Context], bool]
    matches: Callable[[Mapping[str, object]], bool]

    def __init__(self, checked: Checked, compiled: Compiled | None = None) -> None:
        self.source: Source = checked.source
        self.ast: ast.Expr = checked.expr
        self.scheme: Scheme = checked.scheme
        self.fields: frozenset[str] = frozenset(checked.used)
        self._checked = checked
        self._traced: Compiled | None = None  # compiled with trace=True on first trace()
        # The closure tree is compiled on first use: ``execute``/``matches`` mostly run
        # generated code, and a ruleset compiles its own copy (rulesets/ruleset.py), so
        # compiling it here would double a ruleset's compile time for nothing.
        self._compiled = compiled
        self._fn = compiled.fn if compiled is not None else self._lazy_fn()
        self.execute = self._make_execute()
        self.matches = self._make_lazy_matches()

    def _lazy_fn(self) -> Callable[[list], bool]:
        real: Callable[[list], bool] | None = None

        def fn(values: list) -> bool:
            nonlocal real
            if real is None:
                real = self._closures()
            return real(values)

        return fn

    def _closures(self) -> Callable[[list], bool]:
        """The closure tree's top function (``values -> bool``), compiled once."""
        if self._compiled is None:
            self._compiled = compile_checked(self._checked)
            self._fn = self._compiled.fn
        return self._compiled.fn

    # -- evaluation ----------------------------------------------------------------------

    def _make_execute(self) -> Callable[[Context], bool]:
        real: Callable[[Context], bool] | None = None

        def execute(ctx: Context) -> bool:
            """Evaluate against a ``Context`` of this filter's scheme (the fast path).

            A plain mapping is accepted too (then this is ``matches``).

            Raises:
                ContextError: the context belongs to another scheme; a value of the
                    wrong type read from a lazily built Context.
            """
            # First call: generate the function (execgen), or the closure path, then
            # replace this bootstrap (kept for callers holding it, built once).
            nonlocal real
            if real is None:
                real = self.execute = self._build_execute()
            return real(ctx)

        return execute

    def _build_execute(self) -> Callable[[Context], bool]:
        from edgerules.lang.execgen import build_execute

        generated = build_execute(self._checked, self._execute_other)
        if generated is not None:
            return generated
        fn = self._closures()
        scheme = self.scheme
        other = self._execute_other

        def execute(ctx: Context) -> bool:
            if ctx.__class__ is Context and ctx.scheme is scheme:
                return fn(ctx.values)
            return other(ctx)

        return execute

    def _execute_other(self, ctx: object) -> bool:
        """``execute`` for anything but a ``Context`` of this scheme: a Context subclass
        of it runs the closures, a mapping is ``matches``, the rest is an error."""
        if isinstance(ctx, Context):
            if ctx.scheme is not self.scheme:
                raise ContextError("the context was built for another scheme than the filter's")
            return self._closures()(ctx.values)
        if isinstance(ctx, Mapping):
            return self.matches(ctx)
        raise ContextError(f"expected a Context, got {type(ctx).__name__}")

    def __call__(self, ctx: Context) -> bool:
        return self.execute(ctx)

    def _make_lazy_matches(self) -> Callable[[Mapping[str, object]], bool]:
        real: Callable[..., bool] | None = None

        def matches(fields: Mapping[str, object], strict: bool = True) -> bool:
            """Evaluate against a plain mapping ``{field name: value}``.

            A field is looked up when evaluation reaches it, once per call (so a lazily
            computed mapping computes only those), and compared as ``Context`` would
            after coercion (str -> UTF-8 bytes, IP text -> address, …); an absent field
            takes its alias's value, else its default. When a field the filter reads is
            absent, the mapping's keys are checked: a name outside the scheme is a
            ``ContextError`` with a suggestion (``strict=False`` allows extra keys).

            Raises:
                ContextError: a value of the wrong type for a field evaluation reads; an
                    unknown key (see above); ``fields`` is not a mapping.
            """
            # First call: build the dense closures, then replace this bootstrap. A caller
            # may hold this bootstrap (``m = f.matches`` before the first call), so it
            # keeps the built function too and never builds it twice.
            nonlocal real
            if real is None:
                real = self.matches = self._make_matches()
            return real(fields, strict)

        return matches

    def _make_matches(self) -> Callable[..., bool]:
        """The generated ``matches`` (``matchgen``: lazy reads, ``str`` comparisons), or
        for expressions it does not cover the dense closure path below."""
        from edgerules.lang.matchgen import build_matches

        generated = build_matches(self._checked)
        if generated is not None:
            return generated
        dense = self._make_dense_matches()
        scheme = self.scheme
        names = self._readable_names()

        def matches(fields: Mapping[str, object], strict: bool = True) -> bool:
            if strict and isinstance(fields, Mapping) and any(n not in fields for n in names):
                from edgerules.lang.matchgen import check_keys

                check_keys(scheme, fields)
            return dense(fields)

        return matches

    def _make_dense_matches(self) -> Callable[[Mapping[str, object]], bool]:
        """Compile a second closure tree that reads a dense list holding only this
        filter's fields, and a reader that fills it from a mapping (aliases included),
        with the common coercions (str -> bytes, bools) inline."""
        scheme = self.scheme
        used: list[Field] = sorted(self._checked.used.values(), key=lambda f: f.index)
        local_index = {f.name: n for n, f in enumerate(used)}
        fn = compile_checked(self._checked, lambda f: local_index[f.name]).fn
        names: list[tuple[str, Field]] = [(f.name, f) for f in used]
        names += [
            (alias, scheme._by_name[canonical])
            for alias, canonical in scheme.aliases.items()
            if canonical in local_index
        ]
        readers: list[tuple[str, int, int, Any]] = []  # (name, slot, kind, coercer)
        for name, f in names:
            kind = _OTHER
            if not f.optional:
                for t, k in ((BYTES, _STR), (BOOL, _BOOL), (INT, _INT)):
                    if f.type == t:
                        kind = k
            readers.append((name, local_index[f.name], kind, scheme._coercers[f.index]))
        defaults = tuple(f.default for f in used)
        if len(readers) == 1:
            return _single_field_matches(readers[0], defaults[0], fn)
        # One loop per kind, so that each checks its own common case without dispatching
        # on the kind: str -> UTF-8 bytes, a bool, an int in range. Aliases come after
        # their canonical name within a kind (the alias wins when both are given, as in
        # Context.update). The field's coercer handles everything else and reports wrong
        # types.
        strs, bools, ints, others = (
            tuple((name, i, coerce) for name, i, kind, coerce in readers if kind == k)
            for k in (_STR, _BOOL, _INT, _OTHER)
        )
        lo, hi = INT64_MIN, INT64_MAX

        def matches(fields: Mapping[str, object]) -> bool:
            values = list(defaults)
            try:
                get = fields.get  # one lookup per name: lazy mappings compute each value once
            except AttributeError:
                raise _not_a_mapping(fields) from None
            for name, i, coerce in strs:
                x = get(name, _ABSENT)
                if type(x) is str:
                    try:
                        values[i] = x.encode()
                        continue
                    except UnicodeEncodeError:
                        pass
                if x is not _ABSENT:
                    values[i] = coerce(x)
            if bools:  # (an empty loop costs more than the test)
                for name, i, coerce in bools:
                    x = get(name, _ABSENT)
                    if x is True or x is False:
                        values[i] = x
                    elif x is not _ABSENT:
                        values[i] = coerce(x)
            if ints:
                for name, i, coerce in ints:
                    x = get(name, _ABSENT)
                    if type(x) is int and lo <= x <= hi:
                        values[i] = x
                    elif x is not _ABSENT:
                        values[i] = coerce(x)
            if others:
                for name, i, coerce in others:
                    x = get(name, _ABSENT)
                    if x is not _ABSENT:
                        values[i] = coerce(x)
            return fn(values)

        return matches

    def context(self, values: Mapping[str, object] | None = None) -> Context:
        """A ``Context`` of this filter's scheme filled with only the fields it reads."""
        return Context(self.scheme, values, only=self._readable_names() if values else None)

    def _readable_names(self) -> tuple[str, ...]:
        aliases = self.scheme.aliases
        return (*self.fields, *(a for a, c in aliases.items() if c in self.fields))

    # -- explanation ---------------------------------------------------------------------

    def trace(self, ctx: Context | Mapping[str, object]) -> TraceNode:
        """Evaluate every sub-expression separately and return the tree of values (for
        the ruleset "trace" feature; not the hot path)."""
        if isinstance(ctx, Context):
            if ctx.scheme is not self.scheme:
                raise ContextError("the context was built for another scheme than the filter's")
            values = ctx.values
        else:
            values = Context(self.scheme, ctx, only=self._readable_names()).values
        traced = self._traced
        if traced is None:
            # The per-node closures are recorded only for traces (not the hot path); the
            # filter's own closures are compiled without them.
            traced = self._traced = compile_checked(self._checked, trace=True)
        return self._trace(self.ast, values, traced)

    def _trace(self, node: Any, values: list, traced: Compiled) -> TraceNode:
        fn = traced.closures.get(id(node))
        value = fn(values) if fn is not None else None
        children: list[TraceNode] = []
        if isinstance(node, ast.Logical):
            children = [self._trace(item, values, traced) for item in node.items]
        elif isinstance(node, ast.Not):
            children = [self._trace(node.operand, values, traced)]
        elif isinstance(node, ast.Quantifier):
            children = [self._trace(node.arg, values, traced)]
        elif isinstance(node, ast.Comparison):
            # The value of each side that is not a literal: the left side, and a dynamic
            # right-hand side (eq…ge, since 2026-10-01).
            for side in (node.lhs, node.rhs):
                getter = traced.values.get(id(side))
                info = self._checked.info.get(id(side))
                if getter is not None and info is not None and not info.unpacked:
                    children.append(TraceNode(format_expr(side), side.span, getter(values)))
        return TraceNode(format_expr(node), node.span, value, tuple(children))

    @property
    def regex_size(self) -> int:
        """RE2 instructions of the filter's regexes (``matches`` patterns): the unit of
        the per-rule regex budget (``regex.MAX_RULE_PROGRAM``), for a caller that caps a
        whole ruleset's total."""
        return sum(
            getattr(p, "program_size", 0) for p in self._checked.patterns.values()
        )

    @property
    def regexes(self) -> tuple[Any, ...]:
        """The filter's compiled regexes (``program_size`` instructions each). A pattern
        used by several filters is compiled once and shared while they live (the regex
        cache), so a ruleset's budget counts each distinct object once."""
        return tuple(p for p in self._checked.patterns.values() if hasattr(p, "program_size"))

    # -- text ----------------------------------------------------------------------------

    def __str__(self) -> str:
        return format_expr(self.ast)

    def __repr__(self) -> str:
        return f"<Filter {self.source.text!r}>"
