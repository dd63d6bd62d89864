"""Per-request field values: ``Context`` and the boundary coercions.

Owns ``Context`` and ``make_coercer``.

Invariants:

* ``Context.values`` is a plain ``list`` with one slot per scheme field, pre-filled with
  the fields' defaults; compiled filters read ``values[field.index]``. It is a plain list
  (not a subclass) because CPython specialises indexing of exact lists.
* Every value stored through ``set``/``update``/``__setitem__`` has been coerced to the
  runtime representation of ``types.py`` (str -> UTF-8 bytes, str -> IP address with
  any IPv6 zone index dropped, list -> tuple, str map keys -> bytes). After that,
  evaluation never meets a value of the wrong type, which is why filters never raise for
  data.
* Wrong types and unknown names raise ``ContextError`` naming the field.
* ``update(mapping, only=names)`` reads only those keys from the mapping, one
  ``__getitem__`` each, so lazily computed mappings (``ClientAuth.fields()``) compute only
  what a filter reads.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from edgerules.lang.errors import ContextError
from edgerules.lang.types import (
    BOOL,
    BYTES,
    INT,
    INT64_MAX,
    INT64_MIN,
    IP,
    MISSING,
    Array,
    Map,
    Type,
)

if TYPE_CHECKING:
    from edgerules.lang.scheme import Scheme

__all__ = ["HEADER_MAPS", "UNREAD", "Context", "LazyMap", "make_coercer", "make_lazy_coercer"]

# Map fields whose keys are HTTP header names: matched case-insensitively (lowercased at
# the Context boundary; ``matchgen`` looks a rule's lowercase key up, then compares
# lowercased names).
HEADER_MAPS = frozenset(
    {"http.request.headers", "http.response.headers", "raw.http.response.headers"}
)

_IPV4 = ipaddress.IPv4Address
_IPV6 = ipaddress.IPv6Address


# A dotted-quad IPv4 address as ``ipaddress`` accepts it: four ASCII-decimal parts of 1–3
# digits, no leading zeros (the ≤ 255 check is ``inet_pton``'s).
_DOTTED_QUAD = re.compile(r"(?:0|[1-9][0-9]{0,2})(?:\.(?:0|[1-9][0-9]{0,2})){3}")


def _parse_ip(text: str) -> object:
    """``ipaddress.ip_address(text)``, with IPv4 text converted in C (~5× faster; the
    client address is coerced for every request). Accepts and rejects exactly what
    ``ipaddress`` does: anything but a strict dotted quad takes ``ipaddress``'s path."""
    if type(text) is str and _DOTTED_QUAD.fullmatch(text):
        try:
            return _IPV4(int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big"))
        except OSError:  # a part above 255
            pass
    return ipaddress.ip_address(text)


def _without_zone(addr: object) -> object:
    """``addr`` without an IPv6 zone index (``fe80::1%eth0`` -> ``fe80::1``). The zone is
    not part of the address, and ``ipaddress`` compares and prints it: kept, it would make
    ``ip.src eq fe80::1`` (compiled to compare the 128 bits) disagree with
    ``to_string(ip.src)`` and with comparisons of function results."""
    if type(addr) is _IPV6 and addr.scope_id is not None:  # type: ignore[attr-defined]
        return _IPV6(int(addr))  # type: ignore[arg-type]
    return addr


def _describe(value: object) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


def make_coercer(name: str, t: Type, optional: bool = False) -> Callable[[object], object]:
    """Return ``coerce(value) -> runtime value`` for a field ``name`` of type ``t``.

    The coercer raises ``ContextError`` naming the field for values of the wrong type.
    Optional fields also accept ``None``/``MISSING`` (stored as ``MISSING``).
    """
    inner = _coercer(name, t)
    if not optional:
        return inner

    def coerce_optional(value: object) -> object:
        if value is None or value is MISSING:
            return MISSING
        return inner(value)

    return coerce_optional


def _coercer(name: str, t: Type) -> Callable[[object], object]:
    def fail(value: object, expected: str) -> ContextError:
        return ContextError(f'field "{name}": expected {expected}, got {_describe(value)}')

    if t == BYTES:

        def coerce_bytes(value: object) -> object:
            # Exact type checks first: they are the common, cheap cases.
            if type(value) is bytes:
                return value
            if type(value) is str or isinstance(value, str):
                # U+DC80..U+DCFF stand for the bytes 0x80..0xFF (surrogateescape, as
                # Python decodes undecodable bytes); other lone surrogates are errors.
                try:
                    return value.encode("utf-8", "surrogateescape")  # type: ignore[union-attr]
                except UnicodeEncodeError:
                    raise fail(value, "a UTF-8 encodable string") from None
            if isinstance(value, (bytes, bytearray, memoryview)):
                return bytes(value)
            raise fail(value, "String (str or bytes)")

        return coerce_bytes

    if t == INT:

        def coerce_int(value: object) -> object:
            if type(value) is int:
                if INT64_MIN <= value <= INT64_MAX:  # type: ignore[operator]
                    return value
                raise fail(value, "Int in the signed 64-bit range")
            if isinstance(value, int) and not isinstance(value, bool):
                return coerce_int(int(value))
            raise fail(value, "Int")

        return coerce_int

    if t == BOOL:

        def coerce_bool(value: object) -> object:
            if value is True or value is False:
                return value
            raise fail(value, "Bool (True or False)")

        return coerce_bool

    if t == IP:

        def coerce_ip(value: object) -> object:
            tv = type(value)
            if tv is _IPV4:
                return value
            if tv is _IPV6:
                return _without_zone(value)
            if isinstance(value, (str, bytes)):
                text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
                try:
                    return _without_zone(_parse_ip(text))
                except ValueError:
                    raise fail(value, "an IP address") from None
            # Subclasses become the exact class: compiled filters test ``type(x) is``.
            if isinstance(value, _IPV4):
                return _IPV4(int(value))
            if isinstance(value, _IPV6):
                return _IPV6(int(value))
            raise fail(value, "IP (str or ipaddress object)")

        return coerce_ip

    if isinstance(t, Array):
        elem = _coercer(f"{name}[]", t.element)

        fast = str.encode if t.element == BYTES else None

        def coerce_array(value: object) -> object:
            if isinstance(value, (list, tuple)):
                if fast is not None:
                    # The common case, a list of str: encode in C; anything else (bytes,
                    # wrong types, unencodable text) takes the checked path below.
                    try:
                        return tuple(map(fast, value))
                    except (TypeError, UnicodeEncodeError):
                        pass
                return tuple([elem(x) for x in value])
            raise fail(value, f"{t} (list or tuple)")

        return coerce_array

    if isinstance(t, Map):
        elem = _coercer(f"{name}[]", t.value)
        lower = name in HEADER_MAPS
        str_lists = t.value == Array(BYTES)

        def coerce_map(value: object) -> object:
            if type(value) is dict:
                # The common case without a call per entry: str keys, lists of str
                # values, no two spellings of one header name. Anything else (a value
                # that is not a list, bytes, a surrogate) leaves the comprehension short
                # or raises, and the loop below converts it or says what is wrong.
                try:
                    if str_lists:
                        out = {k.encode("utf-8", "surrogateescape").lower() if lower
                               else k.encode("utf-8", "surrogateescape"): tuple(map(_str_encode, v))
                               for k, v in value.items() if v.__class__ in _LIST_TYPES}
                    elif lower:
                        out = {k.encode("utf-8", "surrogateescape").lower(): elem(v)
                               for k, v in value.items()}
                    else:
                        out = {k.encode("utf-8", "surrogateescape"): elem(v)
                               for k, v in value.items()}
                    if len(out) == len(value):
                        return out
                except (AttributeError, TypeError, UnicodeEncodeError):
                    pass
            if not isinstance(value, Mapping):
                raise fail(value, f"{t} (dict)")
            out: dict[bytes, object] = {}
            for key, item in value.items():
                if type(key) is str:
                    bkey = key.encode("utf-8", "surrogateescape")
                elif type(key) is bytes:
                    bkey = key
                else:
                    raise fail(key, "str or bytes map keys")
                if lower:
                    # Header names are case-insensitive: lowercased here (ASCII, as
                    # Cloudflare does), so a rule's lowercase key finds "X-Env" too.
                    bkey = bkey.lower()
                    if bkey in out:
                        raise ContextError(
                            f'field "{name}": header name {bkey.decode("latin-1")!r} is given '
                            "twice (in two spellings); merge the values into one list"
                        )
                out[bkey] = elem(item)
            return out

        return coerce_map

    raise ContextError(f'field "{name}": unsupported type {t}')


def make_lazy_coercer(name: str, t: Type, optional: bool = False) -> Callable[[object], object]:
    """The coercer a lazily built Context uses: ``make_coercer``'s, except that a map
    becomes a ``LazyMap`` converting only the keys that are read."""
    full = make_coercer(name, t, optional)
    if not isinstance(t, Map) or optional:
        return full
    elem = _coercer(f"{name}[]", t.value)
    lower = name in HEADER_MAPS

    def coerce_lazy_map(value: object) -> object:
        if not isinstance(value, Mapping):
            return full(value)  # raises the error
        return LazyMap(value, elem, lower, full)

    return coerce_lazy_map


class LazyMap(dict):
    """A map field of a lazily built Context, for generated code only: the dict holds
    the entries converted so far; ``fetch(key)`` converts one entry from the raw mapping
    (a rule reads one header, not twenty) and stores it, so the next ``get`` is a plain
    dict lookup. An absent key is stored as ``()`` (what ``[*]`` of a missing value
    iterates). ``full()`` is the whole converted map (``make_coercer``'s checks);
    ``Context.__getitem__`` and ``Context.values`` hand out only that, never this
    object. Header maps match names case-insensitively: a key with an uppercase ASCII
    letter is never found (the whole map's keys are lowercased), a lowercase one finds
    any spelling."""

    __slots__ = ("_elem", "_lower", "_raw", "_whole")

    def __init__(self, raw: Mapping, elem: Callable[[object], object], lower: bool,
                 whole: Callable[[object], object]) -> None:
        super().__init__()
        self._raw = raw
        self._elem = elem
        self._lower = lower
        self._whole = whole

    def fetch(self, key: bytes) -> object:
        """``self[key]`` converted from the raw mapping, or ``()`` when absent."""
        if self._lower and key != key.lower():
            return ()
        raw = self._raw
        x = raw.get(key.decode("utf-8", "surrogateescape"), _ABSENT)
        if x is _ABSENT:
            x = raw.get(key, _ABSENT)
            if x is _ABSENT and self._lower:
                for k, v in raw.items():
                    name = k.encode("utf-8", "surrogateescape") if isinstance(k, str) else k
                    if isinstance(name, bytes) and name.lower() == key:
                        x = v
                        break
        value = () if x is _ABSENT else self._elem(x)
        dict.__setitem__(self, key, value)
        return value

    def full(self) -> dict:
        """The whole map, converted and checked."""
        return self._whole(self._raw)  # type: ignore[return-value]


_str_encode = str.encode
_LIST_TYPES = (list, tuple)


class _Unread:
    """The marker of a slot a lazily built Context has not read yet."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNREAD"


UNREAD = _Unread()
_ABSENT = object()


class Context:
    """The values of one request for one scheme (a flat slot list).

    ``scheme.context(mapping)`` converts and checks every given field at once (an
    unknown name or a wrong type is a ``ContextError`` right there); with ``only`` just
    those fields. ``scheme.context(mapping, lazy=True)`` keeps the mapping instead, and
    a field is read (one ``mapping.get``), converted and stored when a filter first
    reads it — a map only under the key read — so the Context costs what the filters
    read, and a bad value is reported when it is read. ``values`` (what the closure
    compiler and the ruleset evaluator read) converts every given field of a lazy
    Context first.

    >>> from edgerules.lang.scheme import Scheme
    >>> from edgerules.lang.types import BYTES, BOOL
    >>> ctx = Scheme([("http.host", BYTES), ("ssl", BOOL)]).context({"http.host": "a.com"})
    >>> ctx["http.host"], ctx["ssl"]
    (b'a.com', False)
    """

    __slots__ = ("_src", "_strict", "_v", "scheme")

    def __init__(
        self,
        scheme: Scheme,
        values: Mapping[str, object] | None = None,
        *,
        only: Iterable[str] | None = None,
        strict: bool = True,
        lazy: bool = False,
    ) -> None:
        self.scheme = scheme
        self._strict = strict
        if lazy and values and only is None:
            if values.__class__ is not dict and not isinstance(values, Mapping):
                raise ContextError(
                    f"expected a mapping of field names to values, got {type(values).__name__}"
                )
            self._v: list[object] = list(scheme._unread)
            self._src: Mapping[str, object] | None = values
            return
        self._v = list(scheme._defaults)
        self._src = None
        if values:
            self.update(values, only=only, strict=strict)

    @classmethod
    def _of_slots(cls, scheme: Scheme, values: list[object]) -> Context:
        """``Scheme.context_from_slots``: a filled Context over ``values`` (coerced)."""
        ctx = cls.__new__(cls)
        ctx.scheme = scheme
        ctx._strict = True
        ctx._src = None
        ctx._v = values
        return ctx

    @property
    def values(self) -> list[object]:
        """The slot list (``values[field.index]``), every given field converted."""
        if self._src is not None:
            self._materialize()
        return self._v

    def _materialize(self) -> None:
        """Convert every field of the lazy source (unknown keys raise unless not
        strict), then forget the source."""
        src = self._src
        assert src is not None
        saved = list(self._v)
        self._v[:] = self.scheme._defaults
        self._src = None
        try:
            self.update(src, strict=self._strict)
        except BaseException:
            self._src = src  # keep the Context as it was
            self._v[:] = saved
            raise

    @staticmethod
    def _load(ctx: Context, i: int) -> object:
        """Read slot ``i`` of a lazy Context from its source: the canonical name, else an
        alias, else the default (after checking the source's keys when strict)."""
        scheme = ctx.scheme
        src = ctx._src
        if src is None:  # pragma: no cover - slots of a filled Context are never UNREAD
            return ctx.values[i]
        fld = scheme._fields[i]
        raw = src.get(fld.name, _ABSENT)
        if raw is _ABSENT:
            for alias in scheme._aliases_of[i]:
                raw = src.get(alias, _ABSENT)
                if raw is not _ABSENT:
                    break
            else:
                if ctx._strict:
                    from edgerules.lang.matchgen import check_keys

                    check_keys(scheme, src)
                value = ctx._v[i] = fld.default
                return value
        value = ctx._v[i] = scheme._lazy_coercers[i](raw)
        return value

    def set(self, name: str, value: object) -> None:
        """Coerce and store ``value`` for field ``name`` (canonical name or alias).

        Raises:
            ContextError: unknown field or a value of the wrong type.
        """
        fld = self.scheme._by_name.get(name) if type(name) is str else None
        if fld is None:
            self.scheme.field(name)  # raises ContextError (a suggestion, or a non-str name)
            raise AssertionError  # pragma: no cover
        self.values[fld.index] = self.scheme._coercers[fld.index](value)  # (materialised)

    __setitem__ = set

    def __getitem__(self, name: str) -> object:
        i = self.scheme.field(name).index
        value = self._v[i]
        if value is UNREAD:
            value = Context._load(self, i)
        if value.__class__ is LazyMap:
            return value.full()  # type: ignore[attr-defined]
        return value

    def get(self, name: str, default: object = None) -> object:
        fld = self.scheme.get(name)
        return default if fld is None else self[fld.name]

    def update(
        self,
        mapping: Mapping[str, object],
        *,
        only: Iterable[str] | None = None,
        strict: bool = True,
    ) -> None:
        """Set every field of ``mapping`` — or, with ``only``, just those fields (each
        read with one ``mapping[name]``; absent names keep defaults).

        A field given under its canonical name and an alias takes the canonical name's
        value (every path resolves aliases so). With ``only``, a field absent under its
        canonical name is looked up under its aliases, and when one is absent the
        mapping's keys are checked: a name outside the scheme is a ``ContextError`` with
        a suggestion unless ``strict=False`` (without ``only`` every key is set, so an
        unknown one always raises)."""
        scheme = self.scheme
        by_name = scheme._by_name
        if only is None:
            values = self.values  # (a lazy Context is materialised first)
            coercers = scheme._coercers
            strings = scheme._string_slots
            for name, value in mapping.items():
                fld = by_name.get(name) if type(name) is str else None
                if fld is None:
                    if not strict and type(name) is str:
                        continue
                    scheme.field(name)  # raises ContextError with a suggestion
                if fld.name != name and fld.name in mapping:  # type: ignore[union-attr]
                    continue  # the canonical name wins over an alias
                i = fld.index  # type: ignore[union-attr]
                if value.__class__ is str and i in strings:
                    try:
                        values[i] = value.encode("utf-8", "surrogateescape")  # type: ignore[attr-defined]
                        continue
                    except UnicodeEncodeError:
                        pass  # the coercer reports it
                values[i] = coercers[i](value)
            return
        # ``set`` inline (this runs once per field per request).
        coercers = scheme._coercers
        aliases_of = scheme._aliases_of
        values = self.values  # (a lazy Context is materialised first)
        seen: set[int] = set()
        absent = False
        for name in only:
            fld = by_name.get(name) if type(name) is str else None
            if fld is None:
                scheme.field(name)  # raises ContextError with a suggestion
                continue  # pragma: no cover
            index = fld.index
            if index in seen:
                continue
            seen.add(index)
            try:
                value = mapping[fld.name]
            except KeyError:
                for alias in aliases_of[index]:
                    try:
                        value = mapping[alias]
                        break
                    except KeyError:
                        pass
                else:
                    absent = True
                    continue
            values[index] = coercers[index](value)
        if absent and strict:
            from edgerules.lang.matchgen import check_keys

            check_keys(scheme, mapping)

    def reset(self, name: str) -> None:
        """Give field ``name`` its default again."""
        fld = self.scheme.field(name)
        self.values[fld.index] = fld.default

    def as_dict(self) -> dict[str, object]:
        """``{canonical name: value}`` of every field (for debugging and traces)."""
        return {f.name: self.values[f.index] for f in self.scheme.fields}

    def __repr__(self) -> str:
        changed = {
            f.name: self.values[f.index]
            for f in self.scheme.fields
            if self.values[f.index] is not f.default and self.values[f.index] != f.default
        }
        return f"Context({changed!r})"
