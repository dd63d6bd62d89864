"""Generated Python for ``Filter.execute(ctx)``: one function per filter, reading the
Context's slots (bytes world) with lazy loads.

Owns ``build_execute`` (checked expression -> ``execute(ctx)`` or ``None`` when the
expression uses a construct the generator does not cover; ``Filter`` then uses the
closure compiler's tree over ``ctx.values``, with the same answers).

Invariants (shared with ``matchgen``, whose generator this one extends):

* No value from a rule enters the generated text; literals, sets, patterns and helpers
  are closure cells of a generated factory; one code object per shape.
* Slots hold ``Context``'s runtime values (``types.py``: bytes, int, bool,
  ``ipaddress`` objects, tuples, dicts with bytes keys — header names lowercased). A
  lazily built Context (``scheme.context(mapping)``) holds ``context.UNREAD`` in slots
  not read yet: a read is ``sl[i]`` and, only when that is ``UNREAD``, a call that reads,
  converts and stores the field (``Context._load``), so a Context costs what the
  filters read. A read dominated by an earlier one uses the local variable.
* One Python frame per evaluation: the Context check, the slot reads and the operations
  are inline; anything else (a mapping, a Context of another scheme, a Context
  subclass) goes to ``other(ctx)``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from edgerules.lang import ast
from edgerules.lang.checker import Checked
from edgerules.lang.context import UNREAD, Context, LazyMap
from edgerules.lang.ipset import interval_test
from edgerules.lang.matchgen import _CASE, _ORDER, _Gen, _Unsupported, compile_shape

__all__ = ["build_execute"]

_IPV4 = ipaddress.IPv4Address
_IPV6 = ipaddress.IPv6Address
_HELPERS = ("U", "L", "C", "S", "OTHER", "IPV4", "IPV6", "LM")


class _SlotGen(_Gen):
    """The bytes-world variant of ``matchgen._Gen``: reads slots, compares bytes."""

    def read(self, node: Any, ready: frozenset[str]) -> tuple[str, str, frozenset[str]]:
        fld = self.ck.fields[id(node)]
        name = fld.name
        k = self.kind(fld)
        v = self.var.get(name)
        if v is None:
            v = self.var[name] = f"v{len(self.var)}"
        after = ready | {name}
        if name in ready:
            return v, k, after
        i = int(fld.index)  # a slot number (generator-made, not a rule value)
        return f"({v} if ({v} := sl[{i}]) is not U else ({v} := L(ctx, {i})))", k, after

    def affix(self, call: Any, ready: frozenset[str]) -> tuple[str, frozenset[str]] | None:
        if type(call) is not ast.FunctionCall:
            return None
        fdef, arg_infos, _impl = self.ck.calls[id(call)]
        from edgerules.lang.matchgen import _AFFIX

        method = _AFFIX.get(id(fdef))
        if method is None or len(call.args) != 2 or not arg_infos[1].is_literal:
            return None
        arg0 = call.args[0]
        if type(arg0) is ast.BoolValue:
            arg0 = arg0.value
        if type(arg0) is not ast.FieldRef or self.info[id(arg0)].missing:
            return None
        code, k, after = self.read(arg0, ready)
        if k != "s":
            raise _Unsupported
        return f"{code}.{method}({self.const(bytes(arg_infos[1].value))})", after

    def string_value(self, node: Any, ready: frozenset[str]) -> tuple[str, frozenset[str]]:
        if type(node) is ast.FieldRef:
            code, k, after = self.read(node, ready)
            if k != "s":
                raise _Unsupported
            return code, after
        if self.cased_field(node):
            fdef, _infos, _impl = self.ck.calls[id(node)]
            arg0 = node.args[0]
            if type(arg0) is ast.BoolValue:
                arg0 = arg0.value
            code, after = self.string_value(arg0, ready)
            method = "lower" if _CASE[id(fdef)] == "LOW" else "upper"
            return f"{code}.{method}()", after  # bytes.lower(): ASCII only, as the language
        raise _Unsupported

    def string_test(self, x: str, op: str, rhs: Any) -> str:
        if op == "in":
            if type(rhs) is not ast.SetLiteral:
                raise _Unsupported
            return f"({x} in {self.const(frozenset(bytes(i.value) for i in rhs.items))})"
        if op == "matches":
            return self.regex_test(x, self.ck.patterns[id(rhs)])
        if op in ("wildcard", "strict_wildcard"):
            return f"{self.const(self.ck.patterns[id(rhs)])}({x})"
        lit = self.const(bytes(rhs.value))
        if op == "eq":
            return f"({x} == {lit})"
        if op == "ne":
            return f"({x} != {lit})"
        if op == "contains":
            return f"({x}.find({lit}) != -1)"  # (bytes `in` tries an int first: slower)
        if op in _ORDER:
            return f"({x} {_ORDER[op]} {lit})"
        raise _Unsupported

    def regex_test(self, x: str, rx: Any) -> str:
        if rx.literal is not None:
            lit, start, end = rx.literal
            c = self.const(bytes(lit))
            if start and end:
                return f"({x} == {c})"
            if start:
                return f"{x}.startswith({c})"
            if end:
                return f"{x}.endswith({c})"
            return f"({x}.find({c}) != -1)"
        from edgerules.lang.matchgen import _anchored_prefix

        if rx.python is not None:  # a linear-time ``re`` twin (regex._python_twin)
            return f"({self.const(rx.python.match)}({x}) is not None)"
        m, a = self.const(rx.re2_match), self.const(rx.anchor)
        t = self.temp()
        prefix = _anchored_prefix(rx)
        if prefix:
            return (f"(({t} := {x}).startswith({self.const(prefix.encode())}) and "
                    f"{m}({a}, {t}, 0, len({t}))[0][0] >= 0)")
        return f"({m}({a}, ({t} := {x}), 0, len({t}))[0][0] >= 0)"

    def ip_test(self, x: str, op: str, rhs: Any) -> str:
        if op in ("eq", "ne") and type(rhs) is ast.Literal:
            addr = rhs.value
            cls = "IPV4" if addr.version == 4 else "IPV6"
            test = f"({x}._ip == {self.const(int(addr))} and {x}.__class__ is {cls})"
            return test if op == "eq" else f"(not {test})"
        if op != "in" or type(rhs) is not ast.SetLiteral:
            raise _Unsupported
        v4: list[tuple[int, int]] = []
        v6: list[tuple[int, int]] = []
        for item in rhs.items:
            if type(item) is ast.Literal:
                lo = hi = int(item.value)
                version = item.value.version
            elif type(item) is ast.CidrItem:
                net = item.network
                lo = int(net.network_address)
                hi = lo | (net._ALL_ONES ^ int(net.netmask))
                version = net.version
            else:
                lo, hi, version = int(item.lo), int(item.hi), item.lo.version
            (v4 if version == 4 else v6).append((lo, hi))
        t = self.temp()

        def check(intervals: list[tuple[int, int]]) -> str:
            if len(intervals) == 1:
                lo, hi = intervals[0]
                return f"{self.const(lo)} <= {t}._ip <= {self.const(hi)}"
            return f"{self.const(interval_test(intervals))}({t}._ip)"

        # Context holds exact IPv4Address/IPv6Address objects (subclasses converted).
        if v4 and v6:
            return f"({check(v4)} if ({t} := {x}).__class__ is IPV4 else {check(v6)})"
        if v4:
            return f"(({t} := {x}).__class__ is IPV4 and {check(v4)})"
        if v6:
            return f"(({t} := {x}).__class__ is IPV6 and {check(v6)})"
        # An empty set matches nothing, but the read must still run: it may bind the
        # field's temporary that later tests of the same field reuse.
        return f"(({x}) is None and False)"

    def quantifier(self, node: ast.Quantifier, ready: frozenset[str]) -> tuple[str, frozenset[str]]:
        cmp = node.arg
        if node.kind != "any" or type(cmp) is not ast.Comparison:
            raise _Unsupported
        elems, after = self.elements(cmp.lhs, ready)
        op, rhs = cmp.op, cmp.rhs
        if op == "eq" and type(rhs) is ast.Literal:
            return f"({self.const(bytes(rhs.value))} in {elems})", after
        if op == "in" and type(rhs) is ast.SetLiteral:
            items = frozenset(bytes(i.value) for i in rhs.items)
            return f"(not {self.const(items)}.isdisjoint({elems}))", after
        if op == "contains" and type(rhs) is ast.Literal and rhs.value:
            lit = bytes(rhs.value)
            sep = next((bytes([c]) for c in range(256) if c not in lit), None)
            if sep is None:
                raise _Unsupported
            return f"({self.const(sep)}.join({elems}).find({self.const(lit)}) != -1)", after
        raise _Unsupported

    def elements(self, node: Any, ready: frozenset[str]) -> tuple[str, frozenset[str]]:
        if type(node) is not ast.Index or type(node.index) is not ast.Star:
            raise _Unsupported
        base = node.base
        if type(base) is ast.FieldRef:
            code, k, after = self.read(base, ready)
            if k != "as":
                raise _Unsupported
            return code, after
        if type(base) is ast.Index and type(base.base) is ast.FieldRef and type(base.index) is bytes:
            code, k, after = self.read(base.base, ready)
            if k != "m":
                raise _Unsupported
            # A filled Context holds a dict (absent key: no elements); a lazy one a
            # LazyMap, whose first lookup of a key converts that entry.
            v = self.var[self.ck.fields[id(base.base)].name]
            key = self.const(bytes(base.index))
            m = self.temp()
            return (f"({m} if ({m} := {code}.get({key})) is not None else "
                    f"({v}.fetch({key}) if {v}.__class__ is LM else ()))"), after
        raise _Unsupported

    def source(self) -> str:
        body, _ = self.pred(self.ck.expr, frozenset())
        consts = ", ".join(f"k{i}" for i in range(len(self.consts)))
        return (
            f"def make({', '.join(_HELPERS)}{', ' if consts else ''}{consts}):\n"
            "    def execute(ctx):\n"
            "        if ctx.__class__ is C and ctx.scheme is S:\n"
            "            sl = ctx._v\n"
            f"            return {body}\n"
            "        return OTHER(ctx)\n"
            "    return execute\n"
        )


def build_execute(checked: Checked, other: Callable[[object], bool]) -> Callable[[Any], bool] | None:
    """The generated ``execute(ctx)`` of ``checked`` (``other(ctx)`` handles anything
    but a ``Context`` of its scheme), or ``None`` when not covered."""
    gen = _SlotGen(checked)
    code = compile_shape(gen, "<edgerules execute>")
    if code is None:
        return None
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    helpers = (UNREAD, Context._load, Context, checked.scheme, other, _IPV4, _IPV6, LazyMap)
    fn = namespace["make"](*helpers, *gen.consts)
    fn.source = gen.text  # type: ignore[attr-defined]
    return fn  # type: ignore[no-any-return]
