"""Name resolution and type checking: ``ast.Expr`` + ``Scheme`` -> ``Checked``.

Owns ``check()``, ``Checked`` and ``Info``.

Invariants:

* The AST is not modified. Everything the compiler needs is recorded in side tables of
  ``Checked`` keyed by ``id(node)`` (the AST is kept alive by ``Checked.expr``, so the ids
  stay valid): the ``Info`` (static type) of every value and predicate node, the resolved
  ``Field`` of every ``FieldRef``, the bound implementation of every function call, the
  resolved named lists, and the compiled regexes and wildcards (compiled here, once, so
  that ``check`` alone validates an expression completely).
* Every mistake raises ``RuleTypeError`` (names, types, arguments) or ``ParseError`` (a
  pattern the regex or wildcard engine cannot take) with a span into the source; nothing
  else escapes.
* Recursion: one or two Python frames per nesting level (the parser limits nesting to
  128), and index chains (``a[0][0]…``, not limited by the parser) are walked iteratively.

Typing rules (Cloudflare's values, operators and functions pages: https://developers.cloudflare.com/ruleset-engine/rules-language/values/,
https://developers.cloudflare.com/ruleset-engine/rules-language/operators/, https://developers.cloudflare.com/ruleset-engine/rules-language/functions/):

* A value expression has a type; an expression containing a ``[*]`` not consumed by a
  function is *unpacked*: its ``Info.type`` is the element type and ``Info.star`` is the
  AST of the array being iterated. A function whose first argument is unpacked is mapped
  over the elements and returns ``Array<result>`` (not unpacked; ``[*]`` again to go on).
* A comparison on an unpacked value is ``Array<Bool>``; ``and``/``or``/``xor``/``not``
  work element-wise on ``Array<Bool>`` operands whose ``[*]`` all refer to the same array;
  mixing ``Bool`` and ``Array<Bool>`` is an error; ``any``/``all`` need ``Array<Bool>``;
  the whole expression must be ``Bool``.
* ordering operators (``lt le gt ge``) on IP addresses are rejected, following
  Cloudflare's operators page (which marks them unsupported) rather than the open-source
  engine (which accepts them).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edgerules.lang import ast
from edgerules.lang.ast import index_path
from edgerules.lang.errors import ParseError, RuleTypeError
from edgerules.lang.functions import ArgInfo, ArgumentProblem
from edgerules.lang.regex import RegexBudget, RegexError, compile_regex, pattern_text
from edgerules.lang.scheme import Field, Scheme
from edgerules.lang.source import Source, Span
from edgerules.lang.types import BOOL, BOOL_ARRAY, BYTES, INT, IP, Array, Map, Type
from edgerules.lang.wildcard import WildcardError, compile_wildcard

__all__ = ["Checked", "Info", "check"]


_STRING_OPS = frozenset(
    {"eq", "ne", "lt", "le", "gt", "ge", "contains", "matches", "wildcard", "strict_wildcard", "in"}
)
_OPS: dict[Type, frozenset[str]] = {
    BYTES: _STRING_OPS,
    INT: frozenset({"eq", "ne", "lt", "le", "gt", "ge", "in", "bitwise_and"}),
    IP: frozenset({"eq", "ne", "in"}),
}
_OP_TEXT = {
    "strict_wildcard": "strict wildcard",
    "bitwise_and": "&",
}
_LITERAL_TYPES = {"string": BYTES, "int": INT, "ip": IP}
# Fast path of ``comparison`` (``field op …``): the operators allowed on a type, by the
# type's identity (no dataclass ``__hash__``/``__eq__`` calls).
_OPS_BY_ID: dict[int, frozenset[str]] = {id(t): ops for t, ops in _OPS.items()}
# The operators whose right side must be a plain literal of the left side's type.
_LITERAL_OPS = frozenset({"eq", "ne", "lt", "le", "gt", "ge", "contains", "bitwise_and"})
# Since 2026-10-01 equality and ordering may compare with a dynamic value (a field,
# an indexed value, a function result) of the same type; the others keep a literal (our
# reading; Cloudflare does not say).
_DYNAMIC_OPS = frozenset({"eq", "ne", "lt", "le", "gt", "ge"})
_VALUE_NODES = (ast.FieldRef, ast.Index, ast.FunctionCall)


@dataclass(slots=True)
class Info:
    """Static facts about one node.

    ``type`` is the node's type (the *element* type when ``unpacked``); ``missing``: the
    value (each element, when unpacked) may be ``MISSING``; ``elem_missing``: values
    inside this collection may be ``MISSING``; ``star``: for unpacked values and
    element-wise predicates, the AST of the array iterated (None for a bare
    ``Array<Bool>`` value).
    """

    type: Type
    unpacked: bool = False
    missing: bool = False
    elem_missing: bool = False
    star: Any = None


# Shared results (``Info`` objects are never modified after they are recorded).
_INFO_BOOL = Info(BOOL)


@dataclass
class Checked:
    """The result of ``check``: the expression plus side tables keyed by ``id(node)``."""

    expr: ast.Expr
    source: Source
    scheme: Scheme
    info: dict[int, Info] = field(default_factory=dict)
    fields: dict[int, Field] = field(default_factory=dict)
    calls: dict[int, tuple[Any, tuple[Any, ...], Callable[..., object]]] = field(
        default_factory=dict
    )
    lists: dict[int, Any] = field(default_factory=dict)
    patterns: dict[int, Any] = field(default_factory=dict)  # regex / wildcard matchers
    # call -> fields the function reads besides its arguments (FunctionDef.reads: the
    # is_jwt_* functions read the headers/cookies), passed to it after the arguments.
    implicit: dict[int, tuple[Field, ...]] = field(default_factory=dict)
    used: dict[str, Field] = field(default_factory=dict)


def check(
    expr: ast.Expr,
    scheme: Scheme,
    source: Source | str,
    *,
    lists: Mapping[str, Any] | None = None,
) -> Checked:
    """Type-check ``expr`` against ``scheme`` (and named ``lists``).

    Raises:
        RuleTypeError: unknown names, type errors, argument mistakes.
        ParseError: a regex or wildcard pattern the engine cannot take.
    """
    src = source if isinstance(source, Source) else Source(source)
    checker = _Checker(Checked(expr, src, scheme), lists or {})
    info = checker.pred(expr)
    if info.type != BOOL:
        raise checker.error(
            f"the expression must be Bool, got {info.type}",
            _span(expr),
            hint="wrap element-wise conditions in any(…) or all(…)",
        )
    return checker.out


def _span(node: Any) -> Span:
    return getattr(node, "span", Span(0, 0))


def _op_text(op: str) -> str:
    return _OP_TEXT.get(op, op)


def _closest(name: str, candidates: list[str]) -> str | None:
    found = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return found[0] if found else None


class _Checker:
    def __init__(self, out: Checked, lists: Mapping[str, Any]) -> None:
        self.out = out
        self.scheme = out.scheme
        self.lists = lists
        self.once_seen: str | None = None
        self.regexes = 0  # regular expressions so far (limit: scheme.limits.max_regexes)
        self.info = out.info
        self.regex_budget = RegexBudget()
        # name -> (Field, Info of a reference to it), shared by every check of the scheme.
        cache = getattr(self.scheme, "_check_cache", None)
        self.field_cache: dict[str, tuple[Field, Info]] = {} if cache is None else cache

    # -- errors --------------------------------------------------------------------------

    def error(
        self, message: str, span: Span, *, hint: str | None = None, suggestion: str | None = None
    ) -> RuleTypeError:
        return RuleTypeError(message, self.out.source, span, hint=hint, suggestion=suggestion)

    def parse_error(self, message: str, span: Span) -> ParseError:
        return ParseError(message, self.out.source, span)

    def record(self, node: Any, info: Info) -> Info:
        self.out.info[id(node)] = info
        return info

    # -- predicates ----------------------------------------------------------------------

    def pred(self, node: Any) -> Info:
        tp = type(node)
        if tp is ast.Comparison:
            info = self.info[id(node)] = self.comparison(node)
            return info
        if tp is ast.Logical:
            info = self.info[id(node)] = self.logical(node)
            return info
        if isinstance(node, ast.Comparison):
            return self.record(node, self.comparison(node))
        if isinstance(node, ast.Logical):
            return self.record(node, self.logical(node))
        if isinstance(node, ast.Not):
            inner = self.pred(node.operand)
            return self.record(node, Info(inner.type, star=inner.star))
        if isinstance(node, ast.BoolValue):
            return self.record(node, self.bool_value(node))
        if isinstance(node, ast.Quantifier):
            inner = self.pred(node.arg)
            if inner.type != BOOL_ARRAY:
                raise self.error(
                    f"{node.kind}() needs Array<Bool>, got {inner.type}",
                    _span(node.arg),
                    hint="use [*] inside, e.g. any(http.request.headers.names[*] eq \"x\")",
                )
            return self.record(node, _INFO_BOOL)
        if isinstance(node, ast.BoolConst):
            return self.record(node, _INFO_BOOL)
        if isinstance(node, (ast.FieldRef, ast.Index, ast.FunctionCall)):
            # A bare value where a condition is expected (the parser wraps it in BoolValue;
            # hand-built ASTs may not). Not recorded: ``info[id(node)]`` stays the value's
            # Info, which the compiler reads to know whether it is element-wise.
            return self.bool_value(ast.BoolValue(node, _span(node)))
        raise self.error(f"expected a condition, got {type(node).__name__}", _span(node))

    def bool_value(self, node: ast.BoolValue) -> Info:
        v = self.value(node.value)
        if v.unpacked:
            if v.type == BOOL:
                return Info(BOOL_ARRAY, star=v.star)
        elif v.type is BOOL or v.type == BOOL:
            return Info(BOOL, missing=v.missing)
        elif v.type == BOOL_ARRAY:
            return Info(BOOL_ARRAY)
        shown = f"Array<{v.type}>" if v.unpacked else str(v.type)
        raise self.error(
            f"expected Bool, got {shown}",
            _span(node.value),
            hint="compare it with an operator (eq, contains, in, …)",
        )

    def logical(self, node: ast.Logical) -> Info:
        infos = [self.pred(item) for item in node.items]
        first = infos[0].type
        star = None
        for item, info in zip(node.items, infos, strict=True):
            if info.type is not first and info.type != first:
                raise self.error(
                    f'cannot combine {first} and {info.type} with "{node.op}"',
                    _span(item),
                    hint="wrap element-wise conditions in any(…) or all(…)",
                )
            if info.star is not None:
                if star is None:
                    star = info.star
                elif info.star != star:
                    raise self.error(
                        "all [*] in one expression must refer to the same array",
                        _span(item),
                    )
        if first is BOOL and star is None:
            return _INFO_BOOL
        return Info(first, star=star if first == BOOL_ARRAY else None)

    def comparison(self, node: ast.Comparison) -> Info:
        lhs_node = node.lhs
        if type(lhs_node) is ast.FieldRef:
            # Fast path: a known field of type String, Int or IP (by identity: no dataclass
            # ``__eq__``/``__hash__`` calls) with an operator allowed on it. The general
            # path below would record the same facts and check the right side the same
            # way (``operand``), so errors are the same.
            entry = self.field_cache.get(lhs_node.name)
            if entry is not None:
                fld, finfo = entry
                t = fld.type
                allowed = _OPS_BY_ID.get(id(t))
                op = node.op
                if allowed is not None and op in allowed:
                    out = self.out
                    key = id(lhs_node)
                    self.info[key] = finfo
                    out.fields[key] = fld
                    out.used[fld.name] = fld
                    rhs = node.rhs
                    if not (
                        op in _LITERAL_OPS
                        and type(rhs) is ast.Literal
                        and _LITERAL_TYPES.get(rhs.kind) is t
                    ):
                        self.operand(node, t)
                    return _INFO_BOOL
        lhs = self.value(lhs_node)
        t = lhs.type
        op = node.op
        if isinstance(t, (Array, Map)):
            raise self.error(
                f"cannot compare {t} with {_op_text(op)}",
                _span(node.lhs),
                hint="index it ([0], [\"key\"]) or use [*] inside any(…)/all(…)",
            )
        if t is BOOL or t == BOOL:
            raise self.error(
                f'Bool takes no operator ("{_op_text(op)}")',
                node.op_span,
                hint="use the Boolean alone (ssl) or negated (not ssl)",
            )
        allowed = _OPS.get(t, frozenset())
        if op not in allowed:
            raise self.error(self._op_message(op, t), node.op_span)
        self.operand(node, t)
        if lhs.unpacked:
            return Info(BOOL_ARRAY, star=lhs.star)
        return _INFO_BOOL

    def operand(self, node: ast.Comparison, t: Type) -> None:
        """Check the right side of a comparison whose left side has type ``t`` (with
        the operator allowed on ``t``)."""
        op = node.op
        rhs = node.rhs
        if isinstance(rhs, _VALUE_NODES):
            self.dynamic_operand(rhs, op, t)
        elif op == "matches":
            self.regex(rhs, node)
        elif op in ("wildcard", "strict_wildcard"):
            self.wildcard(rhs, op)
        elif op == "in":
            if isinstance(rhs, ast.SetLiteral):
                self.set_literal(rhs, t)
            elif isinstance(rhs, ast.ListRef):
                self.list_ref(rhs, node.lhs, t)
            else:
                raise self.error('"in" needs a set { … } or a named list $name', _span(rhs))
        else:
            self.literal(rhs, t)

    def dynamic_operand(self, rhs: Any, op: str, t: Type) -> None:
        """A field or function result on the right (since 2026-10-01): only after
        eq ne lt le gt ge, of the left side's type, one value (no ``[*]``; our choices)."""
        if op not in _DYNAMIC_OPS:
            raise self.error(
                f'"{_op_text(op)}" takes a literal on the right-hand side; a field or a '
                "function result may follow only eq, ne, lt, le, gt, ge",
                _span(rhs),
            )
        info = self.value(rhs)
        if info.unpacked:
            raise self.error(
                "[*] is not allowed on the right-hand side of a comparison",
                _span(rhs),
                hint="compare each element with any(… [*] eq value) on the left",
            )
        if info.type is not t and info.type != t:
            raise self.error(
                f"both sides of a comparison must have one type: expected {t}, got {info.type}",
                _span(rhs),
            )

    @staticmethod
    def _op_message(op: str, t: Type) -> str:
        shown = _op_text(op)
        if op in ("contains", "matches", "wildcard", "strict_wildcard"):
            return f'"{shown}" needs String, got {t}'
        if op == "bitwise_and":
            return f'"{shown}" needs Int, got {t}'
        if t == IP and op in ("lt", "le", "gt", "ge"):
            return f'"{shown}" is not allowed on IP addresses (use in {{ … }} with a range or CIDR)'
        return f'"{shown}" is not allowed on {t}'

    def literal(self, rhs: Any, t: Type) -> None:
        if type(rhs) is ast.Literal and _LITERAL_TYPES.get(rhs.kind) is t:
            return
        if not isinstance(rhs, ast.Literal):
            what = {
                ast.SetLiteral: "a set",
                ast.ListRef: "a named list",
                ast.Regex: "a regex",
            }.get(type(rhs), type(rhs).__name__)
            raise self.error(f'{what} is only allowed after "in"', _span(rhs))
        lt = _LITERAL_TYPES.get(rhs.kind)
        if lt != t:
            raise self.error(f"expected {t}, got {lt or rhs.kind}", rhs.span)

    def set_literal(self, rhs: ast.SetLiteral, t: Type) -> None:
        for item in rhs.items:
            if isinstance(item, ast.Literal):
                lt = _LITERAL_TYPES.get(item.kind)
                if lt is not t and lt != t:
                    raise self.error(f"expected {t}, got {lt or item.kind}", item.span)
            elif isinstance(item, ast.IntRangeItem):
                if t != INT:
                    raise self.error(f"expected {t}, got an Int range", item.span)
                if item.lo > item.hi:
                    raise self.parse_error("range start is greater than its end", item.span)
            elif isinstance(item, ast.IpRangeItem):
                if t != IP:
                    raise self.error(f"expected {t}, got an IP range", item.span)
                if item.lo.version != item.hi.version:
                    raise self.parse_error(
                        "both ends of an IP range must be of the same family", item.span
                    )
                if item.lo > item.hi:
                    raise self.parse_error("range start is greater than its end", item.span)
            elif isinstance(item, ast.CidrItem):
                if t != IP:
                    raise self.error(f"expected {t}, got a CIDR", item.span)
            else:
                raise self.error(f"unexpected set item {type(item).__name__}", _span(item))

    def list_ref(self, rhs: ast.ListRef, lhs_node: Any, t: Type) -> None:
        lst = self.lists.get(rhs.name)
        if lst is None:
            raise self.error(
                f'unknown list "${rhs.name}"',
                rhs.span,
                suggestion=(lambda s: f"${s}" if s else None)(_closest(rhs.name, list(self.lists))),
            )
        kind = getattr(lst, "kind", None)
        fld = self.out.fields.get(id(lhs_node)) if isinstance(lhs_node, ast.FieldRef) else None
        fname = fld.name if fld is not None else None
        if kind == "ip":
            ok, need = t == IP, "an IP field"
        elif kind == "hostname":
            ok, need = fname == "http.host", "http.host"
        elif kind == "asn":
            ok, need = fname == "ip.src.asnum", "ip.src.asnum"
        elif kind == "string":
            ok, need = t == BYTES, "a String value"
        else:
            raise self.error(f'list "${rhs.name}" has unknown kind {kind!r}', rhs.span)
        if not ok:
            raise self.error(
                f'list "${rhs.name}" holds {kind} items; it can only be used with {need}',
                rhs.span,
            )
        self.out.lists[id(rhs)] = lst

    def regex(self, rhs: Any, node: ast.Comparison) -> None:
        if not isinstance(rhs, ast.Regex):
            if isinstance(rhs, ast.Literal) and rhs.kind == "string":
                pattern = pattern_text(rhs.value)  # type: ignore[arg-type]
            else:
                raise self.error('"matches" needs a regular expression string', _span(rhs))
        else:
            pattern = rhs.pattern
        self.count_regex(_span(rhs))
        try:
            compiled = compile_regex(pattern)
            self.regex_budget.charge(compiled)  # per rule: count and program size
        except RegexError as exc:
            raise self.parse_error(exc.message, _span(rhs)) from None
        self.out.patterns[id(rhs)] = compiled

    def count_regex(self, span: Span) -> None:
        """One more regular expression (``matches`` or ``regex_replace()``): a rule holds
        at most ``limits.max_regexes`` (64, Cloudflare's documented limit)."""
        self.regexes += 1
        limit = self.scheme.limits.max_regexes
        if self.regexes > limit:
            raise self.parse_error(
                f"too many regular expressions: a rule may hold at most {limit}", span
            )

    def wildcard(self, rhs: Any, op: str) -> None:
        if not (isinstance(rhs, ast.Literal) and rhs.kind == "string"):
            raise self.error(f'"{_op_text(op)}" needs a string pattern', _span(rhs))
        try:
            matcher = compile_wildcard(rhs.value, case_sensitive=op == "strict_wildcard")  # type: ignore[arg-type]
        except WildcardError as exc:
            raise self.parse_error(
                f"invalid wildcard pattern: {exc.message}", rhs.span
            ) from None
        self.out.patterns[id(rhs)] = matcher

    # -- values --------------------------------------------------------------------------

    def value(self, node: Any) -> Info:
        if isinstance(node, ast.FieldRef):
            return self.record(node, self.field_ref(node))
        if isinstance(node, ast.Index):
            return self.index_chain(node)
        if isinstance(node, ast.FunctionCall):
            return self.record(node, self.call(node))
        if isinstance(node, ast.BoolValue):
            return self.value(node.value)
        raise self.error(f"expected a field or a function call, got {type(node).__name__}", _span(node))

    def field_ref(self, node: ast.FieldRef) -> Info:
        entry = self.field_cache.get(node.name)
        if entry is None:
            fld = self.scheme.get(node.name)
            if fld is None:
                raise self.error(
                    f'unknown field "{node.name}"',
                    node.span,
                    suggestion=self.scheme.suggest_field(node.name),
                )
            entry = self.field_cache[node.name] = (fld, Info(fld.type, missing=fld.optional))
        fld, info = entry
        self.out.fields[id(node)] = fld
        self.out.used[fld.name] = fld
        return info

    def index_chain(self, node: ast.Index) -> Info:
        base, chain = index_path(node)
        info = self.value(base)
        for idx in chain:
            info = self.record(idx, self.index(idx, info))
        return info

    def index(self, node: ast.Index, base: Info) -> Info:
        t = base.type
        key = node.index
        if isinstance(key, ast.Star):
            if not isinstance(t, (Array, Map)):
                raise self.error(f"[*] needs an Array or a Map, got {t}", node.span)
            inner = t.element if isinstance(t, Array) else t.value
            return Info(
                inner,
                unpacked=True,
                missing=base.elem_missing,
                elem_missing=base.elem_missing,
                # Nested [*] flatten; the first one names the iterated array.
                star=base.star if base.unpacked else node.base,
            )
        if isinstance(key, bool) or not isinstance(key, (int, bytes)):
            raise self.error(f"bad index {key!r}", node.span)
        if isinstance(key, int):
            if not isinstance(t, Array):
                if not isinstance(t, Map):
                    raise self.error(f"{t} cannot be indexed (only arrays and maps can)", node.span)
                raise self.error(f"{t} is indexed by a quoted key, not an integer", node.span)
            if key < 0:
                raise self.error("array index must not be negative", node.span)
            inner = t.element
        else:
            if not isinstance(t, Map):
                if not isinstance(t, Array):
                    raise self.error(f"{t} cannot be indexed (only arrays and maps can)", node.span)
                raise self.error(f"{t} is indexed by an integer, not a string key", node.span)
            inner = t.value
        return Info(
            inner,
            unpacked=base.unpacked,
            missing=True,
            elem_missing=base.elem_missing,
            star=base.star,
        )

    def call(self, node: ast.FunctionCall) -> Info:
        fdef = self.scheme.function(node.name)
        if fdef is None:
            hint = None
            if node.name in ("any", "all"):
                hint = f"{node.name}(…) takes a condition with [*], e.g. {node.name}(x[*] eq \"a\")"
            raise self.error(
                f'unknown function "{node.name}"',
                node.name_span,
                hint=hint,
                suggestion=None if hint else self.scheme.suggest_function(node.name),
            )
        if getattr(fdef, "uses_regex", False):
            self.count_regex(node.name_span)
        infos: list[ArgInfo] = []
        for pos, arg in enumerate(node.args):
            ai = self.arg(arg)
            if ai.unpacked and pos > 0:
                raise self.error(
                    "[*] is only allowed in the first argument of a function", ai.span
                )
            infos.append(ai)
        args = tuple(infos)
        try:
            result = fdef.check(args)
            impl = fdef.bind(args)
        except ArgumentProblem as exc:
            idx = exc.arg_index
            span = args[idx].span if idx is not None and 0 <= idx < len(args) else node.span
            raise self.error(f"{node.name}(): {exc.message}", span) from None
        except (RuleTypeError, ParseError):
            raise
        except Exception as exc:  # a library bug must not escape as a raw exception
            raise self.error(f"{node.name}(): cannot check this call ({exc})", node.span) from exc
        if getattr(fdef, "once_per_expression", False):
            # regex_replace / wildcard_replace: at most once per expression, never both
            # (Cloudflare's functions reference); a per-call check cannot see that, so it is counted here.
            if self.once_seen is not None:
                raise self.error(
                    f"{node.name}() cannot be used here: regex_replace() and "
                    f"wildcard_replace() may appear at most once per expression "
                    f"(already used: {self.once_seen}())",
                    node.name_span,
                )
            self.once_seen = node.name
        reads = getattr(fdef, "reads", None)
        if reads is not None:
            self.out.implicit[id(node)] = self.implicit_fields(node, reads(args))
        self.out.calls[id(node)] = (fdef, args, impl)
        if args and args[0].unpacked:
            # Mapped over the elements: an array of results (never MISSING itself; each
            # result may be).
            return Info(Array(result), missing=False, elem_missing=True)
        # Conservative: any function may return MISSING (missing argument, absent JSON key).
        return Info(result, missing=True, elem_missing=True)

    def implicit_fields(self, node: ast.FunctionCall, names: tuple[str, ...]) -> tuple[Field, ...]:
        out = []
        for name in names:
            fld = self.scheme.get(name)
            if fld is None:
                raise self.error(
                    f"{node.name}() reads the field {name}, which this scheme does not have",
                    node.name_span,
                )
            self.out.used[fld.name] = fld
            out.append(fld)
        return tuple(out)

    def arg(self, arg: Any) -> ArgInfo:
        if isinstance(arg, ast.BoolValue):
            arg = arg.value
        if isinstance(arg, ast.Literal):
            lt = _LITERAL_TYPES.get(arg.kind, BOOL if arg.kind == "bool" else None)
            if lt is None:
                raise self.error(f"bad literal kind {arg.kind!r}", arg.span)
            self.record(arg, Info(lt))
            return ArgInfo(lt, is_literal=True, value=arg.value, span=arg.span)
        if isinstance(arg, (ast.FieldRef, ast.Index, ast.FunctionCall)):
            info = self.value(arg)
            root: Any = arg
            while isinstance(root, ast.Index):
                root = root.base
            is_field = isinstance(root, ast.FieldRef)
            fname = self.out.fields[id(root)].name if is_field else None
            return ArgInfo(
                info.type, is_field=is_field, unpacked=info.unpacked, span=_span(arg), field=fname
            )
        info = self.pred(arg)
        return ArgInfo(info.type, span=_span(arg))
