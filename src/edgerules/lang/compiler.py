"""Closure compiler: ``checker.Checked`` -> one Python closure per AST node.

Owns ``compile_checked`` and ``Compiled``.

Invariants:

* Everything request-independent happens here, once: literals are captured as runtime
  values, sets become ``frozenset``s or merged, sorted integer intervals
  (``ipset.interval_test``), regexes and wildcards were compiled by the checker, function
  implementations were bound by the checker. At run time a closure reads ``v[i]`` (the
  context's slot list), calls its children and nothing else: no dispatch on node type,
  no name lookups, no ``exec``, no tree walking.
* Predicate closures return a real ``bool`` (element-wise predicates a ``tuple`` of
  bools); value closures return a runtime value or ``MISSING``.
* Missing values (documented by Cloudflare, https://developers.cloudflare.com/ruleset-engine/rules-language/values/): every comparison on ``MISSING`` is false (``ne`` and
  ``in`` included); ``[*]`` over ``MISSING`` is empty. Guards are compiled in only where
  the checker's ``Info.missing`` says a value can be missing (indexing, function results,
  optional fields) — a plain field slot is never guarded.
* Closures capture no mutable state, so a compiled filter may be shared by threads.
* Recursion mirrors the AST (≤ 128 nesting levels, a few frames each).
"""

from __future__ import annotations

import ipaddress
import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from operator import itemgetter
from typing import Any

from edgerules.lang import ast
from edgerules.lang.ast import index_path
from edgerules.lang.checker import Checked, Info
from edgerules.lang.functions import FUNCTIONS
from edgerules.lang.ipset import interval_test, merge_intervals
from edgerules.lang.regex import CompiledRegex
from edgerules.lang.scheme import Field
from edgerules.lang.types import BOOL, BOOL_ARRAY, BYTES, INT, IP, MISSING, Map

__all__ = ["Compiled", "compile_checked"]

Pred = Callable[[list], Any]
Value = Callable[[list], Any]

_IPV4 = ipaddress.IPv4Address
_IPV6 = ipaddress.IPv6Address


def _own(lit: Any) -> Any:
    """A private copy of a bytes literal captured by a closure. Closures are small and
    allocated together; the parsed literal lies among its rule's parse data, and reading
    it from there costs cache and TLB misses when thousands of rules are evaluated in a
    row (rulesets). Other values are returned as they are."""
    return bytes(bytearray(lit)) if type(lit) is bytes and len(lit) > 1 else lit


def _field_index(f: Field) -> int:
    return f.index


def _is_ip(t: Any) -> bool:
    """``t == IP`` without the dataclass ``__eq__`` call for the common types."""
    return t is IP or (t is not BYTES and t is not INT and t == IP)


def _is_bool_array(t: Any) -> bool:
    """``t == Array<Bool>`` without the dataclass ``__eq__`` call in the common case (a
    predicate's type is ``BOOL`` or ``Array<Bool>``)."""
    return t is BOOL_ARRAY or (t is not BOOL and t == BOOL_ARRAY)


def _true(v: list) -> bool:
    return True


def _false(v: list) -> bool:
    return False


# Library functions compiled to a direct ``bytes`` method call when their source is a plain
# field (keyed by ``id`` of the ``FunctionDef``: a scheme's own function of the same name
# is not specialised).
_AFFIX: dict[int, Any] = {
    id(FUNCTIONS["starts_with"]): bytes.startswith,
    id(FUNCTIONS["ends_with"]): bytes.endswith,
}
_CASE: dict[int, Any] = {id(FUNCTIONS["lower"]): bytes.lower, id(FUNCTIONS["upper"]): bytes.upper}

# Dynamic right-hand sides (Cloudflare, 2026-10-01): the value nodes, the operators, and
# one closure per operator for two plain fields (``v[i] == v[j]``: no operator call).
_VALUE_NODES = frozenset({ast.FieldRef, ast.Index, ast.FunctionCall})
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq, "ne": operator.ne, "lt": operator.lt,
    "le": operator.le, "gt": operator.gt, "ge": operator.ge,
}  # fmt: skip
_FIELD_PAIR: dict[str, Callable[[int, int], Pred]] = {
    "eq": lambda i, j: lambda v: v[i] == v[j],
    "ne": lambda i, j: lambda v: v[i] != v[j],
    "lt": lambda i, j: lambda v: v[i] < v[j],
    "le": lambda i, j: lambda v: v[i] <= v[j],
    "gt": lambda i, j: lambda v: v[i] > v[j],
    "ge": lambda i, j: lambda v: v[i] >= v[j],
}


@dataclass(frozen=True)
class Compiled:
    """The top closure, plus for ``Filter.trace`` the closure of every predicate node
    (``closures``) and of every value node compiled (``values``), both keyed by
    ``id(node)`` (filled only when compiled with ``trace=True``; empty otherwise)."""

    fn: Pred
    closures: dict[int, Pred]
    values: dict[int, Value]


def compile_checked(
    checked: Checked, slot: Callable[[Field], int] | None = None, *, trace: bool = False
) -> Compiled:
    """Compile a checked expression. ``slot(field)`` gives the list index a closure reads
    for ``field`` (default: ``field.index``, the scheme's slots). ``trace=True`` also
    records every node's closure in ``Compiled.closures``/``values`` (for
    ``Filter.trace``; the closures are the same either way)."""
    c = _Compiler(checked, slot or _field_index, trace)
    fn, _ = c.pred(checked.expr)
    return Compiled(fn, c.closures, c.values)


# --- scalar tests -----------------------------------------------------------------------


def _ip_intervals(items: tuple[Any, ...]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The inclusive integer intervals of a set of IP addresses, CIDRs and ranges, per
    family (IPv4 never matches IPv6 items, as in wirefilter)."""
    v4: list[tuple[int, int]] = []
    v6: list[tuple[int, int]] = []
    # Integers from ``ipaddress``'s ``_ip`` attributes (as the closures read them): the
    # broadcast address is the network's integer with the host bits set, without building
    # the address objects.
    for item in items:
        if isinstance(item, ast.Literal):
            addr = item.value
            lo = hi = addr._ip
        elif isinstance(item, ast.CidrItem):
            net = item.network
            addr = net.network_address
            lo = addr._ip
            hi = lo | (net._ALL_ONES ^ net.netmask._ip)
        else:
            addr = item.lo
            lo, hi = addr._ip, item.hi._ip
        (v4 if addr._version == 4 else v6).append((lo, hi))
    return v4, v6


def _ip_member(items: tuple[Any, ...]) -> Callable[[Any], bool]:
    """Membership in a set of IP addresses, CIDRs and ranges. The value's integer is read
    from ``_ip`` (the attribute ``ipaddress`` stores it in; ``int(addr)`` costs a
    Python-level ``__int__`` call)."""
    v4, v6 = _ip_intervals(items)
    t4 = interval_test(v4)
    t6 = interval_test(v6)
    if t6 is None and t4 is None:
        return lambda x: False
    if t6 is None:
        return lambda x: type(x) is _IPV4 and t4(x._ip)  # type: ignore[misc]
    if t4 is None:
        return lambda x: type(x) is _IPV6 and t6(x._ip)

    def both(x: Any) -> bool:
        return t4(x._ip) if type(x) is _IPV4 else t6(x._ip)  # type: ignore[misc]

    return both


def _ip_in_slot(items: tuple[Any, ...], i: int) -> Pred:
    """``slot i in {IP set}``: one closure with the bounds inline when the set is one
    interval of one family (a single CIDR, range or address), else a member test."""
    v4, v6 = _ip_intervals(items)
    for family, mine, other in ((_IPV4, v4, v6), (_IPV6, v6, v4)):
        if not other:
            starts, ends = merge_intervals(mine)
            if len(starts) == 1:
                lo, hi = starts[0], ends[0]
                return lambda v: type(x := v[i]) is family and lo <= x._ip <= hi
    member = _ip_member(items)
    return lambda v: member(v[i])


def _regex_on_slot(rx: CompiledRegex, i: int) -> Pred:
    """``slot i matches rx`` in one closure: ``bytes`` operations for literal patterns,
    else the RE2 program's own ``Match`` called directly (no wrapper frame)."""
    if rx.literal is not None:
        lit, start, end = rx.literal
        if start and end:
            return lambda v: v[i] == lit
        if start:
            return lambda v: v[i].startswith(lit)
        if end:
            return lambda v: v[i].endswith(lit)
        return lambda v: v[i].find(lit) != -1
    if rx.python is not None:  # a linear-time ``re`` twin (regex._python_twin)
        py_match = rx.python.match
        return lambda v: py_match(v[i]) is not None
    match, anchor = rx.re2_match, rx.anchor
    return lambda v: match(anchor, x := v[i], 0, len(x))[0][0] >= 0


def _int_member(items: tuple[Any, ...]) -> tuple[frozenset[int], Callable[[int], bool] | None]:
    singles = frozenset(i.value for i in items if isinstance(i, ast.Literal))
    ranges = [(i.lo, i.hi) for i in items if isinstance(i, ast.IntRangeItem)]
    return singles, interval_test(ranges)


def _fuse_leaves(op: str, leaves: list[tuple[int, Any]]) -> Pred:
    """One closure for an ``and``/``or`` of one-slot leaves ``(slot, literal)`` — ``f eq
    lit``, a bare Boolean field (``(slot, True)``) or ``not`` of one (``(slot, False)``):
    the common ``http.host eq "x" and not ssl`` shape then costs a single call. Slots of
    leaves never hold MISSING, and every branch returns a real bool."""
    if len(leaves) == 2:
        (i, x), (j, y) = leaves
        if op == "and":
            return lambda v: v[i] == x and v[j] == y
        return lambda v: v[i] == x or v[j] == y
    if len(leaves) == 3:
        (i, x), (j, y), (k, z) = leaves
        if op == "and":
            return lambda v: v[i] == x and v[j] == y and v[k] == z
        return lambda v: v[i] == x or v[j] == y or v[k] == z
    if op == "and":  # every slot at once, compared in C
        get = itemgetter(*[slot for slot, _ in leaves])
        lits = tuple(lit for _, lit in leaves)
        return lambda v: get(v) == lits
    pairs = tuple(leaves)

    def any_eq(v: list) -> bool:
        for i, x in pairs:  # noqa: SIM110 - a plain loop beats any()+genexpr
            if v[i] == x:
                return True
        return False

    return any_eq


class _Compiler:
    def __init__(self, checked: Checked, slot: Callable[[Field], int], trace: bool = False) -> None:
        self.ck = checked
        self.trace = trace
        self.info = checked.info
        self.slot = slot
        self.default_slot = slot is _field_index
        self.closures: dict[int, Pred] = {}
        self.values: dict[int, Value] = {}
        # id(unpacked comparison) -> (elements closure, per-element test, node) so that
        # any()/all() can short-circuit instead of building a tuple.
        self.elementwise: dict[int, tuple[Value, Callable[[Any], bool], Any]] = {}
        # id(closure) -> (slot, literal) for one-slot leaves ``v[slot] == literal`` (a bare
        # Boolean field is ``== True``, its ``not`` ``== False``), so that an and/or of
        # several can be one closure.
        self.leaves: dict[int, tuple[int, Any]] = {}
        # The leaf closures themselves, kept alive while compiling: ``leaves`` is keyed by
        # ``id``, and a fused (discarded) leaf's id could otherwise be reused by a new
        # closure.
        self.leaf_fns: list[Pred] = []

    def leaf(self, fn: Pred, slot: int, lit: Any) -> Pred:
        self.leaves[id(fn)] = (slot, lit)
        self.leaf_fns.append(fn)
        return fn

    # -- predicates ----------------------------------------------------------------------

    def pred(self, node: Any) -> tuple[Pred, bool | None]:
        """Compile a predicate; returns (closure, constant value or None)."""
        tp = type(node)
        if tp is ast.Comparison or isinstance(node, ast.Comparison):
            fn, const = self.comparison(node)
        elif tp is ast.Logical or isinstance(node, ast.Logical):
            fn, const = self.logical(node)
        elif isinstance(node, ast.Not):
            fn, const = self.not_(node)
        elif isinstance(node, ast.BoolValue):
            fn, const = self.bool_value(node.value, _is_bool_array(self.info[id(node)].type)), None
        elif isinstance(node, ast.Quantifier):
            fn, const = self.quantifier(node), None
        elif isinstance(node, ast.BoolConst):
            fn, const = (_true if node.value else _false), bool(node.value)
        else:  # a bare value the checker accepted as a condition (hand-built ASTs)
            vinfo = self.info[id(node)]
            fn, const = self.bool_value(node, vinfo.unpacked or vinfo.type == BOOL_ARRAY), None
        if const is not None:
            fn = _true if const else _false
        if self.trace:
            self.closures[id(node)] = fn
        return fn, const

    def not_(self, node: ast.Not) -> tuple[Pred, bool | None]:
        inner, const = self.pred(node.operand)
        if _is_bool_array(self.info[id(node)].type):
            return (lambda v: tuple([not a for a in inner(v)])), None
        if const is not None:
            return inner, not const
        operand = node.operand
        if isinstance(operand, ast.BoolValue) and isinstance(operand.value, ast.FieldRef):
            field_info = self.info[id(operand.value)]
            if not field_info.missing and field_info.type == BOOL:
                i = self.slot(self.ck.fields[id(operand.value)])
                return self.leaf(lambda v: not v[i], i, False), None
        return (lambda v: not inner(v)), None

    def logical(self, node: ast.Logical) -> tuple[Pred, bool | None]:
        compiled = [self.pred(item) for item in node.items]
        if _is_bool_array(self.info[id(node)].type):
            return self.elementwise_logical(node.op, [fn for fn, _ in compiled]), None
        op = node.op
        if op == "xor":
            parity = False
            fns: list[Pred] = []
            for fn, const in compiled:
                if const is None:
                    fns.append(fn)
                else:
                    parity ^= const
            if not fns:
                return _false, parity
            if len(fns) == 1:
                only = fns[0]
                folded = (lambda v: not only(v)) if parity else only
                return folded, None
            if len(fns) == 2:
                a, b = fns
                out: Pred = lambda v: bool(a(v)) is not bool(b(v))  # noqa: E731
            else:
                items = tuple(fns)
                out = lambda v: reduce(lambda acc, f: acc is not bool(f(v)), items, False)  # noqa: E731
            if parity:
                inner = out
                return (lambda v: not inner(v)), None
            return out, None
        # and / or: drop neutral constants, stop at an absorbing one.
        absorbing = op == "or"  # True absorbs "or", False absorbs "and"
        fns = []
        for fn, const in compiled:
            if const is None:
                fns.append(fn)
            elif const is absorbing:
                return (_true if absorbing else _false), absorbing
        if not fns:
            return (_false if absorbing else _true), not absorbing
        fns = self.fuse_runs(op, fns)
        if len(fns) == 1:
            return fns[0], None
        if len(fns) == 2:
            a, b = fns
            inlined = self.inline_leaf(op, a, b)
            if inlined is not None:
                return inlined, None
            if op == "and":
                return (lambda v: a(v) and b(v)), None
            return (lambda v: a(v) or b(v)), None
        # Unrolled closures for short chains: no loop overhead, still short-circuit.
        if len(fns) == 3:
            a, b, c = fns
            if op == "and":
                return (lambda v: a(v) and b(v) and c(v)), None
            return (lambda v: a(v) or b(v) or c(v)), None
        if len(fns) == 4:
            a, b, c, d = fns
            if op == "and":
                return (lambda v: a(v) and b(v) and c(v) and d(v)), None
            return (lambda v: a(v) or b(v) or c(v) or d(v)), None
        if len(fns) == 5:
            a, b, c, d, e = fns
            if op == "and":
                return (lambda v: a(v) and b(v) and c(v) and d(v) and e(v)), None
            return (lambda v: a(v) or b(v) or c(v) or d(v) or e(v)), None
        if len(fns) == 6:
            a, b, c, d, e, g = fns
            if op == "and":
                return (lambda v: a(v) and b(v) and c(v) and d(v) and e(v) and g(v)), None
            return (lambda v: a(v) or b(v) or c(v) or d(v) or e(v) or g(v)), None
        if len(fns) == 7:
            a, b, c, d, e, g, h = fns
            if op == "and":
                return (
                    lambda v: a(v) and b(v) and c(v) and d(v) and e(v) and g(v) and h(v)
                ), None
            return (lambda v: a(v) or b(v) or c(v) or d(v) or e(v) or g(v) or h(v)), None
        items = tuple(fns)
        if op == "and":

            def all_of(v: list) -> bool:
                for f in items:  # noqa: SIM110 - a plain loop beats any()+genexpr
                    if not f(v):
                        return False
                return True

            return all_of, None

        def any_of(v: list) -> bool:
            for f in items:  # noqa: SIM110 - a plain loop beats any()+genexpr
                if f(v):
                    return True
            return False

        return any_of, None

    def fuse_runs(self, op: str, fns: list[Pred]) -> list[Pred]:
        """Replace every run of two or more consecutive one-slot leaves by one fused
        closure (order kept, so short-circuiting is unchanged)."""
        leaves = self.leaves
        out: list[Pred] = []
        run: list[tuple[int, Any]] = []  # the current run's leaves
        first: Pred | None = None  # the current run's first closure
        for fn in fns:
            leaf = leaves.get(id(fn))
            if leaf is not None:
                if not run:
                    first = fn
                run.append(leaf)
                continue
            if run:
                out.append(_fuse_leaves(op, run) if len(run) >= 2 else first)  # type: ignore[arg-type]
                run = []
            out.append(fn)
        if run:
            out.append(_fuse_leaves(op, run) if len(run) >= 2 else first)  # type: ignore[arg-type]
        return out

    def inline_leaf(self, op: str, a: Pred, b: Pred) -> Pred | None:
        """``a and b`` / ``a or b`` where one side is a one-slot leaf: the leaf's
        comparison inline, one call fewer (``http.request.method eq "POST" and ip.src in
        {…}``)."""
        leaf = self.leaves.get(id(a))
        if leaf is not None:
            i, x = leaf
            if op == "and":
                return lambda v: v[i] == x and b(v)
            return lambda v: v[i] == x or b(v)
        leaf = self.leaves.get(id(b))
        if leaf is None:
            return None
        j, y = leaf
        if op == "and":
            return lambda v: a(v) and v[j] == y
        return lambda v: a(v) or v[j] == y

    @staticmethod
    def elementwise_logical(op: str, fns: list[Pred]) -> Pred:
        """Element-wise and/or/xor over tuples of bools, truncated to the shortest
        (as in the wirefilter engine)."""
        items = tuple(fns)
        if op == "and":
            return lambda v: tuple([all(row) for row in zip(*[f(v) for f in items], strict=False)])
        if op == "or":
            return lambda v: tuple([any(row) for row in zip(*[f(v) for f in items], strict=False)])
        return lambda v: tuple([sum(row) % 2 == 1 for row in zip(*[f(v) for f in items], strict=False)])

    def quantifier(self, node: ast.Quantifier) -> Pred:
        arg = node.arg
        fn, _ = self.pred(arg)  # (also records the argument's closure for traces)
        special = self.elementwise.get(id(arg))
        if special is not None:
            elems, test, cmp = special
            fast = self.fast_quantifier(node.kind, elems, cmp)
            if fast is not None:
                return fast
            # any()/all() over map(): the iteration runs in C, only the test is Python.
            if node.kind == "any":
                return lambda v: any(map(test, elems(v)))
            return lambda v: all(map(test, elems(v)))
        if node.kind == "any":
            return lambda v: True in fn(v)
        return lambda v: False not in fn(v)

    def fast_quantifier(self, kind: str, elems: Value, cmp: ast.Comparison) -> Pred | None:
        """Inline loops for the common element-wise comparisons (no per-element call)."""
        info = self.info[id(cmp.lhs)]
        op, rhs = cmp.op, cmp.rhs
        if kind == "any":
            lit = self._eq_literal(cmp)
            if lit is not None:
                # any(x[*] eq "a") is a plain membership test on the elements.
                return lambda v: lit in elems(v)
            if op == "in" and isinstance(rhs, ast.SetLiteral) and info.type == BYTES:
                strings = frozenset(item.value for item in rhs.items)
                return lambda v: not strings.isdisjoint(elems(v))
        if op == "contains" and not info.missing:
            lit = rhs.value
            if kind == "any":
                if lit == b"":
                    return lambda v: len(elems(v)) > 0
                sep = next((bytes([c]) for c in range(256) if c not in lit), None)
                if sep is not None:
                    # Join the elements with a byte the needle lacks (so no match can span
                    # two elements) and search once, in C.
                    join = sep.join
                    return lambda v: join(elems(v)).find(lit) != -1

                def any_contains(v: list) -> bool:
                    for x in elems(v):  # noqa: SIM110 - a plain loop beats any()+genexpr
                        if x.find(lit) != -1:
                            return True
                    return False

                return any_contains

            def all_contain(v: list) -> bool:
                for x in elems(v):  # noqa: SIM110 - a plain loop beats all()+genexpr
                    if x.find(lit) == -1:
                        return False
                return True

            return all_contain
        return None

    def _eq_literal(self, cmp: Any) -> Any:
        """The literal of an ``eq`` on String/Int elements that can never be MISSING
        (then ``lit in elements`` is exact), else None."""
        if not isinstance(cmp, ast.Comparison) or cmp.op != "eq":
            return None
        info = self.info[id(cmp.lhs)]
        if info.missing or info.type not in (BYTES, INT):
            return None
        return cmp.rhs.value

    def bool_value(self, value_node: Any, elementwise: bool) -> Pred:
        """A Boolean value as a condition: ``is True`` (so MISSING is false), or per
        element when ``elementwise`` (an ``Array<Bool>`` or an unpacked Bool)."""
        vinfo = self.info[id(value_node)]
        if elementwise:
            if vinfo.unpacked:
                elems = self.elems(value_node)
                return lambda v: tuple([x is True for x in elems(v)])
            val = self.value(value_node)
            return lambda v: () if (x := val(v)) is MISSING else tuple([y is True for y in x])
        affix = self.affix_test(value_node)
        if affix is not None:
            return affix
        if isinstance(value_node, ast.FieldRef) and not vinfo.missing:
            getter = self.value(value_node)  # itemgetter: the slot's bool itself
            return self.leaf(getter, self.slot(self.ck.fields[id(value_node)]), True)
        val = self.value(value_node)
        return lambda v: val(v) is True

    # -- comparisons ---------------------------------------------------------------------

    def comparison(self, node: ast.Comparison) -> tuple[Pred, bool | None]:
        if type(node.rhs) in _VALUE_NODES:
            return self.dynamic_comparison(node), None
        lhs = node.lhs
        lhs_info = self.info[id(lhs)]
        if type(lhs) is ast.FieldRef and not lhs_info.missing and not lhs_info.unpacked:
            # A plain field: the specialised closure, without building the generic test
            # first — unless the comparison is a constant (``in {}``, ``contains ""``),
            # which ``test`` folds.
            op, rhs = node.op, node.rhs
            if not (
                (op == "in" and type(rhs) is ast.SetLiteral and not rhs.items)
                or (op == "contains" and rhs.value == b"")
            ):
                fld = self.ck.fields[id(lhs)]
                i = fld.index if self.default_slot else self.slot(fld)
                fast = self.field_comparison(node, i, lhs_info.type)
                if fast is not None:
                    if self.trace:
                        self.values[id(lhs)] = itemgetter(i)
                    return fast, None
        test, const = self.test(node, lhs_info)
        if lhs_info.unpacked:
            elems = self.elems(node.lhs)
            self.elementwise[id(node)] = (elems, test, node)
            return (lambda v: tuple([test(x) for x in elems(v)])), None
        if const is not None:
            return (_true if const else _false), const
        if isinstance(node.lhs, ast.FieldRef) and not lhs_info.missing:
            i = self.slot(self.ck.fields[id(node.lhs)])
            fast = self.field_comparison(node, i, lhs_info.type)
            if fast is not None:
                if self.trace:
                    self.values[id(node.lhs)] = itemgetter(i)
                return fast, None
        cased = self.cased_field(node.lhs)
        if cased is not None:
            fast = self.cased_comparison(node, *cased)
            if fast is not None:
                case, i = cased
                if self.trace:
                    self.values[id(node.lhs)] = lambda v: case(v[i])
                return fast, None
        val = self.value(node.lhs)
        fused = self.fused_comparison(node, lhs_info, val)
        if fused is not None:
            return fused, None
        return (lambda v: test(val(v))), None

    def dynamic_comparison(self, node: ast.Comparison) -> Pred:
        """``lhs op <field or function result>`` (eq…ge, since 2026-10-01): false
        when either side is missing (our choice); element-wise when the left side is unpacked (the
        right side is computed once per evaluation)."""
        lhs, rhs = node.lhs, node.rhs
        li, ri = self.info[id(lhs)], self.info[id(rhs)]
        cmp = _COMPARE[node.op]
        rv = self.value(rhs)
        if li.unpacked:
            elems = self.elems(lhs)

            def per_element(v: list) -> tuple:
                b = rv(v)
                if b is MISSING:
                    return tuple([False] * len(elems(v)))
                return tuple([x is not MISSING and cmp(x, b) for x in elems(v)])

            return per_element
        lv = self.value(lhs)
        if li.missing or ri.missing:
            return lambda v: (a := lv(v)) is not MISSING and (b := rv(v)) is not MISSING and cmp(a, b)
        if type(lhs) is ast.FieldRef and type(rhs) is ast.FieldRef:
            # Two plain fields (the common case): one closure, two slot reads.
            i = self.slot(self.ck.fields[id(lhs)])
            j = self.slot(self.ck.fields[id(rhs)])
            return _FIELD_PAIR[node.op](i, j)
        return lambda v: cmp(lv(v), rv(v))

    def plain_field_arg(self, call: ast.FunctionCall, fdefs: dict[int, Any]) -> tuple[Any, int] | None:
        """``(implementation, slot)`` when ``call`` is one of the library functions in
        ``fdefs`` (``id(FunctionDef) -> implementation``) and its first argument is a plain
        field that is never MISSING (then the result is never MISSING either)."""
        fdef, arg_infos, _impl = self.ck.calls[id(call)]
        impl = fdefs.get(id(fdef))
        if impl is None or not call.args or arg_infos[0].unpacked:
            return None
        arg0 = call.args[0]
        if isinstance(arg0, ast.BoolValue):
            arg0 = arg0.value
        if not isinstance(arg0, ast.FieldRef) or self.info[id(arg0)].missing:
            return None
        return impl, self.slot(self.ck.fields[id(arg0)])

    def affix_test(self, node: Any) -> Pred | None:
        """``starts_with(field, "lit")`` / ``ends_with(field, "lit")`` on a plain field: one
        closure calling the ``bytes`` method, no MISSING propagation (cannot occur)."""
        if not isinstance(node, ast.FunctionCall):
            return None
        found = self.plain_field_arg(node, _AFFIX)
        if found is None:
            return None
        _fdef, arg_infos, _impl = self.ck.calls[id(node)]
        if len(arg_infos) != 2 or not arg_infos[1].is_literal:
            return None
        method, i = found
        lit = _own(arg_infos[1].value)
        if method is bytes.startswith:
            return lambda v: v[i].startswith(lit)
        return lambda v: v[i].endswith(lit)

    def cased_field(self, node: Any) -> tuple[Callable[[bytes], bytes], int] | None:
        """``(bytes.lower or bytes.upper, slot)`` for ``lower(field)``/``upper(field)`` of a
        plain field."""
        if not isinstance(node, ast.FunctionCall) or len(node.args) != 1:
            return None
        return self.plain_field_arg(node, _CASE)

    @staticmethod
    def cased_comparison(node: ast.Comparison, case: Callable[[bytes], bytes], i: int) -> Pred | None:
        """One closure for ``lower(field) op literal`` (``eq ne contains in``)."""
        op, rhs = node.op, node.rhs
        if op == "in" and isinstance(rhs, ast.SetLiteral) and rhs.items:
            strings = frozenset(item.value for item in rhs.items)
            return lambda v: case(v[i]) in strings
        if not isinstance(rhs, ast.Literal):
            return None
        lit = _own(rhs.value)
        if op == "eq":
            return lambda v: case(v[i]) == lit
        if op == "ne":
            return lambda v: case(v[i]) != lit
        if op == "contains":
            return lambda v: case(v[i]).find(lit) != -1
        return None

    @staticmethod
    def fused_comparison(node: ast.Comparison, info: Info, val: Value) -> Pred | None:
        """One closure for ``<value expression> op literal`` (function results, indexed
        values): the value call and the operation, with the MISSING guard inline."""
        op, rhs = node.op, node.rhs
        if op == "in" and isinstance(rhs, ast.SetLiteral) and info.type == BYTES and rhs.items:
            strings = frozenset(item.value for item in rhs.items)
            return lambda v: val(v) in strings  # MISSING is never in the set
        if not isinstance(rhs, ast.Literal) or info.type == IP:
            return None
        lit = _own(rhs.value)
        if op == "eq":
            return lambda v: val(v) == lit  # MISSING == lit is False
        # Function results and indexed values may be MISSING: the other operators guard.
        if op == "ne":
            return lambda v: (x := val(v)) is not MISSING and x != lit
        if op == "contains":
            return lambda v: (x := val(v)) is not MISSING and x.find(lit) != -1
        if op == "lt":
            return lambda v: (x := val(v)) is not MISSING and x < lit
        if op == "le":
            return lambda v: (x := val(v)) is not MISSING and x <= lit
        if op == "gt":
            return lambda v: (x := val(v)) is not MISSING and x > lit
        if op == "ge":
            return lambda v: (x := val(v)) is not MISSING and x >= lit
        return None

    def field_comparison(self, node: ast.Comparison, i: int, lhs_type: Any) -> Pred | None:
        """Specialised closures for ``<plain field> op literal`` (the common case): one
        closure, one slot read, one operation."""
        op = node.op
        rhs = node.rhs
        is_ip = _is_ip(lhs_type)
        if not is_ip and isinstance(rhs, ast.Literal):
            lit = _own(rhs.value)
            if op == "eq":
                fn = lambda v: v[i] == lit  # noqa: E731
                self.leaves[id(fn)] = (i, lit)
                self.leaf_fns.append(fn)
                return fn
            if op == "ne":
                return lambda v: v[i] != lit
            if op == "contains":
                return lambda v: v[i].find(lit) != -1
            if op == "lt":
                return lambda v: v[i] < lit
            if op == "le":
                return lambda v: v[i] <= lit
            if op == "gt":
                return lambda v: v[i] > lit
            if op == "ge":
                return lambda v: v[i] >= lit
            if op == "bitwise_and":
                return lambda v: v[i] & lit != 0
        if is_ip and op in ("eq", "ne") and isinstance(rhs, ast.Literal):
            k = int(rhs.value)
            family = type(rhs.value)
            if op == "eq":
                return lambda v: type(x := v[i]) is family and x._ip == k
            return lambda v: not (type(x := v[i]) is family and x._ip == k)
        if op == "matches":
            return _regex_on_slot(self.ck.patterns[id(rhs)], i)
        if op in ("wildcard", "strict_wildcard"):
            match = self.ck.patterns[id(rhs)]
            return lambda v: match(v[i])
        if op == "in" and isinstance(rhs, ast.SetLiteral):
            if lhs_type == BYTES:
                strings = frozenset(item.value for item in rhs.items)
                return lambda v: v[i] in strings
            if lhs_type == INT:
                singles, ranges = _int_member(rhs.items)
                if ranges is None:
                    return lambda v: v[i] in singles
                if not singles:
                    return lambda v: ranges(v[i])
                return lambda v: (x := v[i]) in singles or ranges(x)
            return _ip_in_slot(rhs.items, i)
        if op == "in" and isinstance(rhs, ast.ListRef):
            # A named list on a plain field: the list's own test on the slot, no wrapper
            # (`http.host in $hosts` costs what the inline set costs).
            lst = self.ck.lists[id(rhs)]
            split = getattr(lst, "exact_and_rest", None)  # optional: see rulesets.lists
            if split is not None:
                exact, rest = split()
                return lambda v: (x := v[i]) in exact or rest(x)
            contains = lst.contains
            return lambda v: contains(v[i])
        return None

    def test(self, node: ast.Comparison, info: Info) -> tuple[Callable[[Any], bool], bool | None]:
        """The per-value test ``x -> bool`` of a comparison (with a MISSING guard when
        ``info.missing``), and its constant result if it has one."""
        op = node.op
        rhs = node.rhs
        guard = info.missing
        t = info.type
        base: Callable[[Any], bool]
        if op == "in":
            if isinstance(rhs, ast.ListRef):
                base = self.ck.lists[id(rhs)].contains
            elif not rhs.items:
                return _false, (None if info.unpacked else False)
            elif t == BYTES:
                strings = frozenset(item.value for item in rhs.items)
                return (lambda x: x in strings), None  # MISSING is never in the set
            elif t == INT:
                singles, ranges = _int_member(rhs.items)
                if ranges is None:
                    return (lambda x: x in singles), None
                base = lambda x: x in singles or ranges(x)  # noqa: E731
            else:
                base = _ip_member(rhs.items)
        elif op == "matches":
            base = self.ck.patterns[id(rhs)].search
        elif op in ("wildcard", "strict_wildcard"):
            base = self.ck.patterns[id(rhs)]
        else:
            lit = _own(rhs.value)
            if op == "eq":
                # MISSING == lit is False: no guard needed.
                return (lambda x: x == lit), None
            if op == "ne":
                base = lambda x: x != lit  # noqa: E731
            elif op == "contains":
                if lit == b"" and not guard:
                    return (lambda x: True), (None if info.unpacked else True)
                base = lambda x: x.find(lit) != -1  # noqa: E731
            elif op == "lt":
                base = lambda x: x < lit  # noqa: E731
            elif op == "le":
                base = lambda x: x <= lit  # noqa: E731
            elif op == "gt":
                base = lambda x: x > lit  # noqa: E731
            elif op == "ge":
                base = lambda x: x >= lit  # noqa: E731
            elif op == "bitwise_and":
                base = lambda x: x & lit != 0  # noqa: E731
            else:  # pragma: no cover - the checker rejects every other operator
                raise AssertionError(op)
        if not guard:
            return base, None
        inner = base
        return (lambda x: x is not MISSING and inner(x)), None

    # -- values --------------------------------------------------------------------------

    def value(self, node: Any) -> Value:
        """Closure computing a (non-unpacked) value expression."""
        fn = self._value(node)
        if self.trace:
            self.values[id(node)] = fn
        return fn

    def _value(self, node: Any) -> Value:
        if isinstance(node, ast.BoolValue):
            return self.value(node.value)
        if isinstance(node, ast.FieldRef):
            return itemgetter(self.slot(self.ck.fields[id(node)]))
        if isinstance(node, ast.FunctionCall):
            return self.call(node)
        if isinstance(node, ast.Index):
            base, chain = index_path(node)
            fn = self.value(base)
            for idx in chain:
                fn = self.index_value(idx, fn)
                if self.trace:
                    self.values[id(idx)] = fn
            return fn
        raise AssertionError(f"not a value: {node!r}")  # pragma: no cover

    def index_value(self, node: ast.Index, base: Value) -> Value:
        base_info = self.info[id(node.base)]
        key = node.index
        if isinstance(key, bytes):
            if base_info.missing:
                return lambda v: MISSING if (m := base(v)) is MISSING else m.get(key, MISSING)
            if isinstance(base, itemgetter):
                i = self.slot(self.ck.fields[id(node.base)])
                return lambda v: v[i].get(key, MISSING)
            return lambda v: base(v).get(key, MISSING)
        k = key
        if base_info.missing:
            return lambda v: a[k] if (a := base(v)) is not MISSING and len(a) > k else MISSING
        return lambda v: a[k] if len(a := base(v)) > k else MISSING

    def elems(self, node: Any) -> Value:
        """Closure returning an iterable of the elements of an unpacked expression."""
        if isinstance(node, ast.BoolValue):
            return self.elems(node.value)
        base, chain = index_path(node)
        fn = self.value(base)
        unpacked = False
        for idx in chain:
            base_info = self.info[id(idx.base)]
            key = idx.index
            if not unpacked:
                if isinstance(key, ast.Star):
                    fn = self.star(fn, base_info)
                    unpacked = True
                else:
                    fn = self.index_value(idx, fn)
                    if self.trace:
                        self.values[id(idx)] = fn
                continue
            fn = self.index_each(fn, key, base_info)
        return fn

    @staticmethod
    def star(base: Value, info: Info) -> Value:
        is_map = isinstance(info.type, Map)
        if info.missing:
            if is_map:
                return lambda v: () if (m := base(v)) is MISSING else m.values()
            return lambda v: () if (a := base(v)) is MISSING else a
        if is_map:
            return lambda v: base(v).values()
        return base

    @staticmethod
    def index_each(elems: Value, key: Any, info: Info) -> Value:
        """Apply an index to every element of an unpacked value (``x[*][0]``,
        ``x[*]["k"]``, nested ``x[*][*]`` flattens)."""
        guard = info.missing
        if isinstance(key, ast.Star):
            if isinstance(info.type, Map):
                return lambda v: [y for x in elems(v) if x is not MISSING for y in x.values()]
            return lambda v: [y for x in elems(v) if x is not MISSING for y in x]
        if isinstance(key, bytes):
            if guard:
                return lambda v: [
                    MISSING if x is MISSING else x.get(key, MISSING) for x in elems(v)
                ]
            return lambda v: [x.get(key, MISSING) for x in elems(v)]
        k = key
        if guard:
            return lambda v: [
                x[k] if x is not MISSING and len(x) > k else MISSING for x in elems(v)
            ]
        return lambda v: [x[k] if len(x) > k else MISSING for x in elems(v)]

    def call(self, node: ast.FunctionCall) -> Value:
        _fdef, arg_infos, impl = self.ck.calls[id(node)]
        getters: list[tuple[bool, Any]] = []  # (is_constant, constant or closure)
        for pos, (arg, ai) in enumerate(zip(node.args, arg_infos, strict=True)):
            if pos == 0 and ai.unpacked:
                getters.append((False, None))  # placeholder; handled below
            elif ai.is_literal:
                getters.append((True, ai.value))
            elif isinstance(arg, (ast.FieldRef, ast.Index, ast.FunctionCall, ast.BoolValue)):
                getters.append((False, self.value(arg)))
            else:
                getters.append((False, self.pred(arg)[0]))
        # Fields the function reads besides its arguments (is_jwt_*: the headers and
        # cookies), passed after them (Checked.implicit).
        for fld in self.ck.implicit.get(id(node), ()):
            getters.append((False, itemgetter(self.slot(fld))))
        if arg_infos and arg_infos[0].unpacked:
            elems = self.elems(node.args[0])
            rest = getters[1:]
            if not rest:
                return lambda v: tuple(map(impl, elems(v)))
            if all(is_const for is_const, _ in rest):
                consts = tuple(c for _, c in rest)
                return lambda v: tuple([impl(x, *consts) for x in elems(v)])
            rest_t = tuple(rest)

            def mapped(v: list) -> tuple:
                extra = [g if is_const else g(v) for is_const, g in rest_t]
                return tuple([impl(x, *extra) for x in elems(v)])

            return mapped
        n = len(getters)
        if n == 0:
            return lambda v: impl()
        if all(is_const for is_const, _ in getters[1:]):
            first_const, first = getters[0]
            consts = tuple(c for _, c in getters[1:])
            if first_const:
                value = first
                return lambda v: impl(value, *consts)
            arg0 = node.args[0]
            if isinstance(arg0, ast.BoolValue):
                arg0 = arg0.value
            if isinstance(arg0, ast.FieldRef):
                i = self.slot(self.ck.fields[id(arg0)])
                if n == 1:
                    return lambda v: impl(v[i])
                if n == 2:
                    c1 = consts[0]
                    return lambda v: impl(v[i], c1)
            if n == 1:
                return lambda v: impl(first(v))
            if n == 2:
                c1 = consts[0]
                return lambda v: impl(first(v), c1)
            return lambda v: impl(first(v), *consts)
        all_getters = tuple(getters)
        return lambda v: impl(*[g if is_const else g(v) for is_const, g in all_getters])

