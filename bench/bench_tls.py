"""mTLS validator benchmarks (issue 3 point 8), group ``mtls``.

* ``bare``: cryptography alone on a 2-certificate chain (leaf + intermediate, root
  trusted): decode both DER certificates, build a ``ClientVerifier``, verify.
* ``cold``: ``ClientCertValidator.validate`` on the same chain with caching off
  (limits, decoding, de-duplication, verification, issuer lookup, result object).
* ``cached``: the same call answered from the result cache.
* ``cold-strict``: the cold call with the ``strict`` profile (the fast path plus the strict
  profile's raw checks on the path).
* ``cold-walk``: the cold call on a chain only the ``compatible`` profile accepts (an
  intermediate whose basicConstraints is not critical): cryptography refuses it, the
  OpenSSL-order engine (tls/walk.py) verifies it — the slow path, for chains of real
  private PKIs.

Targets: cold <= 1.3 x bare, cached <= 5 µs (both profiles). Every benchmark asserts its result, so with
``--benchmark-disable`` (the default in ``make test``) they run once as tests. Timings:

    .venv/bin/python -m pytest bench/bench_tls.py -p no:cacheprovider --benchmark-enable
    .venv/bin/python bench/bench_tls.py          # quick table incl. the cold/bare ratio

The targets are reported, never asserted: timing must not decide whether tests pass.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from edgerules.tls import ClientCertValidator
from tls.ca_fixture import NOW, pki, profiles

CHAIN = profiles()[
    "via_intermediate"
].chain  # leaf (with SAN, so plain WebPKI accepts it) + intermediate
ROOT = pki().root.cert
STORE = Store([ROOT])


def bare_verify() -> list[x509.Certificate]:
    leaf = x509.load_der_x509_certificate(CHAIN[0])
    inter = x509.load_der_x509_certificate(CHAIN[1])
    verifier = PolicyBuilder().store(STORE).time(NOW).build_client_verifier()
    return verifier.verify(leaf, [inter]).chain


COLD = ClientCertValidator([ROOT], cache_size=0)
WARM = ClientCertValidator([ROOT])
COLD_STRICT = ClientCertValidator([ROOT], cache_size=0, profile="strict")
WARM_STRICT = ClientCertValidator([ROOT], profile="strict")


def _walk_chain() -> tuple[list[bytes], x509.Certificate]:
    from cryptography.x509.oid import NameOID

    from tls.ca_fixture import make_ca, make_leaf

    root = pki().root
    inter = make_ca(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Non-critical BC Int")]),
        parent=root,
        label="bench-ncbc",
        basic_constraints=False,
        extra=[x509.BasicConstraints(ca=True, path_length=None)],
    )
    leaf = make_leaf("walk client", inter, san=[x509.RFC822Name("walk@example.com")])
    return [leaf.der, inter.der], root.cert


WALK_CHAIN, WALK_ROOT = _walk_chain()
COLD_WALK = ClientCertValidator([WALK_ROOT], cache_size=0)


def cold_validate():
    return COLD.validate(CHAIN, now=NOW)


def cached_validate():
    return WARM.validate(CHAIN, now=NOW)


def cold_validate_strict():
    return COLD_STRICT.validate(CHAIN, now=NOW)


def cached_validate_strict():
    return WARM_STRICT.validate(CHAIN, now=NOW)


def cold_validate_walk():
    return COLD_WALK.validate(WALK_CHAIN, now=NOW)


@pytest.mark.benchmark(group="mtls")
def test_bench_bare_client_verifier(benchmark) -> None:
    chain = benchmark(bare_verify)
    assert [c.subject for c in chain][-1] == ROOT.subject and len(chain) == 3


@pytest.mark.benchmark(group="mtls")
def test_bench_cold_validate(benchmark) -> None:
    auth = benchmark(cold_validate)
    assert auth.verified and not auth.revoked and len(auth.path) == 3


@pytest.mark.benchmark(group="mtls")
def test_bench_cached_validate(benchmark) -> None:
    first = WARM.validate(CHAIN, now=NOW)
    auth = benchmark(cached_validate)
    assert auth is first and auth.verified


@pytest.mark.benchmark(group="mtls")
def test_bench_cold_validate_strict(benchmark) -> None:
    auth = benchmark(cold_validate_strict)
    assert auth.verified and len(auth.path) == 3


@pytest.mark.benchmark(group="mtls")
def test_bench_cached_validate_strict(benchmark) -> None:
    first = WARM_STRICT.validate(CHAIN, now=NOW)
    auth = benchmark(cached_validate_strict)
    assert auth is first and auth.verified


@pytest.mark.benchmark(group="mtls")
def test_bench_cold_validate_walk(benchmark) -> None:
    auth = benchmark(cold_validate_walk)
    assert auth.verified, auth.failure_reason
    strict = ClientCertValidator([WALK_ROOT], profile="strict").validate(WALK_CHAIN, now=NOW)
    assert strict.failure_reason == "Basic Constraints of CA cert not marked critical"


@pytest.mark.benchmark(group="mtls")
def test_bench_fields_read(benchmark) -> None:
    """Reading the three fields a typical rule uses from a cached result."""
    auth = WARM.validate(CHAIN, now=NOW)
    names = (
        "cf.tls_client_auth.cert_verified",
        "cf.tls_client_auth.cert_revoked",
        "cf.tls_client_auth.cert_issuer_ski",
    )

    def read():
        f = auth.fields()
        return [f[n] for n in names]

    assert benchmark(read)[:2] == [True, False]


def measure(repeat: int = 15) -> dict[str, float]:
    """Best-of-``repeat`` CPU seconds per call for every path, in one run. The rounds are
    interleaved so that load from other processes hits every path alike."""
    plan = (
        ("bare", bare_verify, 50),
        ("cold", cold_validate, 50),
        ("cold-strict", cold_validate_strict, 50),
        ("cold-walk", cold_validate_walk, 20),
        ("cached", cached_validate, 5000),
        ("cached-strict", cached_validate_strict, 5000),
    )
    best = dict.fromkeys((name for name, _, _ in plan), float("inf"))
    for _name, fn, _ in plan:
        fn()
    for _ in range(repeat):
        for name, fn, number in plan:
            t0 = time.process_time()
            for _ in range(number):
                fn()
            best[name] = min(best[name], (time.process_time() - t0) / number)
    return best


if __name__ == "__main__":
    t = measure()
    b = t["bare"]
    print(f"bare ClientVerifier.verify (2-cert chain):   {b * 1e6:8.1f} µs")
    for name, label in (("cold", "cold validate, compatible (cache off)"),
                        ("cold-strict", "cold validate, strict (cache off)"),
                        ("cold-walk", "cold validate, walk (non-critical BC CA)")):
        print(f"{label + ':':45}{t[name] * 1e6:8.1f} µs  ({t[name] / b:.2f} x bare)")
    print(f"{'cached validate, compatible:':45}{t['cached'] * 1e6:8.2f} µs")
    print(f"{'cached validate, strict:':45}{t['cached-strict'] * 1e6:8.2f} µs")
