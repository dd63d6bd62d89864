"""Built-in functions of the Rules language, as data + closures.

This module owns every function of Cloudflare's functions reference
(https://developers.cloudflare.com/ruleset-engine/rules-language/functions/) except ``any``/``all`` (syntax, handled by the
engine): their argument rules (arity, types, literal-only / field-only arguments, literal
value ranges) and their implementations. Contract: docs/architecture.md ("Extending and testing").

Invariants:

* ``FunctionDef.check(args)`` raises only ``ArgumentProblem`` (with the index of the
  offending argument, or ``None`` for the whole call) and returns the result type for
  scalar arguments; for an unpacked (``[*]``) argument 0 the checker wraps the result in
  ``Array``.
* ``FunctionDef.bind(args)`` is called once, after ``check``; it precomputes from literal
  arguments (regexes, wildcard matchers, flags) and returns ``impl(*values)``.
* An ``impl`` never raises for any runtime value of the checked types, nor for
  ``MISSING``. Most functions return ``MISSING`` when an argument is ``MISSING``
  (Cloudflare's missing-value rule, https://developers.cloudflare.com/ruleset-engine/rules-language/values/); ``concat`` treats it as empty; ``is_timed_hmac_valid_v0`` answers
  ``False`` (a missing token is not a valid token). Malformed input has a documented
  result (docs/functions.md): ``decode_base64`` and ``lookup_json_*`` give ``MISSING``,
  ``url_decode`` leaves malformed escapes as they are.
* Nothing here does I/O or keeps state between calls (``uuidv4`` is a pure function of
  its seed bytes).

``regex_replace`` and ``wildcard_replace`` may appear at most once per expression and
never together (Cloudflare's functions reference); a per-call check cannot see that, so their ``FunctionDef``
has ``once_per_expression = True`` for the checker to count.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from edgerules.lang.hashing import bucket, stable_hash64
from edgerules.lang.jwt import jwt_functions
from edgerules.lang.regex import CompiledRegex, RegexError, compile_regex, pattern_text
from edgerules.lang.source import Span
from edgerules.lang.types import BOOL, BYTES, INT, IP, MISSING, Array, Map, Type
from edgerules.lang.wildcard import WildcardError, parse_wildcard, wildcard_captures

__all__ = ["FUNCTIONS", "ArgInfo", "ArgumentProblem", "FunctionDef"]

Impl = Callable[..., object]
_STRING_HEADER = struct.Struct(">BQ").pack  # hashing.encode_sources' String frame
_NO_SPAN = Span(0, 0)


@dataclass(frozen=True)
class ArgInfo:
    """What the checker knows about one argument.

    ``field`` (an addition, default ``None``) is the canonical name of the field when
    ``is_field``; functions that accept only particular fields
    (``remove_query_args``) check it when it is given."""

    type: Type
    is_literal: bool = False
    is_field: bool = False
    value: object = None
    unpacked: bool = False
    span: Span = _NO_SPAN
    field: str | None = None


class ArgumentProblem(Exception):
    """A wrong call; the checker turns it into ``RuleTypeError`` at the argument's span
    (``arg_index``) or at the whole call (``None``)."""

    def __init__(self, message: str, arg_index: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.arg_index = arg_index


class FunctionDef(Protocol):
    name: str

    def check(self, args: Sequence[ArgInfo]) -> Type: ...

    def bind(self, args: Sequence[ArgInfo]) -> Impl: ...


# --- helpers for argument checking --------------------------------------------------

_ORDINAL = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")


def _nth(i: int) -> str:
    return _ORDINAL[i] if i < len(_ORDINAL) else f"#{i + 1}"


def _tname(t: Type) -> str:
    return str(t)


class _Function:
    """Base of the built-ins: a name, a one-line signature for messages/docs, arity
    bounds, and helpers for the usual argument rules."""

    name = ""
    signature = ""
    summary = ""
    min_args = 0
    max_args: int | None = 0
    once_per_expression = False

    def check(self, args: Sequence[ArgInfo]) -> Type:
        self._arity(args)
        for i, a in enumerate(args):
            if i > 0 and a.unpacked:
                raise ArgumentProblem(
                    f"[*] is allowed only in the first argument of {self.name}()", i
                )
        return self._check(args)

    def _check(self, args: Sequence[ArgInfo]) -> Type:  # pragma: no cover - abstract
        raise NotImplementedError

    def bind(self, args: Sequence[ArgInfo]) -> Impl:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- rule helpers --
    def _arity(self, args: Sequence[ArgInfo]) -> None:
        n = len(args)
        lo, hi = self.min_args, self.max_args
        if n < lo or (hi is not None and n > hi):
            if hi == lo:
                want = f"{lo} argument{'s' if lo != 1 else ''}"
            elif hi is None:
                want = f"at least {lo} arguments"
            else:
                want = f"{lo} to {hi} arguments"
            raise ArgumentProblem(
                f"{self.name}() takes {want}, got {n}: {self.signature}", None
            )

    def _type(self, args: Sequence[ArgInfo], i: int, *allowed: Type, what: str = "") -> Type:
        t = args[i].type
        if t not in allowed:
            names = " or ".join(_tname(x) for x in allowed)
            label = f" ({what})" if what else ""
            raise ArgumentProblem(
                f"the {_nth(i)} argument{label} of {self.name}() must be {names}, found {_tname(t)}",
                i,
            )
        return t

    def _literal(self, args: Sequence[ArgInfo], i: int, what: str) -> object:
        if not args[i].is_literal:
            raise ArgumentProblem(
                f"the {what} of {self.name}() must be a literal (written in the rule)", i
            )
        return args[i].value

    def _field(self, args: Sequence[ArgInfo], i: int, what: str) -> None:
        if not args[i].is_field:
            raise ArgumentProblem(
                f"the {what} of {self.name}() must be a field (not a literal or an expression)",
                i,
            )

    def _field_like(self, args: Sequence[ArgInfo], i: int, what: str) -> None:
        """"Must be a field, that is, it cannot be a literal" (the function reference's
        wording; the engine's Field argument kind): a field, an indexed field or a value
        computed from fields (a function call) — anything but a literal."""
        if args[i].is_literal:
            raise ArgumentProblem(
                f"the {what} of {self.name}() must be a field (or a value computed from "
                "fields), not a literal",
                i,
            )

    def _not_literal(self, args: Sequence[ArgInfo], i: int, what: str) -> None:
        if args[i].is_literal:
            raise ArgumentProblem(f"the {what} of {self.name}() cannot be a literal", i)


def _propagating(fn: Callable[..., object]) -> Impl:
    """Wrap ``fn`` so any MISSING argument gives MISSING (the documented default)."""

    def impl(*values: object) -> object:
        for v in values:
            if v is MISSING:
                return MISSING
        return fn(*values)

    return impl


def _propagating1(fn: Callable[[Any], object]) -> Impl:
    def impl(v: object) -> object:
        return MISSING if v is MISSING else fn(v)

    return impl


# --- IP --------------------------------------------------------------------------------


def _network(addr: object, v4: int, v6: int) -> object:
    if isinstance(addr, ipaddress.IPv4Address):
        mask = (0xFFFFFFFF << (32 - v4)) & 0xFFFFFFFF
        return ipaddress.IPv4Address(int(addr) & mask)
    if isinstance(addr, ipaddress.IPv6Address):
        mask = ((1 << 128) - 1) ^ ((1 << (128 - v6)) - 1)
        return ipaddress.IPv6Address(int(addr) & mask)
    return MISSING


class _Cidr(_Function):
    name = "cidr"
    signature = "cidr(address IP field, ipv4_bits Integer 1-32, ipv6_bits Integer 1-128) -> IP"
    summary = "Network address of the address with the family's prefix length."
    min_args = max_args = 3

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        self._type(args, 0, IP, what="address")
        self._field_like(args, 0, "address")
        for i, (what, hi) in ((1, ("IPv4 prefix length", 32)), (2, ("IPv6 prefix length", 128))):
            self._type(args, i, INT, what=what)
            v = self._literal(args, i, what)
            if not (isinstance(v, int) and 1 <= v <= hi):
                raise ArgumentProblem(f"the {what} must be between 1 and {hi}, got {v}", i)
        return IP

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        v4, v6 = int(args[1].value), int(args[2].value)  # type: ignore[call-overload]
        return lambda addr, _a=None, _b=None: _network(addr, v4, v6)


class _Cidr6(_Function):
    name = "cidr6"
    signature = "cidr6(address IP field, ipv6_bits Integer 1-128) -> IP"
    summary = "Like cidr(address, 32, ipv6_bits): IPv4 addresses are returned unchanged."
    min_args = max_args = 2

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        self._type(args, 0, IP, what="address")
        self._field_like(args, 0, "address")
        self._type(args, 1, INT, what="IPv6 prefix length")
        v = self._literal(args, 1, "IPv6 prefix length")
        if not (isinstance(v, int) and 1 <= v <= 128):
            raise ArgumentProblem(f"the IPv6 prefix length must be between 1 and 128, got {v}", 1)
        return IP

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        v6 = int(args[1].value)  # type: ignore[call-overload]
        return lambda addr, _b=None: _network(addr, 32, v6)


# --- strings -----------------------------------------------------------------------------


class _Concat(_Function):
    name = "concat"
    signature = "concat(v1, v2, ...) -> String | Array (all Strings or all Arrays of one type)"
    summary = "Concatenate strings, or arrays; a missing argument counts as empty."
    min_args = 2
    max_args = 32  # Cloudflare's documented limit since 2026-09-22

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        first = args[0].type
        if first != BYTES and not isinstance(first, Array):
            raise ArgumentProblem(
                f"concat() takes Strings or Arrays, found {_tname(first)}", 0
            )
        for i, a in enumerate(args[1:], 1):
            if a.type != first:
                raise ArgumentProblem(
                    f"all arguments of concat() must have one type: the first is "
                    f"{_tname(first)}, the {_nth(i)} is {_tname(a.type)}",
                    i,
                )
        return first

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        if args[0].type == BYTES:

            def concat_bytes(*values: object) -> object:
                return b"".join(v for v in values if v is not MISSING)  # type: ignore[misc]

            return concat_bytes

        def concat_arrays(*values: object) -> object:
            out: list[object] = []
            for v in values:
                if v is not MISSING:
                    out.extend(v)  # type: ignore[call-overload]
            return tuple(out)

        return concat_arrays


def _b64decode(data: bytes) -> object:
    """Standard Base64, padding optional, URL-safe ``-_`` also accepted; anything else
    (bad characters, whitespace, a lone trailing character, wrong padding) → MISSING."""
    s = data.rstrip(b"=")
    pad = len(data) - len(s)
    if pad and (len(data) % 4 != 0 or pad > 2):
        return MISSING
    if len(s) % 4 == 1:
        return MISSING
    s = s.replace(b"-", b"+").replace(b"_", b"/")
    try:
        return base64.b64decode(s + b"=" * (-len(s) % 4), validate=True)
    except (binascii.Error, ValueError):
        return MISSING


class _DecodeBase64(_Function):
    name = "decode_base64"
    signature = "decode_base64(source String field) -> String"
    summary = "Base64-decode (padding optional); malformed input gives a missing value."
    min_args = max_args = 1

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        self._type(args, 0, BYTES, what="source")
        self._field_like(args, 0, "source")
        return BYTES

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        return _propagating1(_b64decode)


class _EncodeBase64(_Function):
    name = "encode_base64"
    signature = 'encode_base64(input String [, flags "u"/"p"/"up" literal]) -> String'
    summary = "Base64-encode; default standard alphabet without padding; u = URL-safe, p = pad."
    min_args = 1
    max_args = 2

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        self._type(args, 0, BYTES, what="input")
        if len(args) == 2:
            self._type(args, 1, BYTES, what="flags")
            flags = self._literal(args, 1, "flags")
            assert isinstance(flags, bytes)
            bad = set(flags.decode("latin-1")) - set("up")
            if bad or len(set(flags)) != len(flags):
                raise ArgumentProblem(
                    'the flags of encode_base64() must be a combination of "u" (URL-safe) '
                    f'and "p" (padding), got "{flags.decode("latin-1")}"',
                    1,
                )
        return BYTES

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        flags = args[1].value if len(args) == 2 else b""
        assert isinstance(flags, bytes)
        urlsafe, pad = b"u" in flags, b"p" in flags
        enc = base64.urlsafe_b64encode if urlsafe else base64.b64encode

        def encode(data: bytes, _flags: object = None) -> object:
            if data is MISSING:
                return MISSING
            out = enc(data)
            return out if pad else out.rstrip(b"=")

        return encode


class _AffixTest(_Function):
    """``starts_with`` / ``ends_with``: ``test`` is the ``bytes`` method that answers."""

    min_args = max_args = 2
    what = ""
    test: Callable[[bytes, bytes], bool]

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        self._type(args, 0, BYTES, what="source")
        self._not_literal(args, 0, "source")
        self._type(args, 1, BYTES, what=self.what)
        return BOOL

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        test = self.test
        if args[1].is_literal:
            affix = args[1].value
            return lambda s, _a=None: MISSING if s is MISSING else test(s, affix)
        return _propagating(test)


class _StartsWith(_AffixTest):
    name = "starts_with"
    signature = "starts_with(source String (not a literal), prefix String) -> Boolean"
    summary = "The source begins with the prefix (case-sensitive)."
    what = "prefix"
    test = staticmethod(bytes.startswith)


class _EndsWith(_AffixTest):
    name = "ends_with"
    signature = "ends_with(source String (not a literal), suffix String) -> Boolean"
    summary = "The source ends with the suffix (case-sensitive)."
    what = "suffix"
    test = staticmethod(bytes.endswith)


class _Lower(_Function):
    name = "lower"
    signature = "lower(String) -> String"
    summary = "ASCII A-Z to a-z; other bytes unchanged."
    min_args = max_args = 1

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        self._type(args, 0, BYTES)
        return BYTES

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        return _propagating1(bytes.lower)


class _Upper(_Lower):
    name = "upper"
    signature = "upper(String) -> String"
    summary = "ASCII a-z to A-Z; other bytes unchanged."

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        return _propagating1(bytes.upper)


class _Len(_Function):
    name = "len"
    signature = "len(String | Array | Map) -> Integer"
    summary = "Byte length of a string, or number of elements of an array (keys of a map)."
    min_args = max_args = 1

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        t = args[0].type
        if t != BYTES and not isinstance(t, Array | Map):
            raise ArgumentProblem(f"len() takes a String or an Array, found {_tname(t)}", 0)
        return INT

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        return _propagating1(len)


class _Join(_Function):
    name = "join"
    signature = "join(items Array<String>, separator String) -> String"
    summary = "Join the array's strings with the separator."
    min_args = max_args = 2

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        self._type(args, 0, Array(BYTES), what="items")
        self._type(args, 1, BYTES, what="separator")
        return BYTES

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        # MISSING elements cannot occur in field arrays; skip them defensively.
        return _propagating(lambda items, sep: sep.join(x for x in items if x is not MISSING))


class _RemoveBytes(_Function):
    name = "remove_bytes"
    signature = "remove_bytes(source String, bytes String) -> String"
    summary = "Remove every occurrence of each of the listed bytes."
    min_args = max_args = 2

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        self._type(args, 0, BYTES, what="source")
        self._type(args, 1, BYTES, what="bytes")
        return BYTES

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        return _propagating(lambda s, d: s.translate(None, d))


class _Sha256(_Function):
    name = "sha256"
    signature = "sha256(input String) -> String (the raw 32-byte digest)"
    summary = "SHA-256 digest as 32 raw bytes (use encode_base64() to print it)."
    min_args = max_args = 1

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        self._type(args, 0, BYTES, what="input")
        return BYTES

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        return _propagating1(lambda d: hashlib.sha256(d).digest())


class _Split(_Function):
    name = "split"
    signature = "split(input String, separator String literal, limit Integer literal 1-128) -> Array<String>"
    summary = "Split at each separator into at most limit pieces (default 128); the last holds the rest."
    min_args = 2
    max_args = 3
    DEFAULT_LIMIT = 128

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        self._type(args, 0, BYTES, what="input")
        self._type(args, 1, BYTES, what="separator")
        sep = self._literal(args, 1, "separator")
        if sep == b"":
            raise ArgumentProblem("the separator of split() cannot be empty", 1)
        if len(args) == 3:
            self._type(args, 2, INT, what="limit")
            limit = self._literal(args, 2, "limit")
            if not (isinstance(limit, int) and 1 <= limit <= 128):
                raise ArgumentProblem(f"the limit of split() must be between 1 and 128, got {limit}", 2)
        return Array(BYTES)

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        sep = args[1].value
        assert isinstance(sep, bytes)
        limit = int(args[2].value) if len(args) == 3 else self.DEFAULT_LIMIT  # type: ignore[call-overload]

        def split(s: object, _sep: object = None, _limit: object = None) -> object:
            if s is MISSING:
                return MISSING
            return tuple(s.split(sep, limit - 1))  # type: ignore[attr-defined]

        return split


class _Substring(_Function):
    name = "substring"
    signature = "substring(source String, start Integer [, end Integer]) -> String"
    summary = "Byte slice [start, end); negative indexes count from the end; out of range clamps."
    min_args = 2
    max_args = 3

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        self._type(args, 0, BYTES, what="source")
        self._type(args, 1, INT, what="start")
        if len(args) == 3:
            self._type(args, 2, INT, what="end")
        return BYTES

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        # Python slicing is exactly the documented rule, and clamps out-of-range indexes.
        def substring(s: object, start: object, end: object = None) -> object:
            if s is MISSING or start is MISSING or end is MISSING:
                return MISSING
            return s[start:end]  # type: ignore[index]

        return substring


class _ToString(_Function):
    name = "to_string"
    signature = "to_string(Integer | Boolean | IP) -> String"
    summary = 'Decimal integer, "true"/"false", or the textual IP address.'
    min_args = max_args = 1

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        self._type(args, 0, INT, BOOL, IP)
        return BYTES

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        def to_string(v: object) -> object:
            if v is MISSING:
                return MISSING
            if v is True or v is False:
                return b"true" if v else b"false"
            return str(v).encode("ascii")

        return to_string


# --- maps and arrays -------------------------------------------------------------------


class _HasKey(_Function):
    name = "has_key"
    signature = "has_key(map Map<T>, key String) -> Boolean"
    summary = "The map has the key (exact, case-sensitive)."
    min_args = max_args = 2

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        if not isinstance(args[0].type, Map):
            raise ArgumentProblem(
                f"the first argument of has_key() must be a Map, found {_tname(args[0].type)}", 0
            )
        self._type(args, 1, BYTES, what="key")
        return BOOL

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        return _propagating(lambda m, k: k in m)


class _HasValue(_Function):
    name = "has_value"
    signature = "has_value(container Map<T> | Array<T>, value T) -> Boolean"
    summary = "Some value of the map or element of the array equals the value."
    min_args = max_args = 2

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        t = args[0].type
        if isinstance(t, Array):
            elem = t.element
        elif isinstance(t, Map):
            elem = t.value
        else:
            raise ArgumentProblem(
                f"the first argument of has_value() must be a Map or an Array, found {_tname(t)}",
                0,
            )
        if isinstance(elem, Array | Map):
            raise ArgumentProblem(
                "has_value() looks for a value of a primitive type (String, Integer, IP, "
                f"Boolean); the elements of this container are {_tname(elem)}",
                0,
            )
        if args[1].type != elem:
            raise ArgumentProblem(
                f"the value must have the container's element type {_tname(elem)}, "
                f"found {_tname(args[1].type)}",
                1,
            )
        return BOOL

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        is_map = isinstance(args[0].type, Map)

        def has_value(c: object, v: object) -> object:
            if c is MISSING or v is MISSING:
                return MISSING
            items = c.values() if is_map else c  # type: ignore[attr-defined]
            # Arrays compare equal to tuples of the same items (lists from callers too).
            if isinstance(v, list | tuple):
                v = tuple(v)
                return any(tuple(x) == v for x in items if isinstance(x, list | tuple))
            return any(x == v and type(x) is type(v) for x in items)

        return has_value


# --- JSON ------------------------------------------------------------------------------


def _no_constant(name: str) -> object:
    raise ValueError(name)  # NaN/Infinity are not JSON


def _json_lookup(doc: bytes, keys: Sequence[object]) -> object:
    try:
        node: object = json.loads(doc, parse_constant=_no_constant)
    except (ValueError, RecursionError, UnicodeDecodeError, TypeError):
        return MISSING
    for key in keys:
        if isinstance(key, bytes):
            if not isinstance(node, dict):
                return MISSING
            try:
                skey = key.decode("utf-8")
            except UnicodeDecodeError:
                return MISSING
            if skey not in node:
                return MISSING
            node = node[skey]
        elif isinstance(key, int) and not isinstance(key, bool):
            if not isinstance(node, list) or not 0 <= key < len(node):
                return MISSING
            node = node[key]
        else:
            return MISSING
    return node


class _LookupJson(_Function):
    min_args = 2
    max_args = None
    result: Type = INT

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        self._type(args, 0, BYTES, what="JSON document")
        for i in range(1, len(args)):
            self._type(args, i, BYTES, INT, what="key")
            if args[i].is_literal and isinstance(args[i].value, int) and args[i].value < 0:  # type: ignore[operator]
                raise ArgumentProblem("array indexes in JSON lookups start at 0", i)
        return self.result

    def _convert(self, node: object) -> object:  # pragma: no cover - abstract
        raise NotImplementedError

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        convert = self._convert

        def lookup(doc: object, *keys: object) -> object:
            if doc is MISSING or any(k is MISSING for k in keys):
                return MISSING
            return convert(_json_lookup(doc, keys))  # type: ignore[arg-type]

        return lookup


class _LookupJsonInteger(_LookupJson):
    name = "lookup_json_integer"
    signature = "lookup_json_integer(json String, key1 String|Integer, ...) -> Integer"
    summary = "The plain JSON integer at the key path (42.0 does not count), else missing."
    result = INT

    def _convert(self, node: object) -> object:
        if type(node) is int and -(2**63) <= node < 2**63:
            return node
        return MISSING


class _LookupJsonString(_LookupJson):
    name = "lookup_json_string"
    signature = "lookup_json_string(json String, key1 String|Integer, ...) -> String"
    summary = "The JSON string at the key path (UTF-8), else missing."
    result = BYTES

    def _convert(self, node: object) -> object:
        if isinstance(node, str):
            try:
                return node.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate escape: not a valid string
                return MISSING
        return MISSING


# --- replacements ----------------------------------------------------------------------


def _parse_replacement(text: bytes, max_ref: int, what: str, index: int) -> list[bytes | int]:
    """Split a replacement into literal pieces and group numbers: ``${n}`` (0 ≤ n ≤ 8,
    and n ≤ ``max_ref``), ``$$`` = ``$``; any other ``$`` is an error."""
    parts: list[bytes | int] = []
    lit = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c != 0x24:
            lit.append(c)
            i += 1
            continue
        if text[i + 1 : i + 2] == b"$":
            lit.append(0x24)
            i += 2
            continue
        end = text.find(b"}", i)
        digits = text[i + 2 : end] if text[i + 1 : i + 2] == b"{" and end > 0 else b""
        if not digits.isdigit() or len(digits) > 1:
            raise ArgumentProblem(
                f"invalid {what}: write ${{1}} ... ${{8}} for captures and $$ for a literal $",
                index,
            )
        n = int(digits)
        if n > 8:
            raise ArgumentProblem(f"invalid {what}: at most 8 captures (${{1}}..${{8}})", index)
        if n > max_ref:
            raise ArgumentProblem(
                f"invalid {what}: ${{{n}}} refers to a capture the pattern does not have "
                f"(it has {max_ref})",
                index,
            )
        if lit:
            parts.append(bytes(lit))
            lit = bytearray()
        parts.append(n)
        i = end + 1
    if lit:
        parts.append(bytes(lit))
    return parts


class _RegexReplace(_Function):
    name = "regex_replace"
    signature = "regex_replace(source String, regex String literal, replacement String literal) -> String"
    summary = "Replace the first match; ${1}..${8} insert captures, $$ a literal $."
    min_args = max_args = 3
    once_per_expression = True
    uses_regex = True  # counted against the rule's regex limit by the checker

    def _compile(self, args: Sequence[ArgInfo]) -> CompiledRegex:
        pattern = args[1].value
        assert isinstance(pattern, bytes)
        try:
            return compile_regex(pattern_text(pattern))  # cached: check() and bind() share it
        except RegexError as exc:
            raise ArgumentProblem(f"{exc.message} (at offset {exc.offset} of the regex)", 1) from None

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        self._type(args, 0, BYTES, what="source")
        self._type(args, 1, BYTES, what="regex")
        self._literal(args, 1, "regex")
        self._type(args, 2, BYTES, what="replacement")
        repl = self._literal(args, 2, "replacement")
        rx = self._compile(args)
        _parse_replacement(repl, rx.groups, "replacement", 2)  # type: ignore[arg-type]
        return BYTES

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        rx = self._compile(args)
        parts = _parse_replacement(args[2].value, rx.groups, "replacement", 2)  # type: ignore[arg-type]
        first_match = rx.first_match

        def regex_replace(s: object, _p: object = None, _r: object = None) -> object:
            if s is MISSING:
                return MISSING
            spans = first_match(s)  # type: ignore[arg-type]
            if spans is None:
                return s
            out = bytearray(s[: spans[0][0]])  # type: ignore[index]
            for p in parts:
                if isinstance(p, int):
                    a, b = spans[p]
                    if a >= 0:
                        out += s[a:b]  # type: ignore[index]
                else:
                    out += p
            out += s[spans[0][1] :]  # type: ignore[index]
            return bytes(out)

        return regex_replace


class _WildcardReplace(_Function):
    name = "wildcard_replace"
    signature = ('wildcard_replace(source String field, pattern String literal, '
                 'replacement String literal [, flags "s" literal]) -> String')
    summary = "If the whole source matches the wildcard, build the replacement from ${1}..${8}."
    min_args = 3
    max_args = 4
    once_per_expression = True

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        self._type(args, 0, BYTES, what="source")
        self._field_like(args, 0, "source")
        self._type(args, 1, BYTES, what="pattern")
        pattern = self._literal(args, 1, "pattern")
        self._type(args, 2, BYTES, what="replacement")
        repl = self._literal(args, 2, "replacement")
        if len(args) == 4:
            self._type(args, 3, BYTES, what="flags")
            flags = self._literal(args, 3, "flags")
            if flags not in (b"", b"s"):
                raise ArgumentProblem(
                    'the flags of wildcard_replace() must be "s" (case-sensitive) or ""', 3
                )
        try:
            parsed = parse_wildcard(pattern)  # type: ignore[arg-type]
        except WildcardError as exc:
            raise ArgumentProblem(f"{exc.message} (at offset {exc.offset} of the pattern)", 1) from None
        _parse_replacement(repl, parsed.stars, "replacement", 2)  # type: ignore[arg-type]
        return BYTES

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        case_sensitive = len(args) == 4 and args[3].value == b"s"
        pattern = args[1].value
        captures_of = wildcard_captures(pattern, case_sensitive=case_sensitive)  # type: ignore[arg-type]
        parts = _parse_replacement(
            args[2].value, parse_wildcard(pattern).stars, "replacement", 2  # type: ignore[arg-type]
        )

        def wildcard_replace(s: object, *_rest: object) -> object:
            if s is MISSING:
                return MISSING
            caps = captures_of(s)  # type: ignore[arg-type]
            if caps is None:
                return s
            return b"".join(
                (s if p == 0 else caps[p - 1]) if isinstance(p, int) else p  # type: ignore[misc]
                for p in parts
            )

        return wildcard_replace


class _RemoveQueryArgs(_Function):
    name = "remove_query_args"
    signature = "remove_query_args(query field, name1 String literal, ...) -> String"
    summary = "Remove every query parameter with one of the names; keep the rest in order."
    min_args = 2
    max_args = None
    FIELDS = ("http.request.uri.query", "raw.http.request.uri.query")

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        self._type(args, 0, BYTES, what="query")
        self._field(args, 0, "query")
        if args[0].field is not None and args[0].field not in self.FIELDS:
            raise ArgumentProblem(
                "the first argument of remove_query_args() must be http.request.uri.query "
                "or raw.http.request.uri.query",
                0,
            )
        for i in range(1, len(args)):
            self._type(args, i, BYTES, what="parameter name")
            self._literal(args, i, "parameter name")
        return BYTES

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        names = frozenset(a.value for a in args[1:])

        def remove_query_args(q: object, *_names: object) -> object:
            if q is MISSING:
                return MISSING
            kept = [p for p in q.split(b"&") if p.split(b"=", 1)[0] not in names]  # type: ignore[attr-defined]
            return b"&".join(kept)

        return remove_query_args


# --- url_decode ------------------------------------------------------------------------

_HEXVAL = {c: int(chr(c), 16) for c in b"0123456789abcdefABCDEF"}


def _url_decode_once(s: bytes, unicode: bool) -> bytes:
    """One pass: ``%XX`` → byte, ``+`` → space, and with ``unicode`` ``%uXXXX`` → UTF-8
    (a high+low surrogate pair of escapes combines). Malformed escapes stay as written."""
    if b"%" not in s and b"+" not in s:
        return s
    out = bytearray()
    i = 0
    n = len(s)
    hv = _HEXVAL
    while i < n:
        c = s[i]
        if c == 0x2B:  # +
            out.append(0x20)
            i += 1
        elif c == 0x25:  # %
            if i + 2 < n and s[i + 1] in hv and s[i + 2] in hv:
                out.append(hv[s[i + 1]] * 16 + hv[s[i + 2]])
                i += 3
                continue
            if unicode and s[i + 1 : i + 2] in (b"u", b"U"):
                cp = _hex4(s, i + 2)
                if cp is not None:
                    if 0xD800 <= cp < 0xDC00 and s[i + 6 : i + 8] in (b"%u", b"%U"):
                        low = _hex4(s, i + 8)
                        if low is not None and 0xDC00 <= low < 0xE000:
                            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00)
                            out += chr(cp).encode("utf-8")
                            i += 12
                            continue
                    if not 0xD800 <= cp < 0xE000:  # lone surrogates are left as written
                        out += chr(cp).encode("utf-8")
                        i += 6
                        continue
            out.append(c)
            i += 1
        else:
            out.append(c)
            i += 1
    return bytes(out)


def _hex4(s: bytes | bytearray, i: int) -> int | None:
    chunk = s[i : i + 4]
    if len(chunk) == 4 and all(b in _HEXVAL for b in chunk):
        return int(chunk, 16)
    return None


def _url_decode_repeat(s: bytes, unicode: bool) -> bytes:
    """``_url_decode_once`` applied until nothing changes, in linear time.

    Repeated passes cost O(n²) (``"%" + "25" * 8000 + "41"`` loses two bytes per pass).
    Instead each byte is appended to the output and every escape that now ends at the
    output's tail is decoded at once (its result may complete another escape: the tail
    is checked again). The result is the same: escapes (``%XX``, ``+``, ``%uXXXX``, a
    ``%uHIGH%uLOW`` pair) never overlap and decoding one leaves the others intact, so
    every order of decoding reaches the same text with no escape left, which is what
    the passes stop at (a property test compares the two). Each decoded escape shortens
    the output, so the total work is linear."""
    hv = _HEXVAL
    out = bytearray()
    for c in s:
        out.append(0x20 if c == 0x2B else c)
        while True:
            n = len(out)
            if n >= 3 and out[-3] == 0x25 and out[-2] in hv and out[-1] in hv:
                b = hv[out[-2]] * 16 + hv[out[-1]]
                del out[-3:]
                out.append(0x20 if b == 0x2B else b)
                continue
            if unicode and n >= 6 and out[-6] == 0x25 and out[-5] in (0x75, 0x55):
                cp = _hex4(out, n - 4)
                if cp is not None:
                    if not 0xD800 <= cp < 0xE000:
                        del out[-6:]
                        out += chr(cp).encode("utf-8")
                        # One byte of it can be ASCII ('%', a hex digit, '+'): re-check.
                        if cp == 0x2B:
                            out[-1] = 0x20
                        continue
                    if cp >= 0xDC00 and n >= 12 and out[-12] == 0x25 and out[-11] in (0x75, 0x55):
                        high = _hex4(out, n - 10)
                        if high is not None and 0xD800 <= high < 0xDC00:
                            del out[-12:]
                            out += chr(0x10000 + ((high - 0xD800) << 10) + (cp - 0xDC00)).encode()
            break
    return bytes(out)


def url_decode(s: bytes, *, repeat: bool = False, unicode: bool = False) -> bytes:
    """``url_decode`` for Python callers (the Rules function uses the same code)."""
    if repeat:
        return _url_decode_repeat(s, unicode)
    return _url_decode_once(s, unicode)


class _UrlDecode(_Function):
    name = "url_decode"
    signature = 'url_decode(source String field [, options literal: "r", "u", "ru"]) -> String'
    summary = "Decode %XX and + (r: repeat until stable, u: also %uXXXX)."
    min_args = 1
    max_args = 2

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        self._type(args, 0, BYTES, what="source")
        self._field_like(args, 0, "source")
        if len(args) == 2:
            self._type(args, 1, BYTES, what="options")
            opts = self._literal(args, 1, "options")
            assert isinstance(opts, bytes)
            if set(opts) - set(b"ru") or len(set(opts)) != len(opts):
                raise ArgumentProblem(
                    'the options of url_decode() must be a combination of "r" (repeat) and '
                    f'"u" (%uXXXX), got "{opts.decode("latin-1")}"',
                    1,
                )
        return BYTES

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        opts = args[1].value if len(args) == 2 else b""
        repeat, unicode = b"r" in opts, b"u" in opts  # type: ignore[operator]

        def decode(s: object, _o: object = None) -> object:
            if s is MISSING:
                return MISSING
            return url_decode(s, repeat=repeat, unicode=unicode)  # type: ignore[arg-type]

        return decode


# --- uuidv4, HMAC, bit_slice -------------------------------------------------------------


def _uuidv4(seed: bytes) -> bytes:
    raw = bytearray(seed[:16] if len(seed) >= 16 else hashlib.sha256(seed).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}".encode("ascii")


class _Uuidv4(_Function):
    name = "uuidv4"
    signature = "uuidv4(source Bytes) -> String"
    summary = "A version-4 UUID from the first 16 seed bytes (SHA-256 of the seed if shorter)."
    min_args = max_args = 1

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        self._type(args, 0, BYTES, what="source")
        return BYTES

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        return _propagating1(_uuidv4)


def split_hmac_token(token: bytes, separator_length: int) -> tuple[bytes, bytes, bytes] | None:
    """Split ``<message><separator><10-digit timestamp>-<mac>`` as the pattern
    ``(.+)(.*)(\\d{10})-(.{43,})`` does (greedy: the last position that fits), returning
    ``(message, timestamp, mac)``."""
    n = len(token)
    i = n - 43 - 11  # start of the timestamp for the shortest MAC
    while i >= 1 + separator_length:
        if token[i + 10] == 0x2D and token[i : i + 10].isdigit():
            return token[: i - separator_length], token[i : i + 10], token[i + 11 :]
        i -= 1
    return None


def _percent_unescape_mac(mac: bytes) -> bytes:
    return (
        mac.replace(b"%2F", b"/").replace(b"%2f", b"/")
        .replace(b"%2B", b"+").replace(b"%2b", b"+")
        .replace(b"%3D", b"=").replace(b"%3d", b"=")
    )


class _TimedHmac(_Function):
    name = "is_timed_hmac_valid_v0"
    signature = ("is_timed_hmac_valid_v0(key String literal, message_mac String, ttl Integer literal, "
                 'current_timestamp Integer [, separator_length Integer literal [, flags "s" literal]]) -> Boolean')
    summary = "Validate <message><separator><timestamp>-<HMAC-SHA256 Base64> against the key and TTL."
    min_args = 4
    max_args = 6

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        self._type(args, 0, BYTES, what="key")
        self._literal(args, 0, "key")
        self._type(args, 1, BYTES, what="MessageMAC")
        self._type(args, 2, INT, what="ttl")
        ttl = self._literal(args, 2, "ttl")
        if not isinstance(ttl, int) or ttl < 0:
            raise ArgumentProblem("the ttl of is_timed_hmac_valid_v0() must be 0 or more seconds", 2)
        self._type(args, 3, INT, what="current timestamp")
        if len(args) >= 5:
            self._type(args, 4, INT, what="separator length")
            sep = self._literal(args, 4, "separator length")
            if not isinstance(sep, int) or not 0 <= sep <= 4096:
                raise ArgumentProblem("the separator length must be between 0 and 4096", 4)
        if len(args) == 6:
            self._type(args, 5, BYTES, what="flags")
            if self._literal(args, 5, "flags") not in (b"", b"s"):
                raise ArgumentProblem(
                    'the flags of is_timed_hmac_valid_v0() must be "s" (URL-safe Base64 without padding) or ""',
                    5,
                )
        return BOOL

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        key = args[0].value
        ttl = int(args[2].value)  # type: ignore[call-overload]
        sep_len = int(args[4].value) if len(args) >= 5 else 0  # type: ignore[call-overload]
        urlsafe = len(args) == 6 and args[5].value == b"s"
        assert isinstance(key, bytes)

        def valid(_key: object, token: object, _ttl: object, now: object, *_rest: object) -> object:
            if not isinstance(token, bytes) or not isinstance(now, int) or isinstance(now, bool):
                return False  # a missing token or time is not a valid token
            parts = split_hmac_token(token, sep_len)
            if parts is None:
                return False
            message, stamp, mac = parts
            digest = hmac.new(key, message + stamp, hashlib.sha256).digest()
            if urlsafe:
                expected = base64.urlsafe_b64encode(digest).rstrip(b"=")
                given = mac
            else:
                expected = base64.b64encode(digest)
                given = _percent_unescape_mac(mac)
            if not hmac.compare_digest(expected, given):
                return False
            return now < int(stamp) + ttl

        return valid


# --- 2026 additions: coalesce, hash_in_range, trim (Cloudflare's changelog, 2026-10) -------


class _Coalesce(_Function):
    name = "coalesce"
    signature = "coalesce(v1, v2, ...) -> the arguments' type (all of one type)"
    summary = "The first argument that is not missing; missing when all are."
    min_args = 2  # our choice (unspecified): one argument would be the argument itself
    max_args = None

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        first = args[0].type
        for i, a in enumerate(args[1:], 1):
            if a.type != first:  # our choice (unspecified): one type, as for concat()
                raise ArgumentProblem(
                    f"all arguments of coalesce() must have one type: the first is "
                    f"{_tname(first)}, the {_nth(i)} is {_tname(a.type)}",
                    i,
                )
        return first

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        if len(args) == 2:
            return lambda a, b: b if a is MISSING else a

        def coalesce(*values: object) -> object:
            for v in values:
                if v is not MISSING:
                    return v
            return MISSING

        return coalesce


class _HashInRange(_Function):
    name = "hash_in_range"
    signature = ("hash_in_range(min Integer literal, max Integer literal, source1, ...) "
                 "-> Integer in [min, max]")
    summary = "A stable bucket in [min, max] for the source values (BLAKE2b-64, multiply-shift)."
    min_args = 3
    max_args = None

    def check(self, args: Sequence[ArgInfo]) -> Type:
        # The sources come third, so the base rule "[*] only in the first argument"
        # does not fit; the checker already refuses [*] anywhere but argument 0.
        self._arity(args)
        return self._check(args)

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        bounds = []
        for i, what in ((0, "minimum"), (1, "maximum")):
            self._type(args, i, INT, what=what)
            bounds.append(self._literal(args, i, what))  # our choice (unspecified): literal bounds
        low, high = bounds
        if low > high:  # type: ignore[operator]
            raise ArgumentProblem(
                f"the minimum of hash_in_range() ({low}) is greater than its maximum ({high})", 1
            )
        for i in range(2, len(args)):
            if args[i].type not in (BYTES, INT, IP, BOOL):
                raise ArgumentProblem(
                    f"the sources of hash_in_range() must be Strings, Integers, IPs or "
                    f"Booleans, found {_tname(args[i].type)}",
                    i,
                )
        return INT

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        low, high = int(args[0].value), int(args[1].value)  # type: ignore[call-overload]
        span = high - low + 1
        if len(args) == 3 and args[2].type == BYTES:
            # The common case (one String source, e.g. cf.random_seed) without the loop;
            # the same encoding as hashing.encode_sources.
            header = _STRING_HEADER
            blake2b = hashlib.blake2b
            from_bytes = int.from_bytes

            def hash_one(_lo: object, _hi: object, v: object) -> object:
                if v is MISSING:
                    return MISSING
                digest = blake2b(header(1, len(v)) + v, digest_size=8).digest()  # type: ignore[arg-type,operator]
                return low + ((from_bytes(digest, "big") * span) >> 64)

            return hash_one

        def hash_in_range(_lo: object, _hi: object, *sources: object) -> object:
            if MISSING in sources:  # our choice (unspecified): missing source, missing result
                return MISSING
            return bucket(stable_hash64(sources), low, high)

        return hash_in_range


# Rust's u8::is_ascii_whitespace (space, TAB, LF, FF, CR; not VT): Cloudflare's engine is
# Rust, and the docs say only "ASCII whitespace" (the exact set is our choice).
_ASCII_WHITESPACE = b" \t\n\x0c\r"


class _Trim(_Function):
    """``trim`` / ``trim_start`` / ``trim_end``: ``method`` is the ``bytes`` method."""

    min_args = 1
    max_args = 2
    method: Callable[[bytes, bytes], bytes]

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        self._type(args, 0, BYTES, what="value")
        if len(args) == 2:
            self._type(args, 1, BYTES, what="bytes to remove")
            chars = self._literal(args, 1, "bytes to remove")  # documented: "a constant string"
            if chars == b"":
                raise ArgumentProblem(
                    f"the bytes to remove of {self.name}() cannot be empty (omit the "
                    "argument to remove ASCII whitespace)",
                    1,
                )
        return BYTES

    def bind(self, args: Sequence[ArgInfo]) -> Impl:
        chars = args[1].value if len(args) == 2 else _ASCII_WHITESPACE
        method = self.method

        def trim(s: object, _chars: object = None) -> object:
            return MISSING if s is MISSING else method(s, chars)  # type: ignore[arg-type]

        return trim


class _TrimBoth(_Trim):
    name = "trim"
    signature = "trim(value String [, bytes String literal]) -> String"
    summary = "Remove the bytes (default: ASCII whitespace) from both ends."
    method = staticmethod(bytes.strip)


class _TrimStart(_Trim):
    name = "trim_start"
    signature = "trim_start(value String [, bytes String literal]) -> String"
    summary = "Remove the bytes (default: ASCII whitespace) from the start."
    method = staticmethod(bytes.lstrip)


class _TrimEnd(_Trim):
    name = "trim_end"
    signature = "trim_end(value String [, bytes String literal]) -> String"
    summary = "Remove the bytes (default: ASCII whitespace) from the end."
    method = staticmethod(bytes.rstrip)


class _BitSlice(_Function):
    name = "bit_slice"
    signature = "bit_slice(protocol String, offset_start Integer, offset_end Integer) -> Integer"
    summary = "Magic/Network Firewall only: not available in HTTP rules."
    min_args = 0
    max_args = None

    def _check(self, args: Sequence[ArgInfo]) -> Type:
        raise ArgumentProblem(
            "bit_slice is only available in Magic/Network Firewall rules", None
        )

    def bind(self, args: Sequence[ArgInfo]) -> Impl:  # pragma: no cover - check() rejects
        raise ArgumentProblem("bit_slice is only available in Magic/Network Firewall rules")


FUNCTIONS: Mapping[str, FunctionDef] = {
    f.name: f
    for f in (
        _BitSlice(),
        _Cidr(),
        _Cidr6(),
        _Coalesce(),
        _Concat(),
        _DecodeBase64(),
        _EncodeBase64(),
        _EndsWith(),
        _HashInRange(),
        _HasKey(),
        _HasValue(),
        _TimedHmac(),
        _Join(),
        _Len(),
        _LookupJsonInteger(),
        _LookupJsonString(),
        _Lower(),
        _RegexReplace(),
        _RemoveBytes(),
        _RemoveQueryArgs(),
        _Sha256(),
        _Split(),
        _StartsWith(),
        _Substring(),
        _ToString(),
        _TrimBoth(),
        _TrimEnd(),
        _TrimStart(),
        _Upper(),
        _UrlDecode(),
        _Uuidv4(),
        _WildcardReplace(),
    )
}
# is_jwt_present / is_jwt_valid with no token configuration registered: every id is a
# compile error naming it. A scheme with configurations has its own (Scheme.derive).
FUNCTIONS = {**FUNCTIONS, **jwt_functions()}
