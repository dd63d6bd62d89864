"""Value types of the Rules language and their run-time representation.

This module owns the type vocabulary shared by the scheme, the checker, the compiler and
the built-in functions. It does no parsing and no evaluation.

Run-time representation (an invariant every other module relies on):

* ``BYTES`` (the language's String/Bytes; one type in Cloudflare's language) is Python
  ``bytes``. Strings given by callers as ``str`` are encoded as UTF-8 once, at the
  Context boundary. Using bytes gives Cloudflare's byte semantics for free: ``len`` counts
  bytes, ``bytes.lower()``/``upper()`` touch ASCII letters only, regexes run on raw bytes.
* ``INT`` is a Python ``int`` within the signed 64-bit range.
* ``BOOL`` is a Python ``bool``.
* ``IP`` is an ``ipaddress.IPv4Address`` or ``ipaddress.IPv6Address``.
* ``Array(T)`` is a ``tuple`` (or ``list``) of values of ``T``.
* ``Map(T)`` is a ``dict`` whose keys are ``bytes`` and whose values are of ``T``.
* ``MISSING`` is the single value of "no value" (absent map key, index out of range,
  function given a missing argument; https://developers.cloudflare.com/ruleset-engine/rules-language/values/). It is never a field's
  value in a Context for a non-optional field: absent fields take their type's default.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

__all__ = [
    "BOOL",
    "BOOL_ARRAY",
    "BYTES",
    "INT",
    "IP",
    "MISSING",
    "Array",
    "Map",
    "Missing",
    "PrimitiveType",
    "Type",
    "default_value",
]

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1


class Type:
    """Base class of every language type; instances are immutable and hashable."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class PrimitiveType(Type):
    """A scalar type: Bytes (String), Int, Bool or IP."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Array(Type):
    """``Array<element>``: produced by fields and functions only, never written."""

    element: Type

    def __str__(self) -> str:
        return f"Array<{self.element}>"


@dataclass(frozen=True, slots=True)
class Map(Type):
    """``Map<value>``: keys are always strings (bytes)."""

    value: Type

    def __str__(self) -> str:
        return f"Map<{self.value}>"


# The docs say "String"; the engine says "Bytes". They are one type,
# and messages call it String because that is the word users read in the docs.
BYTES: Final = PrimitiveType("String")
INT: Final = PrimitiveType("Int")
BOOL: Final = PrimitiveType("Bool")
IP: Final = PrimitiveType("IP")
# The type of element-wise predicates (``x[*] eq …``) and of Boolean-array fields.
BOOL_ARRAY: Final = Array(BOOL)


class Missing:
    """The type of ``MISSING``; a singleton that is falsy and prints as ``MISSING``."""

    __slots__ = ()
    _instance: Missing | None = None

    def __new__(cls) -> Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Final = Missing()


def default_value(t: Type) -> object:
    """The value an absent field of type ``t`` takes (as at Cloudflare: unset Boolean is
    false, unset String is ""); Int 0; IP the unspecified address 0.0.0.0; empty
    collections."""
    if t is BYTES or t == BYTES:
        return b""
    if t == INT:
        return 0
    if t == BOOL:
        return False
    if t == IP:
        return ipaddress.IPv4Address(0)
    if isinstance(t, Array):
        return ()
    if isinstance(t, Map):
        return {}
    raise TypeError(f"no default for type {t!r}")
