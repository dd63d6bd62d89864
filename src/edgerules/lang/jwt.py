"""``is_jwt_present()`` / ``is_jwt_valid()``: token configurations and JWT verification.

Owns ``TokenSource``, ``TokenConfig``, ``TokenConfigs`` (the registry an embedding
application puts on a ``Scheme``) and the two ``FunctionDef``s (Cloudflare API Shield's JWT validation functions).

The functions take the id of a token configuration (Cloudflare's API Shield "token
configuration"): which issuer keys (JWKs) sign the tokens and where a request carries
one (a header or a cookie). They read the request's ``http.request.headers`` /
``http.request.cookies`` themselves: their ``reads()`` names those fields, the checker
resolves them and the compiler passes their values after the id.

Invariants:

* This is the ONLY module that imports PyJWT (the maintained JOSE library used to parse
  the keys and check signatures), and it does so lazily, when a configuration is built
  or a token verified, so importing the language core never loads it
  (tests/test_jwt.py checks both).
* Verification fails closed: any malformed token, unknown ``kid``, algorithm not matching
  the key, bad signature, non-numeric ``exp``/``nbf``, expired or not-yet-valid token is
  "not valid" (``False``), never an exception. A missing token is ``False`` for both
  functions (documented: "no token → false").
* Configurations are immutable; ``TokenConfigs`` is immutable once built. The only state
  is a bounded cache of signature results per configuration (the signature of a given
  token under given keys never changes; ``exp``/``nbf`` are checked on every call).

Choices on points Cloudflare leaves open (docs/functions.md): keys must be public JWKs with an ``alg`` among
Cloudflare's API Shield algorithms (RS256/384/512, PS256/384/512, ES256/384); the first
source (in configuration order) that holds a non-empty value is the token, read from the
first value of that header or cookie; a ``Bearer`` prefix (any case) is removed; ``exp``
and ``nbf`` are checked when present, with no leeway, against the registry's clock
(default ``time.time``): valid while ``nbf <= now < exp``.
"""

from __future__ import annotations

import difflib
import functools
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from edgerules.lang.errors import SchemeError
from edgerules.lang.types import BOOL, BYTES, Type

__all__ = ["ALGORITHMS", "TokenConfig", "TokenConfigs", "TokenSource", "jwt_functions"]

# Cloudflare API Shield's JWT validation algorithms (asymmetric only; no HS*, no "none").
ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"}
)
HEADERS_FIELD: Final = "http.request.headers"
COOKIES_FIELD: Final = "http.request.cookies"
_SIGNATURE_CACHE_SIZE: Final = 1024
_PRIVATE_JWK_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "k", "oth"})


@dataclass(frozen=True, slots=True)
class TokenSource:
    """Where a request carries the token: ``TokenSource("header", "Authorization")`` or
    ``TokenSource("cookie", "session")``. Header names are matched lowercased (the
    ``http.request.headers`` keys are lowercase); cookie names exactly."""

    kind: Literal["header", "cookie"]
    name: str

    def __post_init__(self) -> None:
        if self.kind not in ("header", "cookie"):
            raise SchemeError(f'a token source is a "header" or a "cookie", got {self.kind!r}')
        if not isinstance(self.name, str) or not self.name:
            raise SchemeError(f"a token source needs a {self.kind} name, got {self.name!r}")
        if self.kind == "header":
            object.__setattr__(self, "name", self.name.lower())

    @property
    def field(self) -> str:
        return HEADERS_FIELD if self.kind == "header" else COOKIES_FIELD


@dataclass(frozen=True)
class TokenConfig:
    """One token configuration.

    Args:
        id: what rules name in ``is_jwt_valid("<id>")`` (Cloudflare uses a UUID).
        keys: the issuer's public keys: a JWK Set (``{"keys": [...]}``), a list of JWKs,
            or its JSON text. Each JWK needs ``kty``, ``alg`` (one of ``ALGORITHMS``)
            and the public key members; a ``kid`` selects the key by the token's ``kid``.
        sources: where the token is read, in order (default: the ``Authorization``
            header).

    Raises:
        SchemeError: a malformed id, key set or source (checked when built).
    """

    id: str
    keys: Any
    sources: tuple[TokenSource, ...] = (TokenSource("header", "authorization"),)
    _verifier: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise SchemeError(f"a token configuration needs a non-empty id, got {self.id!r}")
        sources = tuple(self.sources)
        if not sources or not all(isinstance(s, TokenSource) for s in sources):
            raise SchemeError(f'token configuration "{self.id}": sources must be TokenSources')
        object.__setattr__(self, "sources", sources)
        object.__setattr__(self, "_verifier", _Verifier(self.id, _parse_keys(self.id, self.keys)))

    @property
    def fields(self) -> tuple[str, ...]:
        """The request fields this configuration reads, in a fixed order."""
        return tuple(f for f in (HEADERS_FIELD, COOKIES_FIELD) if any(s.field == f for s in self.sources))


class TokenConfigs:
    """An immutable registry ``id -> TokenConfig`` with the clock ``exp``/``nbf`` are
    checked against (seconds since the epoch; default ``time.time``)."""

    __slots__ = ("_by_id", "clock")

    def __init__(
        self, configs: Iterable[TokenConfig] = (), *, clock: Callable[[], float] = time.time
    ) -> None:
        by_id: dict[str, TokenConfig] = {}
        for c in configs:
            if not isinstance(c, TokenConfig):
                raise SchemeError(f"expected a TokenConfig, got {type(c).__name__}")
            if c.id in by_id:
                raise SchemeError(f'duplicate token configuration "{c.id}"')
            by_id[c.id] = c
        self._by_id: Mapping[str, TokenConfig] = by_id
        self.clock = clock

    def get(self, config_id: str) -> TokenConfig | None:
        return self._by_id.get(config_id)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __repr__(self) -> str:
        return f"<TokenConfigs {list(self._by_id)}>"


EMPTY: Final = TokenConfigs()


# --- keys and verification --------------------------------------------------------------


def _pyjwt() -> Any:
    import jwt  # the only import of PyJWT in edgerules (see the module invariants)

    return jwt


def _parse_keys(config_id: str, keys: Any) -> tuple[tuple[str | None, str, Any], ...]:
    """``(kid, alg, PyJWK)`` for every JWK of ``keys``."""
    where = f'token configuration "{config_id}"'
    if isinstance(keys, str | bytes):
        try:
            keys = json.loads(keys)
        except ValueError as exc:
            raise SchemeError(f"{where}: keys are not valid JSON ({exc})") from None
    if isinstance(keys, Mapping):
        keys = keys.get("keys", [keys] if "kty" in keys else None)
    if not isinstance(keys, Sequence) or isinstance(keys, str | bytes) or not keys:
        raise SchemeError(f"{where}: keys must be a JWK Set or a non-empty list of JWKs")
    jwt = _pyjwt()
    out = []
    for n, jwk in enumerate(keys):
        if not isinstance(jwk, Mapping):
            raise SchemeError(f"{where}: key #{n + 1} is not a JWK object")
        alg = jwk.get("alg")
        if alg not in ALGORITHMS:
            raise SchemeError(
                f"{where}: key #{n + 1} needs an alg among {', '.join(sorted(ALGORITHMS))}, "
                f"got {alg!r}"
            )
        private = _PRIVATE_JWK_MEMBERS & set(jwk)
        if private:
            raise SchemeError(
                f"{where}: key #{n + 1} holds private or symmetric key material "
                f"({', '.join(sorted(private))}); register the issuer's public key only"
            )
        try:
            parsed = jwt.PyJWK(dict(jwk), algorithm=alg)
        except Exception as exc:  # PyJWT's errors for malformed keys are several classes
            raise SchemeError(f"{where}: key #{n + 1} is not a valid {alg} JWK ({exc})") from None
        kid = jwk.get("kid")
        out.append((kid if isinstance(kid, str) else None, alg, parsed))
    return tuple(out)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class _Verifier:
    """Signature checks for one configuration, with a bounded cache of their results."""

    __slots__ = ("_claims", "config_id", "keys")

    def __init__(self, config_id: str, keys: tuple[tuple[str | None, str, Any], ...]) -> None:
        self.config_id = config_id
        self.keys = keys
        self._claims = functools.lru_cache(maxsize=_SIGNATURE_CACHE_SIZE)(self._verify)

    def valid(self, token: str, now: float) -> bool:
        times = self._claims(token)
        if times is None:
            return False
        exp, nbf = times
        if exp is not None and not now < exp:
            return False
        return nbf is None or nbf <= now

    def _verify(self, token: str) -> tuple[float | None, float | None] | None:
        """``(exp, nbf)`` of a token whose signature verifies under one of the keys (each
        None when absent), or None: not a valid token."""
        jwt = _pyjwt()
        try:
            header = jwt.get_unverified_header(token)
        except Exception:
            return None
        alg = header.get("alg")
        kid = header.get("kid")
        if alg not in ALGORITHMS:
            return None
        candidates = [k for k in self.keys if k[1] == alg and (kid is None or k[0] == kid)]
        for _kid, _alg, key in candidates:
            try:
                claims = jwt.decode(
                    token,
                    key=key,
                    algorithms=[alg],
                    # exp/nbf are checked by valid() against the registry's clock.
                    options={
                        "verify_signature": True,
                        "verify_exp": False,
                        "verify_nbf": False,
                        "verify_iat": False,
                        "verify_aud": False,
                        "verify_iss": False,
                    },
                )
            except Exception:
                continue
            if not isinstance(claims, dict):
                return None
            exp = claims.get("exp")
            nbf = claims.get("nbf")
            exp_n, nbf_n = _number(exp), _number(nbf)
            if (exp is not None and exp_n is None) or (nbf is not None and nbf_n is None):
                return None  # a claim that cannot be checked is not a pass
            return exp_n, nbf_n
        return None


# --- reading the token from a request ------------------------------------------------------


def _first_value(mapping: object, name: str) -> bytes | None:
    if not isinstance(mapping, Mapping):
        return None
    values = mapping.get(name.encode("utf-8"))
    if values is None:
        values = mapping.get(name)
    if not values or isinstance(values, str | bytes):
        return None
    first = values[0]
    if isinstance(first, str):
        first = first.encode("utf-8", "surrogateescape")
    return first if isinstance(first, bytes) else None


def read_token(config: TokenConfig, headers: object, cookies: object) -> str | None:
    """The token the request carries for ``config``: the first source holding a
    non-empty value, without surrounding whitespace and ``Bearer`` prefix; None when
    there is none (or it is not ASCII text, which no JWT is)."""
    for source in config.sources:
        raw = _first_value(headers if source.kind == "header" else cookies, source.name)
        if raw is None:
            continue
        value = raw.strip(b" \t")
        if value[:7].lower() in (b"bearer ", b"bearer\t", b"bearer"):
            value = value[6:].lstrip(b" \t")
        if not value:
            continue
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            return None
    return None


# --- the functions -------------------------------------------------------------------------


class _JwtFunction:
    """Shared checking and binding of ``is_jwt_present`` / ``is_jwt_valid``."""

    name = ""
    signature = ""
    summary = ""
    min_args = max_args = 1
    once_per_expression = False

    def __init__(self, configs: TokenConfigs = EMPTY) -> None:
        self.configs = configs

    def _config(self, args: Sequence[Any]) -> TokenConfig:
        from edgerules.lang.functions import ArgumentProblem

        if len(args) != 1:
            raise ArgumentProblem(f"{self.name}() takes 1 argument, got {len(args)}: {self.signature}")
        arg = args[0]
        if arg.unpacked or arg.type != BYTES or not arg.is_literal:
            raise ArgumentProblem(
                f"the argument of {self.name}() is the id of a token configuration, "
                'written as a string literal ("…")',
                0,
            )
        config_id = arg.value.decode("utf-8", "replace")
        config = self.configs.get(config_id)
        if config is None:
            if not len(self.configs):
                detail = (
                    "no token configurations are registered on this scheme "
                    "(Scheme.derive(token_configs=…))"
                )
            else:
                close = difflib.get_close_matches(config_id, self.configs.ids, n=1, cutoff=0.6)
                detail = f'did you mean "{close[0]}"?' if close else (
                    f"registered: {', '.join(self.configs.ids)}"
                )
            raise ArgumentProblem(f'unknown token configuration "{config_id}": {detail}', 0)
        return config

    def check(self, args: Sequence[Any]) -> Type:
        self._config(args)
        return BOOL

    def reads(self, args: Sequence[Any]) -> tuple[str, ...]:
        """The request fields the call reads besides its arguments (passed after them)."""
        return self._config(args).fields


class _JwtPresent(_JwtFunction):
    name = "is_jwt_present"
    signature = "is_jwt_present(config_id String literal) -> Boolean"
    summary = "The request carries a token where the token configuration looks."

    def bind(self, args: Sequence[Any]) -> Callable[..., object]:
        config = self._config(args)
        fields = config.fields

        def is_jwt_present(_id: object, *values: object) -> object:
            found = dict(zip(fields, values, strict=True))
            return read_token(config, found.get(HEADERS_FIELD), found.get(COOKIES_FIELD)) is not None

        return is_jwt_present


class _JwtValid(_JwtFunction):
    name = "is_jwt_valid"
    signature = "is_jwt_valid(config_id String literal) -> Boolean"
    summary = "The request's token verifies under the configuration's keys (signature, exp, nbf)."

    def bind(self, args: Sequence[Any]) -> Callable[..., object]:
        config = self._config(args)
        fields = config.fields
        verifier = config._verifier
        clock = self.configs.clock

        def is_jwt_valid(_id: object, *values: object) -> object:
            found = dict(zip(fields, values, strict=True))
            token = read_token(config, found.get(HEADERS_FIELD), found.get(COOKIES_FIELD))
            if token is None:
                return False
            return verifier.valid(token, clock())

        return is_jwt_valid


def jwt_functions(configs: TokenConfigs = EMPTY) -> dict[str, Any]:
    """The two function definitions bound to ``configs``."""
    return {"is_jwt_present": _JwtPresent(configs), "is_jwt_valid": _JwtValid(configs)}


