"""Crafted client-certificate chains that are expensive to validate (issue 9 item 2).

``expensive_chain(depth)`` builds a leaf and ``depth`` RSA "intermediates" whose public
keys have a 3072-bit modulus and a ~3070-bit public exponent. Nothing in the chain is
trusted and no signature is valid, but checking one signature with such a key is a full
3070-bit modular exponentiation (milliseconds, like an RSA private-key operation), and a
validator that tries every candidate issuer — and then classifies the failure — repeats
it many times per handshake.

Used by ``bench/bench_attack.py`` and the proxy's ``tests/security/test_9_2_*``. Built
with cryptography only; the modulus is generated once per process (cached) and the
certificates are signed by a throw-away 3072-bit key so that every signature has the
modulus' length (a shorter one would be refused before any arithmetic).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

__all__ = ["CraftedChain", "expensive_chain", "fresh_leaves", "write_chain"]


@functools.lru_cache(maxsize=1)
def _keys() -> tuple[rsa.RSAPrivateKey, int]:
    signer = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    modulus_key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    return signer, modulus_key.public_key().public_numbers().n


def _huge_exponent(n: int, index: int, bits: int = 3070) -> int:
    e = (1 << (bits - 1)) | (index << 8) | 1  # ``bits`` bits, odd, distinct per certificate
    while math.gcd(e, n) != 1:
        e += 2
    return e


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class CraftedChain:
    def __init__(self, leaf_key: ec.EllipticCurvePrivateKey, certs: list[x509.Certificate]):
        self.leaf_key = leaf_key
        self.certs = certs  # leaf first, then the intermediates

    @property
    def ders(self) -> list[bytes]:
        return [c.public_bytes(serialization.Encoding.DER) for c in self.certs]


def _build(subject: x509.Name, issuer: x509.Name, public_key, *, ca: bool) -> x509.Certificate:
    signer, _n = _keys()
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    return builder.sign(signer, hashes.SHA256())


def fresh_leaves(chain: CraftedChain, count: int) -> list[CraftedChain]:
    """``count`` chains that differ from ``chain`` only in the leaf (a new serial): each is
    a new validation for a validator that caches results per presented chain, at the
    cost of one RSA signature for the attacker."""
    leaf = chain.certs[0]
    return [
        CraftedChain(
            chain.leaf_key,
            [
                _build(leaf.subject, leaf.issuer, chain.leaf_key.public_key(), ca=False),
                *chain.certs[1:],
            ],
        )
        for _ in range(count)
    ]


def expensive_chain(depth: int = 9, *, tag: str = "attack", exponent_bits: int = 3070) -> CraftedChain:
    """A leaf (with a real EC key, so a TLS client can use it) plus ``depth`` crafted RSA
    intermediates, each naming the next as its issuer.

    ``exponent_bits`` > 32 makes keys that edgerules refuses to verify with (the proxy
    refuses them in the handshake, the validator before any signature check); 32 makes
    the costliest exponent the caps allow, which the validator does verify with."""
    _signer, n = _keys()
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    names = [_name(f"{tag} intermediate {i}") for i in range(depth + 1)]
    certs = [_build(_name(f"{tag} leaf"), names[0], leaf_key.public_key(), ca=False)]
    for i in range(depth):
        public = rsa.RSAPublicNumbers(_huge_exponent(n, i, exponent_bits), n).public_key()
        certs.append(_build(names[i], names[i + 1], public, ca=True))
    return CraftedChain(leaf_key, certs)


def write_chain(chain: CraftedChain, directory: Path, stem: str = "attack") -> tuple[Path, Path]:
    """PEM files for a TLS client: the certificates (leaf first) and the leaf's key."""
    cert = directory / f"{stem}.crt"
    key = directory / f"{stem}.key"
    cert.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain.certs))
    key.write_bytes(
        chain.leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key
