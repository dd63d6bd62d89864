"""Crafted chains cannot make the validator work without bound (issue 9 point 2).

Work is counted, not timed: every signature check our code makes goes through
``sigcheck.verify_signature`` (counted here), and cryptography's verifier is called only
through ``verify._fast`` (the certificates it is given are recorded).
"""

from __future__ import annotations

import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from edgerules.tls import ClientCertValidator, sigcheck, verify
from edgerules.tls.keycheck import cost

from . import chains


@pytest.fixture
def counted(monkeypatch):
    """Record (child subject, issuer subject) for every signature check and the pools
    handed to cryptography."""
    checks: list[tuple[bytes, bytes]] = []
    fast_pools: list[list[bytes]] = []
    real_verify = sigcheck.verify_signature
    real_signed_by = sigcheck.Signatures.signed_by
    real_fast = verify._fast

    def signed_by(self, child, issuer):
        before = self.spent
        ok = real_signed_by(self, child, issuer)
        if self.spent != before:
            checks.append((child.der, issuer.der))
        return ok

    def fast(leaf, pool, anchors, now):
        fast_pools.append([c.der for c in pool])
        return real_fast(leaf, pool, anchors, now)

    monkeypatch.setattr(sigcheck, "verify_signature", real_verify)
    monkeypatch.setattr(sigcheck.Signatures, "signed_by", signed_by)
    monkeypatch.setattr(verify, "_fast", fast)
    return checks, fast_pools


def _fake_rsa(bits: int, e: int) -> rsa.RSAPublicKey:
    """An RSA public key of ``bits`` bits (a random odd modulus: nobody holds its private
    key, but verifying with it costs what a real one costs)."""
    n = int.from_bytes(os.urandom(bits // 8), "big") | (1 << (bits - 1)) | 1
    return rsa.RSAPublicNumbers(e, n).public_key()


def _ca_with_key(subject: str, pub, signer: chains.Issued, serial: int) -> bytes:
    b = (
        x509.CertificateBuilder()
        .subject_name(chains.name(subject))
        .issuer_name(signer.cert.subject)
        .public_key(pub)
        .serial_number(serial)
        .not_valid_before(chains.INT_VALIDITY[0])
        .not_valid_after(chains.INT_VALIDITY[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    return b.sign(signer.key, chains.hashes.SHA256()).public_bytes(chains.serialization.Encoding.DER)


def test_absurd_exponents_are_refused_before_any_signature_check(counted) -> None:
    """The audit's attack: intermediates with ~2000-bit public exponents. Their keys
    never verify anything, and cryptography never sees them."""
    checks, fast_pools = counted
    p = chains.Pki()
    big = chains.rsa_with_exponent((1 << 2040) + 0x1F)
    prev = p.root
    ints = []
    for i in range(7):
        cert = chains.make(chains.name(f"Attack Int {i}"), big, prev, ca=True)
        ints.append(cert)
        prev = cert
    leaf = p.leaf_with(prev)
    chain = [leaf.der, *(c.der for c in reversed(ints))]
    auth = ClientCertValidator([p.root.cert], cache_size=0).validate(chain, now=chains.NOW)
    assert not auth.verified
    assert auth.failure_reason == "unable to decode issuer public key"
    refused = {c.der for c in ints}
    assert all(issuer not in refused for _child, issuer in checks)
    assert all(not (set(pool) & refused) for pool in fast_pools)


def test_budget_bounds_same_name_candidates(counted) -> None:
    """Ten same-subject intermediates with the costliest keys the caps allow (RSA-8192,
    e = 2^32-1), each naming the others as issuer: the work is bounded by the budget and
    cryptography (whose own bound is 128 checks) is not even called."""
    checks, fast_pools = counted
    p = chains.Pki()
    costly = [_fake_rsa(8192, 2**32 - 1) for _ in range(9)]
    loop = chains.make(chains.name("Loop CA"), chains.key("loop-signer"), ca=True)
    ints = [_ca_with_key("Loop CA", pub, loop, 7000 + i) for i, pub in enumerate(costly)]
    # an RSA-8192-sized signature: each candidate really runs its exponentiation
    leaf = chains.with_signature(chains.make(chains.name("victim"), chains.key("leaf"), loop),
                                 b"\x01" + os.urandom(1023))
    v = ClientCertValidator([p.root.cert], cache_size=0)
    auth = v.validate([leaf, *ints], now=chains.NOW)
    assert not auth.verified
    assert auth.failure_reason in (
        "too many candidate issuers (signature check budget exhausted)",
        "self signed certificate in certificate chain",  # self-issued "Loop CA"s
    )
    unit = cost(("rsa", (8192, 2**32 - 1)))
    assert len(checks) * unit <= sigcheck.SIGNATURE_BUDGET
    assert len(set(checks)) == len(checks)  # memoised: no pair checked twice
    assert fast_pools == []  # cryptography's builder would have tried them all


def test_normal_chain_spends_little(counted) -> None:
    checks, fast_pools = counted
    sc = {s.id: s for s in chains.build_scenarios()}["ok-root-int-leaf"]
    auth = ClientCertValidator(list(sc.trusted), cache_size=0).validate(list(sc.chain), now=sc.now)
    assert auth.verified
    assert checks == [] and len(fast_pools) == 1  # cryptography's fast path did the work


def test_failure_classification_is_memoised(counted) -> None:
    """An unverifiable chain: the classifier and the direct-issuer lookup share one memo."""
    checks, _fast_pools = counted
    sc = {s.id: s for s in chains.build_scenarios()}["same-name-different-key-ca-no-akid"]
    auth = ClientCertValidator(list(sc.trusted), cache_size=0).validate(list(sc.chain), now=sc.now)
    assert auth.failure_reason == "certificate signature failure"
    assert len(set(checks)) == len(checks)
