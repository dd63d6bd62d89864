"""Generated Python for ``Filter.matches(mapping)``: lazy, targeted reads and ``str``
comparisons, one function per filter.

Owns ``build_matches`` (checked expression -> ``matches(mapping, strict=True)`` or
``None`` when the expression uses a construct this generator does not cover; the caller
then uses the closure compiler's path, which gives the same answers).

Invariants:

* **No value from a rule ever enters the generated text.** Literals, sets, patterns,
  field names and helpers are parameters of a generated factory (``k0``, ``k1`` …) and
  reach the function as closure cells; the source holds only identifiers made here,
  keywords, operators and small integers. Two filters of the same shape share one
  compiled code object (``_CODE``), so ``compile()`` runs once per shape.
  ``tests/test_engine_codegen.py`` generates from rules full of hostile strings and
  asserts none of them appears in the source, which has no string token at all.
* A field is read from the mapping when evaluation reaches it, once per call (a local
  variable holds it; a use not dominated by the first read checks the local first), and
  converted only as far as the comparison needs: a ``str`` is compared as ``str``.
* Strings: the runtime String is bytes. A ``str`` value stands for its UTF-8 bytes,
  where a lone surrogate U+DC80..U+DCFF stands for the byte 0x80..0xFF (Python's
  ``surrogateescape``; any other lone surrogate is a ``ContextError``), exactly as
  ``Context`` encodes it. Here a String value is its *canonical* ``str``:
  ``b.decode("utf-8", "surrogateescape")`` of those bytes (bytes inputs are decoded so,
  ``str`` inputs whose escapes spell valid UTF-8 are re-canonicalised). Canonical ``str``
  and bytes correspond one to one, so ``eq``/``ne``/``in`` compare canonical ``str`` with
  the literal's canonical ``str``; ``contains``/``starts_with``/``ends_with`` use ``str``
  when the literal is valid UTF-8 (UTF-8 is self-synchronising, and the decoder never
  swallows a lead byte into an invalid sequence), else the bytes; ordering uses ``str``
  for ASCII values and bytes otherwise; ``lower``/``upper`` use ``str`` methods on ASCII
  values only (the language's are ASCII-only); regexes and wildcards run on the bytes.
* IP addresses are integers: IPv4 ``0 .. 2**32-1``, IPv6 ``2**128 + address``, so one
  interval search covers both families and they never match each other. Text is parsed
  with ``socket.inet_pton`` (what it accepts ``ipaddress`` accepts with the same value:
  a test compares them on generated sets), anything else through ``ipaddress``.
* Absent fields: an alias is read only when the canonical name is absent; then the
  default. Absence is also when unknown keys are looked for (``strict``): a typo can only
  change an answer by making a field the filter reads absent, and checking every key on
  every call would cost more than the rule (docs/engine-back.md).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from edgerules.lang import ast
from edgerules.lang.checker import Checked
from edgerules.lang.context import HEADER_MAPS
from edgerules.lang.errors import ContextError
from edgerules.lang.functions import FUNCTIONS
from edgerules.lang.ipset import interval_test
from edgerules.lang.scheme import Field, Scheme
from edgerules.lang.types import BOOL, BYTES, INT, INT64_MAX, INT64_MIN, IP, MISSING, Array, Map

__all__ = ["build_matches", "canonical_str", "ip_key"]

_ABSENT = object()
_UNREAD = object()
_V6 = 1 << 128
_pton = socket.inet_pton
_AF4 = socket.AF_INET
_AF6 = socket.AF_INET6
_from_bytes = int.from_bytes


class _Unsupported(Exception):
    """The expression uses a construct the generator does not cover."""


# --- value conversion (the slow paths the generated code calls) ---------------------------


def canonical_str(value: object, fail: Callable[[object, str], Exception]) -> str:
    """The canonical ``str`` of a String value (see the module docstring)."""
    tp = value.__class__
    if tp is str:
        if value.isascii():  # type: ignore[union-attr]
            return value  # type: ignore[return-value]
        try:
            value.encode("utf-8")  # type: ignore[union-attr]
            return value  # type: ignore[return-value]
        except UnicodeEncodeError:
            try:
                raw = value.encode("utf-8", "surrogateescape")  # type: ignore[union-attr]
            except UnicodeEncodeError:
                raise fail(value, "a UTF-8 encodable string") from None
            return raw.decode("utf-8", "surrogateescape")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "surrogateescape")
    if isinstance(value, str):
        return canonical_str(str(value), fail)
    raise fail(value, "String (str or bytes)")


def _encode(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def ip_key(value: object, fail: Callable[[object, str], Exception]) -> int:
    """The integer of an IP value: IPv4 as is, IPv6 plus ``2**128``."""
    tp = value.__class__
    if tp is str:
        try:
            return _from_bytes(_pton(_AF4, value), "big")  # type: ignore[arg-type]
        except (OSError, UnicodeEncodeError, ValueError):
            pass
        try:
            return _from_bytes(_pton(_AF6, value), "big") | _V6  # type: ignore[arg-type]
        except (OSError, UnicodeEncodeError, ValueError):
            pass
    if isinstance(value, ipaddress.IPv4Address):
        return int(value)
    if isinstance(value, ipaddress.IPv6Address):
        return int(value) | _V6
    if isinstance(value, (str, bytes)):
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        try:
            addr = ipaddress.ip_address(text)  # zones and every other spelling
        except ValueError:
            raise fail(value, "an IP address") from None
        return ip_key(addr, fail)
    raise fail(value, "IP (str or ipaddress object)")


def _describe(value: object) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


class _Reader:
    """What the slow path needs to know about one field."""

    __slots__ = ("aliases", "allowed", "default", "name", "scheme")

    def __init__(self, fld: Field, scheme: Scheme, default: object) -> None:
        self.name = fld.name
        self.aliases = tuple(a for a, c in scheme.aliases.items() if c == fld.name)
        self.scheme = scheme
        self.default = default
        self.allowed = scheme._by_name

    def fail(self, value: object, expected: str) -> ContextError:
        return ContextError(f'field "{self.name}": expected {expected}, got {_describe(value)}')

    def absent(self, d: Mapping[str, object], strict: bool) -> object:
        """The value of an absent field: an alias's, else the default (after checking the
        mapping's keys when ``strict``)."""
        for alias in self.aliases:
            value = d.get(alias, _ABSENT)
            if value is not _ABSENT:
                return value
        if strict:
            check_keys(self.scheme, d)
        return self.default


def check_keys(scheme: Scheme, d: Mapping[str, object]) -> None:
    """Raise ``ContextError`` (with a did-you-mean) for a key outside ``scheme``."""
    allowed = scheme._by_name
    for key in d:
        if type(key) is not str or key not in allowed:
            scheme.field(key)  # type: ignore[arg-type]  # raises


def _norm_str(d: Mapping[str, object], x: object, r: _Reader, strict: bool) -> str:
    if x is _ABSENT:
        x = r.absent(d, strict)
    return canonical_str(x, r.fail)


def _norm_int(d: Mapping[str, object], x: object, r: _Reader, strict: bool) -> int:
    if x is _ABSENT:
        x = r.absent(d, strict)
    if type(x) is int:
        if INT64_MIN <= x <= INT64_MAX:  # type: ignore[operator]
            return x  # type: ignore[return-value]
        raise r.fail(x, "Int in the signed 64-bit range")
    if isinstance(x, int) and not isinstance(x, bool):
        return _norm_int(d, int(x), r, strict)
    raise r.fail(x, "Int")


def _norm_bool(d: Mapping[str, object], x: object, r: _Reader, strict: bool) -> bool:
    if x is _ABSENT:
        x = r.absent(d, strict)
    if x is True or x is False:
        return x  # type: ignore[return-value]
    raise r.fail(x, "Bool (True or False)")


def _norm_ip(d: Mapping[str, object], x: object, r: _Reader, strict: bool) -> int:
    if x is _ABSENT:
        x = r.absent(d, strict)
    return ip_key(x, r.fail)


def _norm_strs(d: Mapping[str, object], x: object, r: _Reader, strict: bool) -> tuple | list:
    """An ``Array<String>`` as a list/tuple of canonical ``str`` (the given list itself
    when its items are already ASCII ``str``: one ``join`` checks them in C)."""
    if x is _ABSENT:
        x = r.absent(d, strict)
    if x.__class__ is list or x.__class__ is tuple:
        try:
            if "".join(x).isascii():  # type: ignore[arg-type]
                return x  # type: ignore[return-value]
        except TypeError:
            pass
        return tuple([canonical_str(v, r.fail) for v in x])  # type: ignore[union-attr]
    if isinstance(x, (list, tuple)):
        return _norm_strs(d, list(x), r, strict)
    raise r.fail(x, "Array<String> (list or tuple)")


def _norm_map(d: Mapping[str, object], x: object, r: _Reader, strict: bool) -> Mapping:
    if x is _ABSENT:
        x = r.absent(d, strict)
    if not isinstance(x, Mapping):
        raise r.fail(x, "Map (dict)")
    return x


def _map_strs(m: Mapping, x: object, key: str, bkey: bytes, lower: bool, r: _Reader) -> object:
    """``m[key]`` of a ``Map<Array<String>>`` as canonical strs, or ``()`` when absent
    (``x``: what ``m.get(key, A)`` gave). Keys may be ``str`` or ``bytes``; for header
    maps (``lower``) names match case-insensitively (ASCII, as Context lowercases)."""
    if x is _ABSENT:
        x = m.get(bkey, _ABSENT)
        if x is _ABSENT:
            if not lower:
                return ()
            for k, v in m.items():
                name = k.encode("utf-8", "surrogateescape") if isinstance(k, str) else k
                if isinstance(name, bytes) and name.lower() == bkey:
                    x = v
                    break
            else:
                return ()
    if not isinstance(x, (list, tuple)):
        raise r.fail(x, "Array<String> (list or tuple) as a map value")
    return tuple([canonical_str(v, r.fail) for v in x])


# --- the generator ------------------------------------------------------------------------

_KIND = {id(BYTES): "s", id(INT): "i", id(BOOL): "b", id(IP): "p"}
_NORM = {"s": _norm_str, "i": _norm_int, "b": _norm_bool, "p": _norm_ip, "as": _norm_strs,
         "m": _norm_map}
_DEFAULT = {"s": "", "i": 0, "b": False, "p": ipaddress.IPv4Address(0), "as": (), "m": {}}
_HELPERS = ("A", "U", "MISSING", "E", "LOW", "UP", "BAD", "MS")
_AFFIX = {id(FUNCTIONS["starts_with"]): "startswith", id(FUNCTIONS["ends_with"]): "endswith"}
_CASE = {id(FUNCTIONS["lower"]): "LOW", id(FUNCTIONS["upper"]): "UP"}
_MAS = Map(Array(BYTES))
_AS = Array(BYTES)
_ORDER = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_HEADER_MAPS = HEADER_MAPS  # header names match case-insensitively (context.py)


def _lower(s: str) -> str:
    return s.lower() if s.isascii() else _encode(s).lower().decode("utf-8", "surrogateescape")


def _upper(s: str) -> str:
    return s.upper() if s.isascii() else _encode(s).upper().decode("utf-8", "surrogateescape")


def _bad_mapping(d: object) -> bool:
    """Called from the generated function's ``except AttributeError``: ``d`` has no
    ``get`` (not a mapping) -> ContextError; otherwise the error was another one."""
    if hasattr(d, "get"):
        raise
    raise ContextError(f"expected a mapping of field names to values, got {type(d).__name__}")


def _canon_literal(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _strict_text(b: bytes) -> str | None:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return None


class _Gen:
    def __init__(self, checked: Checked) -> None:
        self.ck = checked
        self.scheme = checked.scheme
        self.info = checked.info
        self.consts: list[object] = []
        self.var: dict[str, str] = {}  # field name -> local variable
        self.sites: dict[str, int] = {}  # field name -> read sites emitted so far
        self.rechecked: set[str] = set()  # fields needing ``v = U`` at the top
        self.temps = 0
        self.depth = 0
        self.text = ""  # the generated source, once compile_shape ran

    def temp(self) -> str:
        self.temps += 1
        return f"t{self.temps}"

    def const(self, value: object) -> str:
        self.consts.append(value)
        return f"k{len(self.consts) - 1}"

    # -- field reads -------------------------------------------------------------------

    def kind(self, fld: Field) -> str:
        t = fld.type
        k = _KIND.get(id(t))
        if k is None:
            if t == _AS:
                k = "as"
            elif t == _MAS:
                k = "m"
            else:
                raise _Unsupported
        if fld.optional:
            raise _Unsupported
        return k

    def read(self, node: Any, ready: frozenset[str]) -> tuple[str, str, frozenset[str]]:
        """Code reading field ``node`` (a FieldRef): (expression, kind, ready after)."""
        fld = self.ck.fields[id(node)]
        name = fld.name
        k = self.kind(fld)
        v = self.var.get(name)
        if v is None:
            v = self.var[name] = f"v{len(self.var)}"
        after = ready | {name}
        if name in ready:
            return v, k, after
        key = self.const(name)
        rd = self.const(_Reader(fld, self.scheme, _DEFAULT[k]))
        norm = self.const(_NORM[k])
        get = f"({v} := d.get({key}, A))"
        slow = f"({v} := {norm}(d, {v}, {rd}, strict))"
        # (In ``a if c else b`` Python evaluates ``c`` first: the read is in ``c``.)
        if k == "s":
            code = f"({v} if {get}.__class__ is str and {v}.isascii() else {slow})"
        elif k == "b":
            code = f"({v} if {get} is True or {v} is False else {slow})"
        elif k == "i":
            lo, hi = self.const(INT64_MIN), self.const(INT64_MAX)
            code = f"({v} if {get}.__class__ is int and {lo} <= {v} <= {hi} else {slow})"
        elif k == "m":
            code = f"({v} if {get}.__class__ is dict else {slow})"
        else:
            code = f"({v} := {norm}(d, d.get({key}, A), {rd}, strict))"
        if self.sites.get(name):
            self.rechecked.add(name)
            code = f"({v} if {v} is not U else {code})"
        self.sites[name] = self.sites.get(name, 0) + 1
        return code, k, after

    # -- predicates --------------------------------------------------------------------

    def pred(self, node: Any, ready: frozenset[str]) -> tuple[str, frozenset[str]]:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise _Unsupported  # CPython's parser refuses ~200 nested parentheses
        try:
            return self._pred(node, ready)
        finally:
            self.depth -= 1

    def _pred(self, node: Any, ready: frozenset[str]) -> tuple[str, frozenset[str]]:
        tp = type(node)
        if tp is ast.Logical:
            return self.logical(node, ready)
        if tp is ast.Not:
            code, after = self.pred(node.operand, ready)
            return f"(not {code})", after
        if tp is ast.BoolConst:
            return ("True" if node.value else "False"), ready
        if tp is ast.BoolValue:
            value = node.value
            if type(value) is ast.FieldRef and not self.info[id(value)].unpacked:
                code, k, after = self.read(value, ready)
                if k != "b":
                    raise _Unsupported
                return code, after
            affix = self.affix(value, ready)
            if affix is not None:
                return affix
            raise _Unsupported
        if tp is ast.Comparison:
            return self.comparison(node, ready)
        if tp is ast.Quantifier:
            return self.quantifier(node, ready)
        raise _Unsupported

    def logical(self, node: ast.Logical, ready: frozenset[str]) -> tuple[str, frozenset[str]]:
        if self.info[id(node)].type != BOOL:
            raise _Unsupported  # element-wise
        op = node.op
        codes = []
        r = ready
        first_after = None
        for item in node.items:
            code, r = self.pred(item, r)
            codes.append(f"bool({code})" if op == "xor" else code)
            if first_after is None:
                first_after = r
        if op == "xor":
            return "(" + " ^ ".join(codes) + ")", r
        return "(" + f" {op} ".join(codes) + ")", first_after or ready

    def affix(self, call: Any, ready: frozenset[str]) -> tuple[str, frozenset[str]] | None:
        if type(call) is not ast.FunctionCall:
            return None
        fdef, arg_infos, _impl = self.ck.calls[id(call)]
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
        lit = arg_infos[1].value
        text = _strict_text(lit)
        if text is not None:
            return f"{code}.{method}({self.const(text)})", after
        return f"E({code}).{method}({self.const(lit)})", after

    def string_value(self, node: Any, ready: frozenset[str]) -> tuple[str, frozenset[str]]:
        """A String-valued left side: a field, or lower()/upper() of one."""
        if type(node) is ast.FieldRef:
            code, k, after = self.read(node, ready)
            if k != "s":
                raise _Unsupported
            return code, after
        if type(node) is ast.FunctionCall and len(node.args) == 1:
            fdef, _infos, _impl = self.ck.calls[id(node)]
            helper = _CASE.get(id(fdef))
            arg0 = node.args[0]
            if type(arg0) is ast.BoolValue:
                arg0 = arg0.value
            if helper is not None and type(arg0) is ast.FieldRef:
                code, after = self.string_value(arg0, ready)
                v = self.var[self.ck.fields[id(arg0)].name]
                method = "lower" if helper == "LOW" else "upper"
                return f"({v}.{method}() if {code}.isascii() else {helper}({v}))", after
        raise _Unsupported

    def cased_field(self, node: Any) -> bool:
        """``lower(f)``/``upper(f)`` of a plain field (never missing, though the checker
        marks every function result as possibly missing)."""
        if type(node) is not ast.FunctionCall or len(node.args) != 1:
            return False
        fdef, _infos, _impl = self.ck.calls[id(node)]
        arg0 = node.args[0]
        if type(arg0) is ast.BoolValue:
            arg0 = arg0.value
        return (id(fdef) in _CASE and type(arg0) is ast.FieldRef
                and not self.info[id(arg0)].missing)

    def comparison(self, node: ast.Comparison, ready: frozenset[str]) -> tuple[str, frozenset[str]]:
        lhs, op, rhs = node.lhs, node.op, node.rhs
        info = self.info[id(lhs)]
        if info.unpacked or (info.missing and not self.cased_field(lhs)):
            raise _Unsupported
        if type(rhs) is ast.ListRef or type(rhs) not in (ast.Literal, ast.Regex, ast.SetLiteral):
            raise _Unsupported
        t = info.type
        if t is BYTES or t == BYTES:
            x, after = self.string_value(lhs, ready)
            return self.string_test(x, op, rhs), after
        if type(lhs) is not ast.FieldRef:
            raise _Unsupported
        x, k, after = self.read(lhs, ready)
        if k == "i":
            return self.int_test(x, op, rhs), after
        if k == "p":
            return self.ip_test(x, op, rhs), after
        raise _Unsupported

    def string_test(self, x: str, op: str, rhs: Any) -> str:
        if op == "in":
            if type(rhs) is not ast.SetLiteral:
                raise _Unsupported
            items = frozenset(_canon_literal(i.value) for i in rhs.items)
            return f"({x} in {self.const(items)})"
        if op == "matches":
            return self.regex_test(x, self.ck.patterns[id(rhs)])
        if op in ("wildcard", "strict_wildcard"):
            return f"{self.const(self.ck.patterns[id(rhs)])}(E({x}))"
        lit = rhs.value
        if op in ("eq", "ne"):
            return f"({x} {'==' if op == 'eq' else '!='} {self.const(_canon_literal(lit))})"
        if op == "contains":
            text = _strict_text(lit)
            if text is not None:
                return f"({self.const(text)} in {x})"
            return f"({self.const(lit)} in E({x}))"
        if op in _ORDER:
            sym = _ORDER[op]
            c, b = self.const(_canon_literal(lit)), self.const(lit)
            t = self.temp()
            return f"((E({t}) {sym} {b}) if not ({t} := {x}).isascii() else ({t} {sym} {c}))"
        raise _Unsupported

    def regex_test(self, x: str, rx: Any) -> str:
        if rx.literal is not None:
            lit, start, end = rx.literal
            text = _strict_text(lit)
            if text is not None:
                c = self.const(text)
                if start and end:
                    return f"({x} == {c})"
                if start:
                    return f"{x}.startswith({c})"
                if end:
                    return f"{x}.endswith({c})"
                return f"({c} in {x})"
        enc, err = self.const("utf-8"), self.const("surrogateescape")
        if rx.python is not None:  # a linear-time ``re`` twin (regex._python_twin)
            # ASCII text: the str twin (same pattern, code points = bytes); else bytes.
            ps = self.const(_str_twin(rx.python).match)
            pb = self.const(rx.python.match)
            t = self.temp()
            return (f"(({ps}({t}) is not None) if ({t} := {x}).isascii() else "
                    f"({pb}({t}.encode({enc}, {err})) is not None))")
        m, a = self.const(rx.re2_match), self.const(rx.anchor)
        prefix = _anchored_prefix(rx)
        if prefix:
            t = self.temp()
            return (f"(({t} := {x}).startswith({self.const(prefix)}) and "
                    f"{m}({a}, (b := {t}.encode({enc}, {err})), 0, len(b))[0][0] >= 0)")
        return f"({m}({a}, (b := {x}.encode({enc}, {err})), 0, len(b))[0][0] >= 0)"

    def int_test(self, x: str, op: str, rhs: Any) -> str:
        if op == "in" and type(rhs) is ast.SetLiteral:
            singles = frozenset(i.value for i in rhs.items if type(i) is ast.Literal)
            ranges = interval_test([(i.lo, i.hi) for i in rhs.items if type(i) is ast.IntRangeItem])
            if ranges is None:
                return f"({x} in {self.const(singles)})"
            return f"({x} in {self.const(singles)} or {self.const(ranges)}({x}))"
        if type(rhs) is not ast.Literal:
            raise _Unsupported
        c = self.const(rhs.value)
        if op == "bitwise_and":
            return f"({x} & {c} != 0)"
        sym = {"eq": "==", "ne": "!=", **_ORDER}.get(op)
        if sym is None:
            raise _Unsupported
        return f"({x} {sym} {c})"

    def ip_test(self, x: str, op: str, rhs: Any) -> str:
        if op in ("eq", "ne") and type(rhs) is ast.Literal:
            return f"({x} {'==' if op == 'eq' else '!='} {self.const(ip_key(rhs.value, _no_fail))})"
        if op != "in" or type(rhs) is not ast.SetLiteral:
            raise _Unsupported
        intervals = []
        for item in rhs.items:
            if type(item) is ast.Literal:
                k = ip_key(item.value, _no_fail)
                intervals.append((k, k))
            elif type(item) is ast.CidrItem:
                net = item.network
                lo = ip_key(net.network_address, _no_fail)
                intervals.append((lo, lo | (net._ALL_ONES ^ int(net.netmask))))
            else:
                intervals.append((ip_key(item.lo, _no_fail), ip_key(item.hi, _no_fail)))
        if len(intervals) == 1:
            lo, hi = intervals[0]
            return f"({self.const(lo)} <= {x} <= {self.const(hi)})"
        test = interval_test(intervals)
        if test is None:
            # An empty set matches nothing, but the read must still run: it may bind
            # the field's temporary that later tests of the same field reuse.
            return f"(({x}) is None and False)"
        return f"{self.const(test)}({x})"

    def quantifier(self, node: ast.Quantifier, ready: frozenset[str]) -> tuple[str, frozenset[str]]:
        cmp = node.arg
        if node.kind != "any" or type(cmp) is not ast.Comparison:
            raise _Unsupported
        elems, after = self.elements(cmp.lhs, ready)
        op, rhs = cmp.op, cmp.rhs
        if op == "eq" and type(rhs) is ast.Literal:
            return f"({self.const(_canon_literal(rhs.value))} in {elems})", after
        if op == "in" and type(rhs) is ast.SetLiteral:
            items = frozenset(_canon_literal(i.value) for i in rhs.items)
            return f"(not {self.const(items)}.isdisjoint({elems}))", after
        if op == "contains" and type(rhs) is ast.Literal:
            text = _strict_text(rhs.value)
            if text is None or not text:
                raise _Unsupported
            sep = next(chr(c) for c in range(1, 0x80) if chr(c) not in text)
            return f"({self.const(text)} in {self.const(sep)}.join({elems}))", after
        raise _Unsupported

    def elements(self, node: Any, ready: frozenset[str]) -> tuple[str, frozenset[str]]:
        """``x[*]`` of an Array<String> field, or ``m["key"][*]`` of a Map<Array<String>>
        field: code for a list/tuple of canonical strs (``()`` when missing)."""
        if type(node) is not ast.Index or type(node.index) is not ast.Star:
            raise _Unsupported
        base = node.base
        if type(base) is ast.FieldRef:
            code, k, after = self.read(base, ready)
            if k != "as":
                raise _Unsupported
            return code, after
        if type(base) is ast.Index and type(base.base) is ast.FieldRef and type(base.index) is bytes:
            fld = self.ck.fields[id(base.base)]
            code, k, after = self.read(base.base, ready)
            if k != "m":
                raise _Unsupported
            key = base.index
            if fld.name in _HEADER_MAPS and key != key.lower():
                return f"({code}, ())[1]", after  # header names are lowercased: never found
            r = self.const(_Reader(fld, self.scheme, {}))
            lower = "True" if fld.name in _HEADER_MAPS else "False"
            v = self.var[fld.name]
            ks, kb = self.const(_canon_literal(key)), self.const(key)
            m, e = self.temp(), self.temp()
            # The common case inline: one ASCII str under the key as written.
            return (f"({m} if ({m} := {code}.get({ks}, A)).__class__ is list and len({m}) == 1 "
                    f"and ({e} := {m}[0]).__class__ is str and {e}.isascii() "
                    f"else MS({v}, {m}, {ks}, {kb}, {lower}, {r}))"), after
        raise _Unsupported

    # -- the function ------------------------------------------------------------------

    def source(self) -> str:
        body, _ = self.pred(self.ck.expr, frozenset())
        consts = ", ".join(f"k{i}" for i in range(len(self.consts)))
        init = "".join(f"        {self.var[n]} = U\n" for n in sorted(self.rechecked))
        return (
            f"def make({', '.join(_HELPERS)}{', ' if consts else ''}{consts}):\n"
            "    def matches(d, strict=True):\n"
            f"{init}"
            "        try:\n"
            f"            return {body}\n"
            "        except AttributeError:\n"
            "            return BAD(d)\n"
            "    return matches\n"
        )


@functools.lru_cache(maxsize=1024)
def _str_twin(rx: Any) -> Any:
    """The ``str`` version of a bytes ``re`` twin: the same pattern over code points,
    which for ASCII text are its bytes."""
    return re.compile(rx.pattern.decode("latin-1"))


def _no_fail(value: object, expected: str) -> Exception:  # pragma: no cover - literals
    return AssertionError(f"literal {value!r} is not {expected}")


def _anchored_prefix(rx: Any) -> str:
    """A literal ASCII prefix every match of a ``^``-anchored byte-mode pattern starts
    with, or ``""``: lets the generated code skip RE2 when the value lacks it. Only
    patterns without ``|`` and flags qualify (a conservative reading of the syntax)."""
    p = rx.pattern
    if rx.utf8 or not p.startswith("^") or "|" in p or "(?" in p:
        return ""
    out: list[str] = []
    i = 1
    while i < len(p):
        c = p[i]
        if c == "\\":
            e = p[i + 1 : i + 2]
            if not (e and e.isascii() and not e.isalnum() and e.isprintable() and e not in " <>"):
                break
            c, step = e, 2
        elif c in "\\.^$|?*+()[]{}#" or not c.isascii() or not c.isprintable():
            break
        else:
            step = 1
        nxt = p[i + step : i + step + 1]
        if nxt and nxt in "*?{":
            break  # the character may be absent or repeated: not part of the prefix
        out.append(c)
        i += step
    return "".join(out)


# Shape cache: source text -> code object (the text holds no rule value, so rules of the
# same shape share it). Bounded: least recently used shapes are dropped.
_CODE: OrderedDict[tuple[str, str], Any] = OrderedDict()
_CODE_MAX = 2048
# Deeper expressions (each level adds a few parentheses) and longer sources take the
# closure path: CPython's parser stops at 200 nested parentheses, and compile() time
# grows with the text.
_MAX_DEPTH = 40
_MAX_SOURCE = 40_000


def compile_shape(gen: _Gen, filename: str) -> Any:
    """Generate ``gen``'s source (kept as ``gen.text``) and return its code object, from
    the shape cache when a filter of the same shape was compiled before; ``None`` when
    the expression is not covered."""
    try:
        text = gen.source()
    except _Unsupported:
        return None
    if len(text) > _MAX_SOURCE:
        return None
    gen.text = text
    key = (filename, text)
    code = _CODE.get(key)
    if code is None:
        code = compile(text, filename, "exec")
        _CODE[key] = code
        if len(_CODE) > _CODE_MAX:
            _CODE.popitem(last=False)
    else:
        _CODE.move_to_end(key)
    return code


def build_matches(checked: Checked) -> Callable[..., bool] | None:
    """The generated ``matches(mapping, strict=True)`` of ``checked``, or ``None`` when
    the expression uses a construct the generator does not cover."""
    gen = _Gen(checked)
    code = compile_shape(gen, "<edgerules matches>")
    if code is None:
        return None
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    helpers = (_ABSENT, _UNREAD, MISSING, _encode, _lower, _upper, _bad_mapping, _map_strs)
    fn = namespace["make"](*helpers, *gen.consts)
    fn.source = gen.text  # type: ignore[attr-defined]  # for tests and debugging
    return fn  # type: ignore[no-any-return]
