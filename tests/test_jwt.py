"""is_jwt_present / is_jwt_valid (docs/functions.md): token configurations registered
on a scheme, verification (signature, exp, nbf), the request sources, compile errors, and
the rule that only edgerules.lang.jwt imports PyJWT, lazily.

Tokens are made here with PyJWT and keys generated once per module."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import edgerules
from edgerules.errors import RuleTypeError, SchemeError
from edgerules.lang.jwt import TokenConfig, TokenConfigs, TokenSource
from edgerules.lang.scheme import default_scheme
from reference_interpreter import evaluate

CONFIG_ID = "51231d16-01f1-48e3-93f8-91c99e81288e"
NOW = 1_800_000_000

_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_OTHER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_EC = ec.generate_private_key(ec.SECP256R1())


def _jwk(private_key: Any, alg: str, kid: str) -> dict[str, Any]:
    algo = pyjwt.algorithms.RSAAlgorithm if alg.startswith(("RS", "PS")) else pyjwt.algorithms.ECAlgorithm
    jwk = json.loads(algo.to_jwk(private_key.public_key()))
    jwk.update(alg=alg, kid=kid)
    return jwk


JWKS = {"keys": [_jwk(_RSA, "RS256", "rsa-1"), _jwk(_EC, "ES256", "ec-1")]}


def token(claims: dict[str, Any] | None = None, *, key: Any = _RSA, alg: str = "RS256",
          kid: str | None = "rsa-1") -> str:
    payload = {"sub": "user-1", "exp": NOW + 60, "nbf": NOW - 60}
    payload.update(claims or {})
    payload = {k: v for k, v in payload.items() if v is not None}
    headers = {"kid": kid} if kid is not None else {}
    return pyjwt.encode(payload, key, algorithm=alg, headers=headers)


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def scheme(clock: Clock | None = None, **config: Any) -> Any:
    sources = config.pop("sources", (TokenSource("header", "Authorization"),))
    configs = TokenConfigs(
        [TokenConfig(CONFIG_ID, JWKS, sources), TokenConfig("cookie-config", JWKS,
                                                            (TokenSource("cookie", "session"),))],
        clock=clock or Clock(),
    )
    return default_scheme().derive(token_configs=configs)


VALID = f'is_jwt_valid("{CONFIG_ID}")'
PRESENT = f'is_jwt_present("{CONFIG_ID}")'


def auth(value: str) -> dict[str, Any]:
    return {"http.request.headers": {"authorization": [value]}}


def run(expr: str, fields: dict[str, Any], s: Any = None) -> bool:
    """The answer through matches(), execute(Context), the trace and the reference
    interpreter, which must agree."""
    s = s or scheme()
    f = edgerules.compile(expr, s)
    ctx = s.context(fields)
    answers = {f.matches(fields), f.execute(ctx), f.trace(ctx).value, evaluate(f._checked, ctx)}
    assert len(answers) == 1, answers
    return answers.pop()


# --- the documented semantics -------------------------------------------------------------


def test_valid_token_with_and_without_bearer() -> None:
    tok = token()
    for value in (f"Bearer {tok}", f"bearer  {tok}", tok, f"  {tok} "):
        assert run(VALID, auth(value)) is True, value
        assert run(PRESENT, auth(value)) is True, value


def test_ec_key_selected_by_kid() -> None:
    assert run(VALID, auth(token(key=_EC, alg="ES256", kid="ec-1"))) is True
    # a token naming the RSA key but signed with the EC key does not verify
    assert run(VALID, auth(token(key=_EC, alg="ES256", kid="rsa-1"))) is False


def test_no_kid_tries_keys_of_the_algorithm() -> None:
    assert run(VALID, auth(token(kid=None))) is True


def test_no_token_is_false_for_both() -> None:
    assert run(VALID, {}) is False
    assert run(PRESENT, {}) is False
    assert run(PRESENT, auth("Bearer ")) is False
    assert run(PRESENT, {"http.request.headers": {"x-other": ["t"]}}) is False


def test_present_but_invalid() -> None:
    for bad in ("not-a-jwt", "a.b.c", token(key=_OTHER_RSA)):
        fields = auth(bad)
        assert run(PRESENT, fields) is True
        assert run(VALID, fields) is False
        assert run(f"{PRESENT} and not {VALID}", fields) is True


def test_exp_and_nbf() -> None:
    clock = Clock()
    s = scheme(clock)
    assert run(VALID, auth(token({"exp": NOW + 1})), s) is True
    assert run(VALID, auth(token({"exp": NOW})), s) is False  # valid while now < exp
    assert run(VALID, auth(token({"nbf": NOW})), s) is True  # valid from nbf on
    assert run(VALID, auth(token({"nbf": NOW + 1})), s) is False
    assert run(VALID, auth(token({"exp": None, "nbf": None})), s) is True  # nothing to check
    assert run(VALID, auth(token({"exp": "tomorrow"})), s) is False
    assert run(VALID, auth(token({"nbf": True})), s) is False


def test_expiry_is_checked_on_every_call_despite_the_signature_cache() -> None:
    clock = Clock()
    s = scheme(clock)
    f = edgerules.compile(VALID, s)
    fields = auth(token({"exp": NOW + 10}))
    assert f.matches(fields) is True
    clock.now = NOW + 10
    assert f.matches(fields) is False
    clock.now = NOW - 100  # before nbf
    assert f.matches(fields) is False


def test_algorithms_refused() -> None:
    hs = pyjwt.encode({"sub": "x"}, "secret-key-long-enough-for-hs256!", algorithm="HS256",
                      headers={"kid": "rsa-1"})
    assert run(VALID, auth(hs)) is False
    unsigned = pyjwt.encode({"sub": "x"}, None, algorithm="none")
    assert run(VALID, auth(unsigned)) is False
    ps = token(alg="PS256")  # RSA key registered for RS256 only
    assert run(VALID, auth(ps)) is False


def test_cookie_source_and_source_order() -> None:
    tok = token()
    expr = 'is_jwt_valid("cookie-config")'
    assert run(expr, {"http.request.cookies": {"session": [tok]}}) is True
    assert run(expr, auth(tok)) is False  # this configuration reads the cookie only
    s = scheme(sources=(TokenSource("header", "X-Token"), TokenSource("cookie", "jwt")))
    assert run(VALID, {"http.request.cookies": {"jwt": [tok]}}, s) is True
    # the first source holding a value is the token, even when a later one would verify
    both = {"http.request.headers": {"x-token": ["garbage"]}, "http.request.cookies": {"jwt": [tok]}}
    assert run(VALID, both, s) is False
    # only the first value of a header counts
    assert run(VALID, {"http.request.headers": {"x-token": [tok, "x"]}}, s) is True
    assert run(VALID, {"http.request.headers": {"x-token": ["x", tok]}}, s) is False


def test_fields_read_are_the_sources() -> None:
    s = scheme()
    assert sorted(edgerules.compile(VALID, s).fields) == ["http.request.headers"]
    assert sorted(edgerules.compile('is_jwt_present("cookie-config")', s).fields) == [
        "http.request.cookies"
    ]


def test_in_a_rule_with_other_conditions() -> None:
    expr = f'http.request.uri.path wildcard "/api/*" and not {VALID}'
    fields = {"http.request.uri.path": "/api/x", **auth(token())}
    assert run(expr, fields) is False
    assert run(expr, {"http.request.uri.path": "/api/x"}) is True


# --- compile errors --------------------------------------------------------------------------


def test_unknown_id_without_configurations_is_a_caret_error() -> None:
    text = f'is_jwt_valid("{CONFIG_ID}")'
    with pytest.raises(RuleTypeError) as info:
        edgerules.compile(text)
    err = info.value
    assert (err.span.start, err.span.end) == (13, 13 + len(CONFIG_ID) + 2)
    assert CONFIG_ID in err.message and "no token configurations" in err.message


def test_unknown_id_with_configurations_suggests() -> None:
    text = 'is_jwt_present("cookie-confg")'
    with pytest.raises(RuleTypeError) as info:
        edgerules.compile(text, scheme())
    assert info.value.span.start == 15
    assert 'did you mean "cookie-config"' in info.value.message


def test_argument_must_be_a_literal_id() -> None:
    for text in ("is_jwt_valid(http.host)", "is_jwt_valid(1)", 'is_jwt_valid("a", "b")', "is_jwt_valid()"):
        with pytest.raises(RuleTypeError):
            edgerules.compile(text, scheme())


# --- registering configurations --------------------------------------------------------------


def test_configuration_errors() -> None:
    private = json.loads(pyjwt.algorithms.RSAAlgorithm.to_jwk(_RSA))
    private["alg"] = "RS256"
    cases = [
        ({"keys": []}, "non-empty"),
        ({"keys": [{**JWKS["keys"][0], "alg": "HS256"}]}, "needs an alg"),
        ({"keys": [{**JWKS["keys"][0], "alg": None}]}, "needs an alg"),
        ({"keys": [private]}, "private"),
        ({"keys": [{"kty": "RSA", "alg": "RS256", "n": "x", "e": "AQAB"}]}, "not a valid"),
        ("{not json", "JSON"),
        ({"keys": ["x"]}, "not a JWK"),
    ]
    for keys, message in cases:
        with pytest.raises(SchemeError, match=message):
            TokenConfig("c", keys)
    with pytest.raises(SchemeError, match="duplicate"):
        TokenConfigs([TokenConfig("c", JWKS), TokenConfig("c", JWKS)])
    with pytest.raises(SchemeError):
        TokenSource("query", "t")  # type: ignore[arg-type]
    with pytest.raises(SchemeError):
        TokenConfig("", JWKS)


def test_keys_as_json_text_and_single_jwk() -> None:
    assert TokenConfig("a", json.dumps(JWKS)).fields == ("http.request.headers",)
    TokenConfig("b", JWKS["keys"][0])  # one JWK on its own


def test_derived_scheme_keeps_the_default_untouched() -> None:
    s = scheme()
    assert s.token_configs is not None and default_scheme().token_configs is None
    with pytest.raises(RuleTypeError):
        edgerules.compile(VALID)  # the default scheme knows no configuration
    assert edgerules.compile(VALID, s).matches(auth(token())) is True


# --- PyJWT stays behind one module, loaded lazily -------------------------------------------


def test_only_lang_jwt_imports_pyjwt() -> None:
    src = Path(__file__).resolve().parents[1] / "src" / "edgerules"
    importers = sorted(
        str(p.relative_to(src))
        for p in src.rglob("*.py")
        if any(
            line.strip().startswith(("import jwt", "from jwt "))
            for line in p.read_text(encoding="utf-8").splitlines()
        )
    )
    assert importers == ["lang/jwt.py"]


def test_core_does_not_load_pyjwt() -> None:
    code = (
        "import sys, edgerules\n"
        "f = edgerules.compile('http.host eq \"a\" and trim(http.host) ne \"b\"')\n"
        "assert f.matches({'http.host': 'a'})\n"
        "try:\n"
        "    edgerules.compile('is_jwt_valid(\"x\")')\n"
        "except edgerules.RuleTypeError:\n"
        "    pass\n"
        "assert 'jwt' not in sys.modules, 'PyJWT loaded'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
