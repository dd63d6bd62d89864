"""The abstract syntax tree of the Rules language.

Invariants:

* Nodes are frozen, slotted dataclasses; the tree is immutable and hashable.
* Every node has a ``span`` into the original text. Spans are excluded from equality
  (``compare=False``) so that ``parse(format(ast)) == ast`` holds although the canonical
  text places nodes at other offsets.
* The tree is purely syntactic: names are not resolved and nothing is typed here (the
  checker does that). String literals are already unescaped to ``bytes``; a ``matches``
  right-hand side is a ``Regex`` holding the pattern text the regex engine receives.
* Chains of one logical operator are flattened (``a and b and c`` is one ``Logical``
  with three items); ``not`` and grouping parentheses leave no node of their own beyond
  ``Not`` (parentheses only shape the tree).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from typing import Literal as TypingLiteral

from edgerules.lang.source import Span

__all__ = [
    "Arg",
    "BoolConst",
    "BoolValue",
    "CidrItem",
    "Comparison",
    "Expr",
    "FieldRef",
    "FunctionCall",
    "Index",
    "IntRangeItem",
    "IpRangeItem",
    "ListRef",
    "Literal",
    "Logical",
    "Not",
    "Quantifier",
    "Regex",
    "SetItem",
    "SetLiteral",
    "Star",
    "ValueExpr",
    "index_path",
]


# Spans take no part in equality or repr (see the module invariants); the shared default
# is safe because Span is frozen.
_EMPTY_SPAN = Span(0, 0)

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

# Canonical operator names (English spelling; "strict wildcard" is "strict_wildcard").
ComparisonOp = TypingLiteral[
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "contains",
    "matches",
    "wildcard",
    "strict_wildcard",
    "in",
    "bitwise_and",
]
LogicalOp = TypingLiteral["and", "xor", "or"]


# --- values ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal:
    """A literal value.

    ``kind`` is ``"string"`` (value: bytes), ``"int"`` (int), ``"ip"`` (IPv4Address or
    IPv6Address) or ``"bool"`` (only for the whole-expression ``true``; see BoolConst).
    ``raw`` records whether a string was written as a raw string ``r"…"`` (formatting
    keeps that choice readable; it does not take part in equality).
    """

    kind: str
    value: bytes | int | IPAddress
    span: Span = field(default=_EMPTY_SPAN, compare=False, repr=False)
    raw: bool = field(default=False, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Regex:
    """Right-hand side of ``matches``/``~``: the pattern text handed to the regex engine
    (regex-string escaping already applied)."""

    pattern: str
    span: Span = field(default=_EMPTY_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A field name as written (``http.request.uri.path``)."""

    name: str
    span: Span = field(default=_EMPTY_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Star:
    """The ``[*]`` index (unpack every element / map value)."""

    span: Span = field(default=_EMPTY_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Index:
    """``base[index]``: an array index (int), a map key (bytes) or ``[*]``."""

    base: ValueExpr
    index: int | bytes | Star
    span: Span = field(default=_EMPTY_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """``name(arg, …)``; ``name_span`` covers the name only."""

    name: str
    args: tuple[Arg, ...]
    span: Span = field(default=_EMPTY_SPAN, compare=False, repr=False)
    name_span: Span = field(default=_EMPTY_SPAN, compare=False, repr=False)


ValueExpr: TypeAlias = FieldRef | Index | FunctionCall

# --- right-hand sides of `in` ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IntRangeItem:
    """``lo..hi`` of integers, inclusive."""

    lo: int
    hi: int
    span: Span = field(default=_EMPTY_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class IpRangeItem:
    """``a..b`` of addresses of one family, inclusive."""

    lo: IPAddress
    hi: IPAddress
    span: Span = field(default=_EMPTY_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class CidrItem:
    """``192.0.2.0/24``: allowed only inside ``{ }``."""

    network: IPNetwork
    span: Span = field(default=_EMPTY_SPAN, compare=False, repr=False)


SetItem: TypeAlias = Literal | IntRangeItem | IpRangeItem | CidrItem


@dataclass(frozen=True, slots=True)
class SetLiteral:
    """``{ item item … }`` (whitespace-separated; may be empty)."""

    items: tuple[SetItem, ...]
    span: Span = field(default=_EMPTY_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ListRef:
    """``$name``: a named list supplied by the caller."""

    name: str
    span: Span = field(default=_EMPTY_SPAN, compare=False, repr=False)


# --- predicates -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Comparison:
    """``lhs op rhs``; ``op_span`` covers the operator as written."""

    lhs: ValueExpr
    op: ComparisonOp
    # A value expression on the right: eq ne lt le gt ge only (Cloudflare, 2026-10-01).
    rhs: Literal | Regex | SetLiteral | ListRef | ValueExpr
    span: Span = field(default=_EMPTY_SPAN, compare=False, repr=False)
    op_span: Span = field(default=_EMPTY_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class BoolValue:
    """A value expression used as a predicate: a bare Boolean field (``ssl``), a Boolean
    function call (``starts_with(…)``) or an ``Array<Boolean>`` (element-wise logic)."""

    value: ValueExpr
    span: Span = field(default=_EMPTY_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr
    span: Span = field(default=_EMPTY_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Logical:
    """A flattened chain of one operator: ``items[0] op items[1] op …`` (≥ 2 items)."""

    op: LogicalOp
    items: tuple[Expr, ...]
    span: Span = field(default=_EMPTY_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Quantifier:
    """``any(arg)`` / ``all(arg)``; ``arg`` must have type ``Array<Boolean>``."""

    kind: TypingLiteral["any", "all"]
    arg: Expr
    span: Span = field(default=_EMPTY_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class BoolConst:
    """The whole-expression ``true`` ("match every request", as Cloudflare documents) or
    ``false``."""

    value: bool
    span: Span = field(default=_EMPTY_SPAN, compare=False, repr=False)


Expr: TypeAlias = Logical | Not | Comparison | BoolValue | Quantifier | BoolConst
# A function argument: a value expression, a literal, or a predicate (e.g. a comparison
# passed to a function that takes Booleans).
Arg: TypeAlias = ValueExpr | Literal | Expr


def index_path(node: Any) -> tuple[Any, list[Index]]:
    """``(base, indexes)`` of an index chain ``base[a][b]…``: the innermost non-index
    expression and the ``Index`` nodes from the innermost out (``[]`` when ``node`` is not
    an ``Index``). Iterative: index chains are not limited by the nesting limit."""
    chain: list[Index] = []
    while isinstance(node, Index):
        chain.append(node)
        node = node.base
    chain.reverse()
    return node, chain
