"""A deliberately naive tree-walking interpreter of the Rules language, for differential
tests against the closure compiler (a second, independent reading of the semantics).

It walks the AST on every evaluation, dispatches on node type, and implements each rule
of field access, missing values, comparisons and logic (docs/engine-back.md) the obvious way (linear scans over sets, ``ipaddress``
membership for CIDRs, a ``re``-based translation of wildcards). It shares with the engine
only what is not under test here: the checker's resolution (fields, bound function
implementations, named lists, node types) and the regex engine.
"""

from __future__ import annotations

import re
from typing import Any

from edgerules.lang import ast
from edgerules.lang.checker import BOOL_ARRAY, Checked
from edgerules.lang.context import Context
from edgerules.lang.regex import compile_regex, pattern_text
from edgerules.lang.scheme import Scheme
from edgerules.lang.types import BOOL, BYTES, INT, IP, MISSING, Array, Map


def small_scheme() -> Scheme:
    """A small scheme with one field of each type (used by the property tests and by
    case groups that say ``scheme = "small"``)."""
    return Scheme(
        [
            ("s", BYTES),
            ("s2", BYTES),
            ("i", INT),
            ("b", BOOL),
            ("ip", IP),
            ("as", Array(BYTES)),
            ("ai", Array(INT)),
            ("ab", Array(BOOL)),
            ("ms", Map(BYTES)),
            ("mas", Map(Array(BYTES))),
            ("opt", BYTES),
        ],
        aliases={"alias.s": "s"},
        optional=["opt"],
    )


class Elements(list):
    """The per-element values of an unpacked (``[*]``) expression."""


def evaluate(checked: Checked, ctx: Context) -> bool:
    """Evaluate a checked expression against a context."""
    return bool(_Interp(checked, ctx).pred(checked.expr))


def _wildcard_regex(pattern: bytes, case_sensitive: bool) -> re.Pattern[bytes]:
    out = b""
    i = 0
    while i < len(pattern):
        c = pattern[i : i + 1]
        if c == b"\\":
            out += re.escape(pattern[i + 1 : i + 2])
            i += 2
            continue
        out += b".*" if c == b"*" else re.escape(c)
        i += 1
    return re.compile(out, re.DOTALL | (0 if case_sensitive else re.IGNORECASE))


class _Interp:
    def __init__(self, checked: Checked, ctx: Context) -> None:
        self.ck = checked
        self.ctx = ctx

    def pred(self, node: Any) -> Any:
        if isinstance(node, ast.BoolConst):
            return node.value
        if isinstance(node, ast.Not):
            inner = self.pred(node.operand)
            if isinstance(inner, Elements):
                return Elements(not x for x in inner)
            return not inner
        if isinstance(node, ast.Logical):
            items = [self.pred(i) for i in node.items]
            if self.ck.info[id(node)].type == BOOL_ARRAY:
                rows = zip(*items, strict=False)
                if node.op == "and":
                    return Elements(all(r) for r in rows)
                if node.op == "or":
                    return Elements(any(r) for r in rows)
                return Elements(sum(bool(x) for x in r) % 2 == 1 for r in rows)
            result = items[0]
            for item in items[1:]:
                if node.op == "and":
                    result = result and item
                elif node.op == "or":
                    result = result or item
                else:
                    result = result != item
            return bool(result)
        if isinstance(node, ast.Quantifier):
            arg = self.pred(node.arg)
            assert isinstance(arg, Elements), arg
            return any(arg) if node.kind == "any" else all(arg)
        if isinstance(node, ast.BoolValue):
            return self.bool_value(node)
        if isinstance(node, (ast.FieldRef, ast.Index, ast.FunctionCall)):
            return self.bool_value(ast.BoolValue(node))  # hand-built ASTs may omit it
        if isinstance(node, ast.Comparison):
            lhs = self.value(node.lhs)
            if isinstance(lhs, Elements):
                return Elements(self.compare(x, node) for x in lhs)
            return self.compare(lhs, node)
        raise AssertionError(node)

    def bool_value(self, node: ast.BoolValue) -> Any:
        v = self.value(node.value)
        vinfo = self.ck.info[id(node.value)]
        if vinfo.unpacked or vinfo.type == BOOL_ARRAY:
            if v is MISSING:
                return Elements()
            return Elements(x is True for x in v)
        return v is True

    def value(self, node: Any) -> Any:
        if isinstance(node, ast.BoolValue):
            return self.value(node.value)
        if isinstance(node, ast.Literal):
            return node.value
        if isinstance(node, ast.FieldRef):
            return self.ctx[node.name]
        if isinstance(node, ast.Index):
            base = self.value(node.base)
            if isinstance(base, Elements):
                if isinstance(node.index, ast.Star):
                    out = Elements()
                    for x in base:
                        out.extend(self.unpack(x))
                    return out
                return Elements(self.index(x, node.index) for x in base)
            if isinstance(node.index, ast.Star):
                return self.unpack(base)
            return self.index(base, node.index)
        if isinstance(node, ast.FunctionCall):
            _fdef, infos, impl = self.ck.calls[id(node)]
            args = []
            for arg in node.args:
                if isinstance(arg, (ast.Comparison, ast.Logical, ast.Not, ast.Quantifier, ast.BoolConst)):
                    args.append(self.pred(arg))
                else:
                    args.append(self.value(arg))
            # Fields a function reads besides its arguments (is_jwt_*) come after them.
            args += [self.ctx.values[f.index] for f in self.ck.implicit.get(id(node), ())]
            if infos and infos[0].unpacked:
                return tuple(impl(x, *args[1:]) for x in args[0])
            return impl(*args)
        raise AssertionError(node)

    @staticmethod
    def unpack(x: Any) -> Elements:
        if x is MISSING:
            return Elements()
        if isinstance(x, dict):
            return Elements(x.values())
        return Elements(x)

    @staticmethod
    def index(x: Any, key: Any) -> Any:
        if x is MISSING:
            return MISSING
        if isinstance(key, bytes):
            return x.get(key, MISSING)
        return x[key] if 0 <= key < len(x) else MISSING

    def compare(self, x: Any, node: ast.Comparison) -> bool:
        if x is MISSING:
            return False  # documented: every comparison on a missing value is false
        op, rhs = node.op, node.rhs
        if op == "in":
            if isinstance(rhs, ast.ListRef):
                return bool(self.ck.lists[id(rhs)].contains(x))
            return any(self.in_item(x, item) for item in rhs.items)
        if op == "matches":
            pattern = rhs.pattern if isinstance(rhs, ast.Regex) else pattern_text(rhs.value)
            return bool(compile_regex(pattern).search(x))
        if op in ("wildcard", "strict_wildcard"):
            rx = _wildcard_regex(rhs.value, op == "strict_wildcard")
            return rx.fullmatch(x) is not None
        if isinstance(rhs, (ast.FieldRef, ast.Index, ast.FunctionCall)):
            lit = self.value(rhs)  # a dynamic right-hand side (eq…ge)
            if lit is MISSING:
                return False
        else:
            lit = rhs.value
        if op == "eq":
            return type(x) is type(lit) and x == lit
        if op == "ne":
            return not (type(x) is type(lit) and x == lit)
        if op == "lt":
            return x < lit
        if op == "le":
            return x <= lit
        if op == "gt":
            return x > lit
        if op == "ge":
            return x >= lit
        if op == "contains":
            return lit in x
        if op == "bitwise_and":
            return (x & lit) != 0
        raise AssertionError(op)

    @staticmethod
    def in_item(x: Any, item: Any) -> bool:
        if isinstance(item, ast.Literal):
            return type(x) is type(item.value) and x == item.value
        if isinstance(item, ast.IntRangeItem):
            return item.lo <= x <= item.hi
        if isinstance(item, ast.CidrItem):
            return x.version == item.network.version and x in item.network
        if isinstance(item, ast.IpRangeItem):
            return x.version == item.lo.version and item.lo <= x <= item.hi
        raise AssertionError(item)
