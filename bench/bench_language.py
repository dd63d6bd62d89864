"""Benchmarks of the 2026 language additions: dynamic right-hand sides, coalesce,
hash_in_range, trim, is_jwt_valid, and a named list against the same inline set.

Each workload is one pytest-benchmark group with ``execute`` (prebuilt Context),
``matches`` (a request dict) and ``hand`` (the Python a careful engineer would write for
the same rule, on the same dict); the list workload compares ``http.host in $hosts`` with
``http.host in {…}`` (1,000 hosts) in one group. Under ``make test``
(``--benchmark-disable``) each body runs once and the tests assert that the filter agrees
with the hand-written function on matching and non-matching requests.

    .venv/bin/python -m pytest bench/bench_language.py --benchmark-enable --benchmark-only \\
        --benchmark-columns=min,median,ops -q

The request dicts hold what a framework hands over (``str`` values, lists of header
values); the hand-written functions precompute what they can at import.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt as pyjwt  # the hand-written JWT check (the engine's own is edgerules.lang.jwt)
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

import edgerules
from edgerules.lang.jwt import TokenConfig, TokenConfigs
from edgerules.lang.limits import ExpressionLimits
from edgerules.lang.scheme import default_scheme
from edgerules.rulesets.lists import make_list

_KEY = ec.generate_private_key(ec.SECP256R1())
_JWK = json.loads(pyjwt.algorithms.ECAlgorithm.to_jwk(_KEY.public_key()))
_JWK.update(alg="ES256", kid="k1")
_TOKEN = pyjwt.encode({"sub": "u", "exp": 4_000_000_000}, _KEY, algorithm="ES256", headers={"kid": "k1"})
_CONFIG = "api"
SCHEME = default_scheme().derive(
    token_configs=TokenConfigs([TokenConfig(_CONFIG, {"keys": [_JWK]})]),
    limits=ExpressionLimits(max_length=40_000),
)

_BASE: dict[str, Any] = {
    "http.host": "api.example.com",
    "http.request.uri.path": "/api/v1/users",
    "raw.http.request.uri.path": "/api/v1/users",
    "http.request.uri.query": "page=2",
    "http.request.uri.args": {"first": ["x"], "second": ["x"], "page": ["2"]},
    "http.request.headers": {
        "x-label": [" approved "],
        "authorization": [f"Bearer {_TOKEN}"],
        "accept": ["*/*"],
    },
    "cf.random_seed": "0123456789abcdef",
}


def req(**changes: Any) -> dict[str, Any]:
    return {**_BASE, **{k.replace("__", "."): v for k, v in changes.items()}}


@dataclass(frozen=True)
class Workload:
    name: str
    expr: str
    hand: Callable[[dict[str, Any]], bool]
    requests: tuple[dict[str, Any], ...]  # requests[0] is the one timed


W: list[Workload] = []


def workload(name: str, expr: str, *requests: dict[str, Any]) -> Callable[[Any], Any]:
    def register(hand: Callable[[dict[str, Any]], bool]) -> Callable[[dict[str, Any]], bool]:
        W.append(Workload(name, expr, hand, requests))
        return hand

    return register


@workload(
    "dyn_two_fields",
    "http.request.uri.path ne raw.http.request.uri.path",
    req(),
    req(raw__http__request__uri__path="/api/v1/%75sers"),
)
def hand_two_fields(d: dict[str, Any]) -> bool:
    return d["http.request.uri.path"] != d["raw.http.request.uri.path"]


@workload(
    "dyn_len_gt_len",
    "len(http.request.uri.path) gt len(http.request.uri.query)",
    req(),
    req(http__request__uri__query="page=2&sort=name&dir=desc"),
)
def hand_len(d: dict[str, Any]) -> bool:
    return len(d["http.request.uri.path"].encode()) > len(d["http.request.uri.query"].encode())


@workload(
    "dyn_args_eq",
    'http.request.uri.args["first"][0] eq http.request.uri.args["second"][0]',
    req(),
    req(http__request__uri__args={"first": ["x"], "second": ["y"]}),
    req(http__request__uri__args={"first": ["x"]}),
)
def hand_args(d: dict[str, Any]) -> bool:
    args = d.get("http.request.uri.args", {})
    a, b = args.get("first"), args.get("second")
    return bool(a) and bool(b) and a[0] == b[0]


@workload(
    "coalesce_default",
    'http.request.uri.path eq coalesce(http.request.uri.args["expected_path"][0], "/api/v1/users")',
    req(),
    req(http__request__uri__args={"expected_path": ["/other"]}),
)
def hand_coalesce(d: dict[str, Any]) -> bool:
    got = d.get("http.request.uri.args", {}).get("expected_path")
    return d["http.request.uri.path"] == (got[0] if got else "/api/v1/users")


_blake2b = hashlib.blake2b
_PREFIX = b"\x01"


@workload(
    "hash_in_range",
    "hash_in_range(0, 100, cf.random_seed) < 60",
    req(),
    req(cf__random_seed="seed-005"),
    req(cf__random_seed="another seed"),
)
def hand_hash(d: dict[str, Any]) -> bool:
    seed = d["cf.random_seed"].encode()
    digest = _blake2b(_PREFIX + len(seed).to_bytes(8, "big") + seed, digest_size=8).digest()
    return (int.from_bytes(digest, "big") * 101) >> 64 < 60


@workload(
    "trim_eq",
    'trim(http.request.headers["x-label"][0]) eq "approved"',
    req(),
    req(http__request__headers={"x-label": ["approved!"]}),
    req(http__request__headers={}),
)
def hand_trim(d: dict[str, Any]) -> bool:
    values = d.get("http.request.headers", {}).get("x-label")
    return bool(values) and values[0].strip(" \t\n\x0c\r") == "approved"


_HAND_KEY = pyjwt.PyJWK(_JWK, algorithm="ES256")


@workload(
    "jwt_valid",
    f'is_jwt_valid("{_CONFIG}")',
    req(),
    req(http__request__headers={"authorization": ["Bearer x.y.z"]}),
    req(http__request__headers={}),
)
def hand_jwt(d: dict[str, Any]) -> bool:
    # What an application would write: verify the bearer token on every request.
    values = d.get("http.request.headers", {}).get("authorization")
    if not values or not values[0].startswith("Bearer "):
        return False
    try:
        pyjwt.decode(values[0][7:], _HAND_KEY, algorithms=["ES256"])
    except pyjwt.PyJWTError:
        return False
    return True


def _filter(w: Workload) -> Any:
    return edgerules.compile(w.expr, SCHEME)


@pytest.mark.parametrize("w", W, ids=[w.name for w in W])
def test_execute(benchmark: Any, w: Workload) -> None:
    benchmark.group = w.name
    f = _filter(w)
    for r in w.requests:
        assert f.execute(SCHEME.context(r)) is w.hand(r), (w.name, r)
    ctx = SCHEME.context(w.requests[0])
    benchmark(f.execute, ctx)


@pytest.mark.parametrize("w", W, ids=[w.name for w in W])
def test_matches(benchmark: Any, w: Workload) -> None:
    benchmark.group = w.name
    f = _filter(w)
    for r in w.requests:
        assert f.matches(r) is w.hand(r), (w.name, r)
    benchmark(f.matches, w.requests[0])


@pytest.mark.parametrize("w", W, ids=[w.name for w in W])
def test_hand(benchmark: Any, w: Workload) -> None:
    benchmark.group = w.name
    benchmark(w.hand, w.requests[0])


# --- a named list against the same inline set ----------------------------------------------

_HOSTS = [f"host-{i}.example.com" for i in range(1000)]
_LISTS = {"hosts": make_list("hosts", "hostname", _HOSTS)}
_INLINE = "http.host in {" + " ".join(f'"{h}"' for h in _HOSTS) + "}"


@pytest.mark.parametrize("host", ["host-999.example.com", "nothere.example.org"], ids=["hit", "miss"])
@pytest.mark.parametrize("form", ["list", "inline"])
def test_host_in_list_vs_inline(benchmark: Any, form: str, host: str) -> None:
    benchmark.group = f"host_in_1000_{'hit' if host.startswith('host') else 'miss'}"
    if form == "list":
        f = edgerules.compile("http.host in $hosts", SCHEME, lists=_LISTS)
    else:
        f = edgerules.compile(_INLINE, SCHEME)
    ctx = SCHEME.context({"http.host": host})
    assert f.execute(ctx) is (host in _HOSTS)
    benchmark(f.execute, ctx)
