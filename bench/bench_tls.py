"""mTLS validator benchmarks (issue 3 point 8), group ``mtls``.

* ``bare``: cryptography alone on a 2-certificate chain (leaf + intermediate, root
  trusted): decode both DER certificates, build a ``ClientVerifier``, verify.
* ``cold``: ``ClientCertValidator.validate`` on the same chain with caching off
  (limits, decoding, de-duplication, verification, issuer lookup, result object).
* ``cached``: the same call answered from the result cache.

Targets: cold <= 1.3 x bare, cached <= 5 µs. Every benchmark asserts its result, so with
``--benchmark-disable`` (the default in ``make test``) they run once as tests. Timings:

    .venv/bin/python -m pytest bench/bench_tls.py -p no:cacheprovider --benchmark-enable
    .venv/bin/python bench/bench_tls.py          # quick table incl. the cold/bare ratio

The targets are reported, never asserted: timing must not decide whether tests pass.
"""

from __future__ import annotations

import sys
import timeit
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


def cold_validate():
    return COLD.validate(CHAIN, now=NOW)


def cached_validate():
    return WARM.validate(CHAIN, now=NOW)


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


def measure(repeat: int = 9) -> dict[str, float]:
    """Best-of-``repeat`` seconds per call for the three paths, in one run. The rounds are
    interleaved so that load from other processes hits every path alike."""
    plan = (
        ("bare", bare_verify, 200),
        ("cold", cold_validate, 200),
        ("cached", cached_validate, 20000),
    )
    best = dict.fromkeys((name for name, _, _ in plan), float("inf"))
    for _name, fn, _ in plan:
        fn()
    for _ in range(repeat):
        for name, fn, number in plan:
            best[name] = min(best[name], timeit.timeit(fn, number=number) / number)
    return best


if __name__ == "__main__":
    t = measure()
    print(f"bare ClientVerifier.verify (2-cert chain): {t['bare'] * 1e6:8.1f} µs")
    print(
        f"cold validate (cache off):                 {t['cold'] * 1e6:8.1f} µs  ({t['cold'] / t['bare']:.2f} x bare)"
    )
    print(f"cached validate:                           {t['cached'] * 1e6:8.2f} µs")
