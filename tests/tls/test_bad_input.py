"""Bad input is data (issue 3 point 4) and the path-building DoS guard (point 6c)."""

from __future__ import annotations

import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa
from hypothesis import given
from hypothesis import strategies as st

from edgerules.tls import ClientCertValidator
from edgerules.tls.headers import forwarding_headers
from edgerules.tls.validator import MAX_DISTINCT, MAX_PRESENTED

from .ca_fixture import NOW, key, make_cert, make_leaf, pki, profiles

UNDECODABLE = "unable to decode certificate"


@pytest.fixture(scope="module")
def validator() -> ClientCertValidator:
    return ClientCertValidator([pki().root.cert, pki().intermediate.cert])


def _failed(auth, reason: str | None = None) -> None:
    assert auth.presented is True
    assert auth.verified is False and auth.revoked is False
    assert auth.failure_reason
    if reason is not None:
        assert auth.failure_reason == reason
    # every derived view works
    assert auth.tls_client_auth["certVerified"] == "FAILED:" + auth.failure_reason
    dict(auth.fields())
    forwarding_headers(auth, "all")


def test_garbage(validator) -> None:
    _failed(validator.validate([b"\x00garbage"], now=NOW), UNDECODABLE)
    _failed(validator.validate([b""], now=NOW), UNDECODABLE)
    auth = validator.validate([b"hello"], now=NOW)
    assert auth.subject_dn == "" and auth.rfc9440 == "" and auth.fingerprint_sha256 == ""


def test_truncated_der(validator) -> None:
    der = profiles()["valid"].chain[0]
    for cut in (1, 10, len(der) // 2, len(der) - 1):
        _failed(validator.validate([der[:cut]], now=NOW), UNDECODABLE)


def test_garbage_intermediate_keeps_leaf_fields(validator) -> None:
    leaf = profiles()["valid"].chain[0]
    auth = validator.validate([leaf, b"\x30\x03\x02\x01\x01"], now=NOW)
    _failed(auth, UNDECODABLE)
    assert auth.subject_dn == "CN=Cloudflare,C=US"
    assert auth.issuer_serial == "2688201DBA77402EA87118876F2E1B24CF8B0395"


def test_non_bytes_items(validator) -> None:
    _failed(validator.validate([None], now=NOW), UNDECODABLE)  # type: ignore[list-item]
    # bytearray / memoryview are accepted as bytes
    der = profiles()["valid"].chain[0]
    assert validator.validate([bytearray(der)], now=NOW).verified
    assert validator.validate([memoryview(der)], now=NOW).verified


def test_extraneous_certificates_are_ignored(validator) -> None:
    """RFC 8446 §4.4.2: be prepared for extraneous certificates (issue 10's table: a valid
    leaf sent with 29 unrelated certificates; nginx answers 200)."""
    p = pki()
    leaf = make_leaf("long chain", p.root)
    others = [make_leaf(f"filler {i}", p.root).der for i in range(49)]
    auth = validator.validate([leaf.der, *others], now=NOW)
    assert auth.verified, auth.failure_reason
    assert auth.chain_der[1:] == tuple(others)  # still forwarded as sent


def test_too_many_presented(validator) -> None:
    p = pki()
    leaf = make_leaf("long chain", p.root)
    others = [make_leaf(f"filler {i}", p.root).der for i in range(MAX_PRESENTED)]
    auth = validator.validate([leaf.der, *others], now=NOW)
    _failed(auth, "certificate chain too long")
    assert auth.subject_dn == "CN=long chain"  # the leaf is still described


def test_too_many_distinct_relevant(validator) -> None:
    """More than MAX_DISTINCT certificates that could be on a path: refused up front."""
    from .ca_fixture import make_ca

    p = pki()
    cas = [make_ca(f"Rel CA {i}", parent=p.root, label=f"rel{i}") for i in range(3)]
    # same subject as each other, different keys: all name-link to the leaf's issuer
    same = [make_ca("Rel CA 0", parent=p.root, label=f"rel-dup{i}") for i in range(MAX_DISTINCT)]
    leaf = make_leaf("distinct", cas[0])
    chain = [leaf.der, *(c.der for c in same), *(c.der for c in cas)]
    assert len(chain) <= MAX_PRESENTED
    _failed(validator.validate(chain, now=NOW), "certificate chain too long")


def test_duplicates_are_harmless(validator) -> None:
    p = pki()
    leaf = make_leaf("dup", p.intermediate)
    chain = [leaf.der, p.intermediate.der, p.intermediate.der, leaf.der, p.intermediate.der]
    auth = validator.validate(chain, now=NOW)
    assert auth.verified
    assert auth.chain_der == tuple(chain)  # as presented
    assert auth.chain_rfc9440.count(":, :") == 3  # four certificates after the leaf, as sent
    assert validator.validate([leaf.der, p.intermediate.der] * 20, now=NOW).verified
    _failed(validator.validate([leaf.der] * (MAX_PRESENTED + 1), now=NOW), "certificate chain too long")


def test_one_megabyte_certificate(validator) -> None:
    p = pki()
    big = make_leaf(
        "big",
        p.root,
        extra=[
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"x" * (1 << 20)
            )
        ],
    )
    assert len(big.der) > 1 << 20
    t = time.perf_counter()
    auth = validator.validate([big.der], now=NOW)
    elapsed = time.perf_counter() - t
    _failed(auth, "excessive message size")
    assert auth.rfc9440 == "" and auth.rfc9440_too_large is True
    assert elapsed < 5  # generous: bounded work, not a benchmark
    # a 1 MB blob of garbage
    _failed(
        validator.validate([b"\x30\x84" + b"\x00" * (1 << 20)], now=NOW), "excessive message size"
    )


def test_unsupported_key_type(validator) -> None:
    p = pki()
    dsa_key = dsa.generate_private_key(key_size=2048)
    leaf = make_cert("dsa client", key_=dsa_key, issuer=p.root)  # type: ignore[arg-type]
    auth = validator.validate([leaf.der], now=NOW)
    assert auth.presented
    # DSA client keys are outside cryptography's WebPKI policy
    if not auth.verified:
        assert auth.failure_reason


def test_unknown_signature_algorithm(validator) -> None:
    der = bytearray(profiles()["valid"].chain[0])
    ecdsa_sha256 = bytes.fromhex("06082a8648ce3d040302")
    assert der.count(ecdsa_sha256) == 2
    patched = bytes(der).replace(ecdsa_sha256, bytes.fromhex("06082a8648ce3d040309"))
    auth = validator.validate([patched], now=NOW)
    _failed(auth)
    assert auth.subject_dn == "CN=Cloudflare,C=US"


def test_tampered_signature(validator) -> None:
    der = bytearray(profiles()["valid"].chain[0])
    der[-5] ^= 0x01
    _failed(validator.validate([bytes(der)], now=NOW))


@given(st.lists(st.binary(max_size=600), min_size=1, max_size=6))
def test_arbitrary_bytes_never_raise(chain: list[bytes]) -> None:
    v = ClientCertValidator([pki().root.cert], cache_size=16)
    auth = v.validate(chain, now=NOW)
    assert auth.presented and not auth.verified and auth.failure_reason
    assert "internal error" not in auth.detail
    dict(auth.fields())
    auth.tls_client_auth  # noqa: B018
    forwarding_headers(auth, "all")


@given(st.data())
def test_mutated_certificates_never_raise(data: st.DataObject) -> None:
    """Flip bytes inside a real certificate: decoding, verification and every field must
    still answer without raising."""
    base = bytearray(profiles()["via_intermediate"].chain[0])
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(base) - 1))
        base[i] = data.draw(st.integers(0, 255))
    chain = [bytes(base), profiles()["via_intermediate"].chain[1]]
    auth = ClientCertValidator([pki().root.cert], cache_size=0).validate(chain, now=NOW)
    assert auth.presented
    assert "internal error" not in auth.detail  # the defensive catch-all is never needed
    dict(auth.fields())
    auth.tls_client_auth  # noqa: B018


# --- DoS: several intermediates sharing one subject and key ------------------------------


@pytest.mark.parametrize("copies", [6, 9])
@pytest.mark.parametrize("shape", ["self-issued", "issued-by-root"])
def test_same_subject_and_key_intermediates_are_fast(copies: int, shape: str) -> None:
    p = pki()
    if shape == "self-issued":
        loop = [
            make_cert("Loop CA", key_=key("loop"), ca=True, serial=5000 + i) for i in range(copies)
        ]
        trusted = [p.other.cert]
        expected = "self signed certificate in certificate chain"
    else:
        from .ca_fixture import make_ca

        loop = [
            make_ca("Shared CA", parent=p.intermediate, label="shared", serial=6000 + i)
            for i in range(copies)
        ]
        trusted = [p.other.cert]  # the real root is not trusted: every path fails
        expected = "unable to get local issuer certificate"
    leaf = make_leaf("victim", loop[0])
    chain = [leaf.der] + [c.der for c in loop]
    v = ClientCertValidator(trusted, cache_size=0)
    t = time.perf_counter()
    auth = v.validate(chain, now=NOW)
    elapsed = time.perf_counter() - t
    # Unguarded (older cryptography) this takes minutes; the ceiling cannot flake.
    assert elapsed < 2.0
    _failed(auth, expected)


def test_same_subject_and_key_keeps_a_valid_copy() -> None:
    """De-duplication keeps the copy valid at `now`, so a renewed intermediate sent after
    its expired predecessor still verifies."""
    from .ca_fixture import DAY, make_ca

    p = pki()
    old = make_ca(
        "Renewed CA",
        parent=p.root,
        label="renewed",
        serial=71,
        not_before=NOW - 100 * DAY,
        not_after=NOW - DAY,
    )
    new = make_ca("Renewed CA", parent=p.root, label="renewed", serial=72)
    leaf = make_leaf("renewed client", new)
    auth = ClientCertValidator([p.root.cert]).validate([leaf.der, old.der, new.der], now=NOW)
    assert auth.verified, auth.failure_reason
    assert auth.issuer.serial_number == 72


def test_chain_argument_shapes(validator) -> None:
    der = profiles()["valid"].chain[0]
    assert validator.validate(der, now=NOW).verified  # a lone DER certificate
    assert validator.validate(iter([der]), now=NOW).verified  # any iterable
    assert validator.validate(None, now=NOW).presented is False  # type: ignore[arg-type]
    _failed(validator.validate([48, 130], now=NOW), UNDECODABLE)  # type: ignore[list-item]
