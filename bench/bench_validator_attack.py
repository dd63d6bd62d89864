"""Worst-case cost of one validation of a crafted chain vs a normal chain (issue 9 point 2,
validator side), group ``mtls-attack``.

Chains (cache off, so every call does the whole validation):

* ``normal``: leaf + intermediate, root trusted (ECDSA P-256) — the reference.
* ``absurd-exponent``: the audit's attack — leaf + 7 RSA-2048 intermediates whose public
  exponent has 2041 bits (a valid chain). The keys are refused before any signature
  check, so this costs about the decoding.
* ``absurd-exponent, cryptography alone``: the same chain through pyca/cryptography's
  verifier without our caps — what each handshake cost before (each of its signature
  checks is ~100 normal ones).
* ``costliest-within-caps``: leaf + 9 intermediates with one subject and the costliest
  keys the caps allow (RSA-8192, e = 2^32-1), each naming the others as issuer: every
  candidate must be tried, so the signature budget decides the cost.
* ``rsa-8192-chain``: a legitimate-looking chain with RSA-8192 (e = 65537) CAs that fails
  at its first signature: the most one ordinary failure costs.

Run: ``.venv/bin/python bench/bench_validator_attack.py`` (a table of CPU time per
validation, best of several interleaved rounds, and the ratio to ``normal``) or
``.venv/bin/python -m pytest bench/bench_validator_attack.py --benchmark-enable``.
Every benchmark asserts its verdict, so ``make test`` runs them once as tests; timings
are reported, never asserted.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.verification import PolicyBuilder, Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from edgerules.tls import ClientCertValidator
from tls import chains


def _fake_rsa(bits: int, e: int) -> rsa.RSAPublicKey:
    n = int.from_bytes(os.urandom(bits // 8), "big") | (1 << (bits - 1)) | 1
    return rsa.RSAPublicNumbers(e, n).public_key()


def _ca(subject: str, pub, signer: chains.Issued, serial: int) -> bytes:
    return (
        x509.CertificateBuilder()
        .subject_name(chains.name(subject))
        .issuer_name(signer.cert.subject)
        .public_key(pub)
        .serial_number(serial)
        .not_valid_before(chains.INT_VALIDITY[0])
        .not_valid_after(chains.INT_VALIDITY[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(signer.key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )


@functools.cache
def cases() -> dict[str, tuple[list[bytes], list[bytes]]]:
    """name -> (trusted DER, presented chain DER)."""
    p = chains.Pki()
    out: dict[str, tuple[list[bytes], list[bytes]]] = {}
    out["normal"] = ([p.root.der], [p.leaf.der, p.int.der])
    big = chains.rsa_with_exponent((1 << 2040) + 0x1F)
    prev, ints = p.root, []
    for i in range(7):
        prev = chains.make(chains.name(f"Attack Int {i}"), big, prev, ca=True)
        ints.append(prev)
    out["absurd-exponent"] = ([p.root.der], [p.leaf_with(prev).der,
                                              *(c.der for c in reversed(ints))])
    loop = chains.make(chains.name("Loop CA"), chains.key("bench-loop"), ca=True)
    costly = [_ca("Loop CA", _fake_rsa(8192, 2**32 - 1), loop, 9000 + i) for i in range(9)]
    # the victim's signature is 1024 bytes (RSA-8192-sized), so each candidate key really
    # runs its 8192-bit exponentiation before failing
    victim = chains.with_signature(chains.make(chains.name("victim"), chains.key("leaf"), loop),
                                   b"\x01" + os.urandom(1023))
    out["costliest-within-caps"] = ([p.root.der], [victim, *costly])
    signer = chains.make(chains.name("RSA8192 Signer"), chains.key("bench-signer"), ca=True)
    deep = _ca("RSA8192 Int", _fake_rsa(8192, 65537), signer, 9100)
    deep_leaf = chains.with_signature(
        chains.make(chains.name("rsa8192 client"), chains.key("leaf"),
                    chains.Issued(x509.load_der_x509_certificate(deep), chains.key("bench-signer"))),
        b"\x01" + os.urandom(1023),
    )
    out["rsa-8192-chain"] = ([signer.der], [deep_leaf, deep])
    return out


EXPECTED = {
    "normal": (True, ""),
    "absurd-exponent": (False, "unable to decode issuer public key"),
    "costliest-within-caps": (False, "self signed certificate in certificate chain"),
    "rsa-8192-chain": (False, "certificate signature failure"),
}


@functools.cache
def validator(name: str) -> ClientCertValidator:
    return ClientCertValidator(cases()[name][0], cache_size=0)


def run(name: str):
    return validator(name).validate(cases()[name][1], now=chains.NOW)


def cryptography_alone_absurd() -> bool:
    """The absurd-exponent chain through cryptography's verifier with no caps."""
    trusted, chain = cases()["absurd-exponent"]
    store = Store([x509.load_der_x509_certificate(d) for d in trusted])
    leaf = x509.load_der_x509_certificate(chain[0])
    ints = [x509.load_der_x509_certificate(d) for d in chain[1:]]
    verifier = (
        PolicyBuilder().store(store).time(chains.NOW.replace(tzinfo=None))
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, ints)
    except Exception:
        return False
    return True


@pytest.mark.benchmark(group="mtls-attack")
@pytest.mark.parametrize("name", list(EXPECTED))
def test_bench_crafted_chain(benchmark, name: str) -> None:
    auth = benchmark(run, name)
    assert (auth.verified, auth.failure_reason) == EXPECTED[name]


@pytest.mark.benchmark(group="mtls-attack")
def test_bench_absurd_exponent_cryptography_alone(benchmark) -> None:
    benchmark.pedantic(cryptography_alone_absurd, rounds=1, iterations=1)


def measure(rounds: int = 7) -> dict[str, float]:
    """Best CPU seconds per call, rounds interleaved across the cases."""
    plan = [(n, functools.partial(run, n), 20 if n == "normal" else 5) for n in EXPECTED]
    plan.append(("absurd-exponent, cryptography alone", cryptography_alone_absurd, 1))
    best = {n: float("inf") for n, _f, _k in plan}
    for _n, f, _k in plan:
        f()
    for _ in range(rounds):
        for n, f, k in plan:
            t0 = time.process_time()
            for _ in range(k):
                f()
            best[n] = min(best[n], (time.process_time() - t0) / k)
    return best


if __name__ == "__main__":
    t = measure()
    ref = t["normal"]
    print(f"{'chain':40} {'CPU per validation':>20} {'x normal':>10}")
    for name, secs in t.items():
        print(f"{name:40} {secs * 1e3:17.2f} ms {secs / ref:10.1f}")
