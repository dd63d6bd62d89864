"""Schemes: the set of fields (and functions) an expression may use.

Owns ``Field``, ``Scheme`` and ``default_scheme()``.

Invariants:

* A scheme is immutable once built. Each field gets a dense slot ``index`` (0..n-1), its
  type's default (``types.default_value``) and a coercer used by ``Context`` at the
  boundary. Compiled filters read ``values[index]`` and nothing else.
* Aliases (``ip.geoip.country`` -> ``ip.src.country``) resolve to the *same* ``Field``
  object, so an expression written with either name reads the same slot; ``Field.name``
  is always the canonical name.
* ``optional`` fields may hold ``MISSING`` (an absent optional field is one source of
  missing values in Cloudflare's language); every other field always holds a value of its type. The Cloudflare scheme has
  no optional fields (unset fields take their type's default).
* Functions default to ``edgerules.lang.functions.FUNCTIONS``, imported lazily on first use so
  a scheme can be built (and tested) without the function library. Token configurations
  (``token_configs``) replace its ``is_jwt_present``/``is_jwt_valid`` with ones that know
  them (``edgerules.lang.jwt``).
* ``limits`` (``ExpressionLimits``, default Cloudflare's) bound every expression compiled
  against the scheme; ``derive`` makes a scheme with the same fields and other limits or
  token configurations (filters and contexts of the two are not interchangeable).
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from edgerules.lang.errors import ContextError, SchemeError
from edgerules.lang.limits import DEFAULT_LIMITS, ExpressionLimits
from edgerules.lang.types import BYTES, MISSING, Type, default_value

if TYPE_CHECKING:
    from edgerules.lang.context import Context
    from edgerules.lang.jwt import TokenConfig, TokenConfigs

__all__ = ["Field", "Scheme", "default_scheme"]

# Quantifiers are syntax, not library functions, but users call them like functions, so
# suggestions consider them too.
_SYNTAX_FUNCTIONS = ("any", "all")


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a scheme: canonical ``name``, ``type``, dense slot ``index``, the value
    an absent field takes (``default``) and whether it may be genuinely absent."""

    name: str
    type: Type
    index: int
    default: object = field(compare=False)
    optional: bool = False


class Scheme:
    """An immutable catalogue of fields (with aliases) and functions.

    Args:
        fields: ``(name, type)`` pairs or a ``{name: type}`` mapping, in slot order.
        aliases: ``{alias: canonical name}``; the alias reads the canonical field's slot.
        functions: ``{name: FunctionDef}``; ``None`` means ``edgerules.lang.functions.FUNCTIONS``.
        optional: names of fields that may be absent (hold ``MISSING``) instead of taking
            their default.
        limits: the limits of an expression (default: Cloudflare's 4,096 characters,
            128 levels, 64 regexes, 10,000 set items).
        token_configs: token configurations for ``is_jwt_present``/``is_jwt_valid``
            (a ``TokenConfigs`` or ``TokenConfig``s; default: none).

    Raises:
        SchemeError: duplicate or malformed names, aliases to unknown fields, bad types.
    """

    __slots__ = (
        "__weakref__",
        "_aliases",
        "_aliases_of",
        "_by_name",
        "_check_cache",
        "_coercers",
        "_defaults",
        "_fields",
        "_functions",
        "_lazy_coercers",
        "_limits",
        "_names",
        "_string_slots",
        "_token_configs",
        "_unread",
    )

    def __init__(
        self,
        fields: Iterable[tuple[str, Type]] | Mapping[str, Type],
        *,
        aliases: Mapping[str, str] | None = None,
        functions: Mapping[str, Any] | None = None,
        optional: Iterable[str] = (),
        limits: ExpressionLimits | None = None,
        token_configs: TokenConfigs | Iterable[TokenConfig] | None = None,
    ) -> None:
        from edgerules.lang.context import make_coercer, make_lazy_coercer

        items = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
        optional_set = set(optional)
        by_name: dict[str, Field] = {}
        out: list[Field] = []
        for pos, item in enumerate(items):
            try:
                name, ftype = item
            except (TypeError, ValueError):
                raise SchemeError(f"field #{pos} must be a (name, type) pair, got {item!r}") from None
            if not isinstance(name, str) or not name or not isinstance(ftype, Type):
                raise SchemeError(f"bad field definition {item!r}")
            if name in by_name:
                raise SchemeError(f'duplicate field "{name}"')
            try:
                default = default_value(ftype)
            except TypeError as exc:
                raise SchemeError(f'field "{name}": {exc}') from None
            if name in optional_set:
                default = MISSING  # an absent optional field is missing, not defaulted
            fld = Field(name, ftype, len(out), default, name in optional_set)
            by_name[name] = fld
            out.append(fld)
        unknown_optional = optional_set - by_name.keys()
        if unknown_optional:
            raise SchemeError(f"optional names unknown fields: {sorted(unknown_optional)}")
        for alias, target in (aliases or {}).items():
            if alias in by_name:
                raise SchemeError(f'alias "{alias}" collides with a field')
            if target not in by_name:
                raise SchemeError(f'alias "{alias}" points to unknown field "{target}"')
            by_name[alias] = by_name[target]
        self._fields: tuple[Field, ...] = tuple(out)
        self._by_name: dict[str, Field] = by_name
        # Built once: ``aliases`` is read per matches()/context() compile and per trace.
        self._aliases: Mapping[str, str] = MappingProxyType(
            {n: f.name for n, f in by_name.items() if n != f.name}
        )
        # Per slot: the field's aliases, in declaration order (read when the canonical
        # name is absent).
        self._aliases_of: tuple[tuple[str, ...], ...] = tuple(
            tuple(a for a, c in self._aliases.items() if c == f.name) for f in out
        )
        # The checker's per-scheme table (name -> (Field, static Info)), filled on use.
        self._check_cache: dict[str, Any] = {}
        self._names: tuple[str, ...] = tuple(by_name)
        self._defaults: tuple[object, ...] = tuple(f.default for f in out)
        from edgerules.lang.context import UNREAD

        self._unread: tuple[object, ...] = (UNREAD,) * len(out)  # a lazy Context's slots
        self._coercers: tuple[Callable[[object], object], ...] = tuple(
            make_coercer(f.name, f.type, f.optional) for f in out
        )
        # Non-optional String slots (Context.update converts str values inline).
        self._string_slots: frozenset[int] = frozenset(
            f.index for f in out if f.type == BYTES and not f.optional
        )
        # A lazy Context's: maps convert only the keys a rule reads.
        self._lazy_coercers: tuple[Callable[[object], object], ...] = tuple(
            make_lazy_coercer(f.name, f.type, f.optional) for f in out
        )
        self._limits = _check_limits(limits)
        self._token_configs = _token_registry(token_configs)
        self._functions = None if functions is None else self._with_tokens(dict(functions))

    # -- fields --------------------------------------------------------------------------

    @property
    def fields(self) -> tuple[Field, ...]:
        """Every field in slot order (aliases not repeated)."""
        return self._fields

    @property
    def aliases(self) -> Mapping[str, str]:
        """``{alias: canonical name}`` (read-only, built once)."""
        return self._aliases

    def get(self, name: str) -> Field | None:
        """The field called ``name`` (canonical or alias), or ``None``."""
        return self._by_name.get(name)

    def field(self, name: str) -> Field:
        """The field called ``name``.

        Raises:
            ContextError: unknown name (with a did-you-mean suggestion). Expressions
                never reach this: the checker reports unknown names as RuleTypeError.
        """
        fld = self._by_name.get(name) if type(name) is str else None
        if fld is None:
            if not isinstance(name, str):
                raise ContextError(
                    f"field names are strings, got {type(name).__name__} {name!r:.40}"
                )
            hint = self.suggest_field(name)
            extra = f'; did you mean "{hint}"?' if hint else ""
            raise ContextError(f'unknown field "{name}"{extra}')
        return fld

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Field]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"<Scheme with {len(self._fields)} fields>"

    def suggest_field(self, name: str) -> str | None:
        """The closest known field name (difflib), or ``None``."""
        return _closest(name, self._names)

    # -- functions -----------------------------------------------------------------------

    @property
    def functions(self) -> Mapping[str, Any]:
        """``{name: FunctionDef}`` (the library's ``FUNCTIONS`` unless given)."""
        if self._functions is None:
            from edgerules.lang.functions import FUNCTIONS

            # Resolved once; FUNCTIONS is an immutable module constant.
            self._functions = self._with_tokens(dict(FUNCTIONS))
        return self._functions

    def _with_tokens(self, functions: dict[str, Any]) -> dict[str, Any]:
        """``functions`` with ``is_jwt_*`` bound to this scheme's token configurations."""
        if self._token_configs is not None:
            from edgerules.lang.jwt import jwt_functions

            functions.update(jwt_functions(self._token_configs))
        return functions

    def function(self, name: str) -> Any | None:
        """The function called ``name`` or ``None``."""
        return self.functions.get(name)

    def suggest_function(self, name: str) -> str | None:
        """The closest known function name (difflib), or ``None``."""
        return _closest(name, (*self.functions, *_SYNTAX_FUNCTIONS))

    # -- limits and derived schemes ------------------------------------------------------

    @property
    def limits(self) -> ExpressionLimits:
        """The limits of an expression compiled against this scheme."""
        return self._limits

    @property
    def token_configs(self) -> TokenConfigs | None:
        """The token configurations of ``is_jwt_*`` (None: none registered)."""
        return self._token_configs

    def derive(
        self,
        *,
        limits: ExpressionLimits | None = None,
        token_configs: TokenConfigs | Iterable[TokenConfig] | None = None,
    ) -> Scheme:
        """A scheme with the same fields, aliases and functions and other limits and/or
        token configurations (what is not given is kept).

        >>> from edgerules.lang.limits import ExpressionLimits
        >>> big = default_scheme().derive(limits=ExpressionLimits(max_length=20_000))
        >>> big.limits.max_length, len(big) == len(default_scheme())
        (20000, True)
        """
        new = object.__new__(Scheme)
        for name in ("_aliases", "_aliases_of", "_by_name", "_coercers", "_defaults",
                     "_fields", "_lazy_coercers", "_names", "_string_slots", "_unread"):
            setattr(new, name, getattr(self, name))
        new._check_cache = {}
        new._limits = self._limits if limits is None else _check_limits(limits)
        new._token_configs = (
            self._token_configs if token_configs is None else _token_registry(token_configs)
        )
        functions = self._functions
        new._functions = None if functions is None else new._with_tokens(dict(functions))
        return new

    # -- conveniences --------------------------------------------------------------------

    @property
    def defaults(self) -> tuple[object, ...]:
        """Every field's default, by slot (what a new ``Context`` starts from)."""
        return self._defaults

    def slots_for(
        self, names: Iterable[str], provided: Callable[[str], bool]
    ) -> tuple[tuple[str, int, Callable[[object], object]], ...]:
        """``(name, slot, coercer)`` for each slot that ``Context.update(mapping,
        only=names)`` would set from a mapping holding exactly the ``names`` for which
        ``provided`` is true: a slot's canonical name when it is such a name, else its
        first such alias (declaration order). For callers that fill a slot list
        themselves and build the Context with ``context_from_slots``."""
        by_name = self._by_name
        chosen: dict[int, str] = {}
        wanted = set(names)
        for name in sorted(wanted):
            fld = by_name.get(name) if type(name) is str else None
            if fld is None:
                self.field(name)  # raises ContextError with a suggestion
                continue  # pragma: no cover
            index = fld.index
            if index in chosen:
                continue
            for candidate in (fld.name, *self._aliases_of[index]):
                if candidate in wanted and provided(candidate):
                    chosen[index] = candidate
                    break
        return tuple((name, index, self._coercers[index]) for index, name in sorted(chosen.items()))

    def context_from_slots(self, values: list[object]) -> Context:
        """A ``Context`` over ``values`` as they are (no copy, no check): one slot per
        field, each its default or a value passed through the slot's coercer (see
        ``slots_for``)."""
        return _context_class()._of_slots(self, values)

    def context(
        self,
        values: Mapping[str, object] | None = None,
        *,
        only: Iterable[str] | None = None,
        strict: bool = True,
        lazy: bool = False,
    ) -> Context:
        """A new ``Context`` of this scheme, filled from ``values`` (only the ``only`` keys
        when given; ``strict=False`` ignores keys outside the scheme, see
        ``Context.update``; ``lazy=True`` converts a field only when a filter reads it,
        see ``Context``)."""
        return _context_class()(self, values, only=only, strict=strict, lazy=lazy)


def _check_limits(limits: object) -> ExpressionLimits:
    if limits is None:
        return DEFAULT_LIMITS
    if not isinstance(limits, ExpressionLimits):
        raise SchemeError(f"limits must be an ExpressionLimits, got {type(limits).__name__}")
    return limits


def _token_registry(configs: object) -> TokenConfigs | None:
    if configs is None:
        return None
    from edgerules.lang.jwt import TokenConfigs

    if isinstance(configs, TokenConfigs):
        return configs
    return TokenConfigs(configs)  # type: ignore[arg-type]


@functools.cache
def _context_class() -> type[Context]:
    from edgerules.lang.context import Context

    return Context


def _closest(name: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


@functools.cache
def default_scheme() -> Scheme:
    """Cloudflare's scheme (every field of Cloudflare's fields reference with its aliases), built once."""
    from edgerules.lang.fields import CLOUDFLARE_FIELDS, FIELD_ALIASES

    return Scheme(CLOUDFLARE_FIELDS, aliases=FIELD_ALIASES)
