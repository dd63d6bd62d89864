"""Issue 9.2 (validator side): no client can make the validator spend unbounded CPU with
crafted certificates.

The attack: an mTLS client presents its certificate with a chain of RSA "intermediates"
whose public exponents have thousands of bits; every signature check with such a key
costs milliseconds, and the old validator checked each several times (cryptography's path
builder, then its own failure classifier). Now keys over the caps (RSA e > 2^32-1,
modulus > 8192 bits, …) are refused before any signature check, every check of one
validation is memoised and paid from one budget (tests/tls/test_dos_budget.py counts the
work; bench/bench_validator_attack.py measures it).

Reproduced through the real CLI (``ca upload``, ``host enable``) and the real proxy on
127.0.0.1 with a real TLS client sending the crafted chain: the proxy refuses it in the
handshake (before OpenSSL would check a signature with such a key on the event loop);
the validator, which embedders without a handshake in front (the middleware) rely on,
refuses it naming the key, as OpenSSL names an issuer key it cannot use. Work is judged
by its effect, not by timing.
"""

from __future__ import annotations

import json
import ssl
import sys
from pathlib import Path

import pytest
from store_sec_helpers import HOST, RULES, Client, Device, cli, echo_origin, running_proxy, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tls import chains


def _write(path: Path, *ders: bytes) -> Path:
    path.write_bytes(b"".join(chains.pem(d) for d in ders))
    return path


def _key(path: Path, key) -> Path:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def _records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_absurd_rsa_exponents_are_refused_unused(tmp_path):
    store = tmp_path / "store.db"
    validity = (chains.dt.datetime(2020, 1, 1, tzinfo=chains.UTC),
                chains.dt.datetime(2045, 1, 1, tzinfo=chains.UTC))
    ca = chains.make(chains.name("Partner Root"), chains.key("sec92-ca"), ca=True,
                     validity=validity)
    cli("ca", "upload", str(_write(tmp_path / "ca.pem", ca.der)), "--name", "partner",
        "--store", str(store), "--create")
    cli("host", "enable", HOST, "--ca", "partner", "--store", str(store))

    # 7 intermediates sharing one RSA-2048 key whose public exponent has 2041 bits: a
    # cryptographically valid chain, each signature check costing ~100x a normal one
    big = chains.rsa_with_exponent((1 << 2040) + 0x1F)
    prev, ints = ca, []
    for i in range(7):
        prev = chains.make(chains.name(f"Attack Int {i}"), big, prev, ca=True, validity=validity)
        ints.append(prev)
    attacker_key = chains.key("sec92-attacker")
    leaf = chains.make(chains.name("attacker"), attacker_key, prev,
                       validity=(chains.dt.datetime(2024, 1, 1, tzinfo=chains.UTC),
                                 chains.dt.datetime(2040, 1, 1, tzinfo=chains.UTC)))
    attacker = Device("attacker", _write(tmp_path / "attacker.crt", leaf.der,
                                         *(c.der for c in reversed(ints))),
                      _key(tmp_path / "attacker.key", attacker_key))
    normal_key = chains.key("sec92-normal")
    normal_leaf = chains.make(chains.name("normal"), normal_key, ca,
                              validity=(chains.dt.datetime(2024, 1, 1, tzinfo=chains.UTC),
                                        chains.dt.datetime(2040, 1, 1, tzinfo=chains.UTC)))
    normal = Device("normal", _write(tmp_path / "normal.crt", normal_leaf.der),
                    _key(tmp_path / "normal.key", normal_key))

    # The proxy refuses such a chain in the handshake (OpenSSL would check the leaf's
    # signature with the first intermediate's key on the event loop): no request, no
    # validation; a normal client is served.
    log = tmp_path / "access.log"
    with echo_origin() as origin, running_proxy(store, origin, "--rules", str(RULES),
                                                "--access-log", str(log)) as proxy:
        for _ in range(3):
            with pytest.raises((ssl.SSLError, ConnectionError)), Client(proxy.port, attacker) as c:
                c.get("/attack")
        with Client(proxy.port, normal) as client:
            assert client.get("/normal") == 200
        assert wait_for(lambda: len(_records(log)) >= 1)
    records = _records(log)
    assert [r["path"] for r in records] == ["/normal"]
    assert records[0]["cert_status"] == "SUCCESS"

    # Where no handshake stands in front (the middleware, certificates forwarded in a
    # header), the validator itself refuses the key before any signature check, naming it
    # as OpenSSL names an issuer key it cannot use.
    from edgerules.store import open_store

    with open_store(str(store), read_only=True) as opened:
        validator = opened.validator_for_hostname(HOST)
        auth = validator.validate([leaf.der, *(c.der for c in reversed(ints))])
    assert auth.presented and not auth.verified
    assert auth.tls_client_auth["certVerified"] == "FAILED:unable to decode issuer public key"
