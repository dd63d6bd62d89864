"""End to end through the validator: issue → validate → revoke → validate → restore;
BYOCA certificates verify only on their hostnames; trust changes reach cached validators."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .helpers import ec_key, make_cert, name, pem

P = "cf.tls_client_auth."


def der(pem_text: str) -> bytes:
    return x509.load_pem_x509_certificate(pem_text.encode()).public_bytes(
        serialization.Encoding.DER
    )


def test_full_lifecycle(store, reopen):
    store.enable_hostnames(["api.example.com"])
    ca = store.managed_ca()
    issued = store.issue_certificate(subject="CN=device-1,O=Acme,C=US", validity_days=365)
    r = issued.record
    chain = [der(r.certificate)]

    validator = store.validator_for_hostname("API.Example.com.")
    assert validator is not None
    auth = validator.validate(chain)
    assert (auth.presented, auth.verified, auth.revoked) == (True, True, False)
    f = auth.fields()
    assert f[P + "cert_presented"] is True and f[P + "cert_verified"] is True
    assert f[P + "cert_revoked"] is False
    assert f[P + "cert_subject_dn"] == b"CN=device-1,O=Acme,C=US"
    assert f[P + "cert_issuer_dn"] == ca.subject.encode()
    assert f[P + "cert_serial"] == r.serial_hex.encode()  # what `cert show` prints
    assert f[P + "cert_fingerprint_sha256"] == r.fingerprint_sha256.encode()
    assert f[P + "cert_ski"].decode().lower() == r.ski
    assert f[P + "cert_issuer_ski"].decode().lower() == ca.ski
    assert auth.tls_client_auth["certVerified"] == "SUCCESS"

    store.revoke_certificate(r.id)
    auth = validator.validate(chain)  # the same (cached) validator sees it at once
    assert (auth.presented, auth.verified, auth.revoked) == (True, True, True)
    assert auth.fields()[P + "cert_revoked"] is True

    store.restore_certificate(r.id)
    auth = store.validator_for_hostname("api.example.com").validate(chain)
    assert (auth.verified, auth.revoked) == (True, False)

    # a revoke from another process/connection is visible too (at once with interval 0;
    # the default bounds the delay, see test_pki_store)
    store.revocation_poll_interval = 0
    reopen().revoke_certificate(r.id)
    assert validator.validate(chain).revoked is True


def test_validator_cached_until_trust_changes(store):
    store.enable_hostnames(["a.example.com"])
    v1 = store.validator_for_hostname("a.example.com")
    assert store.validator_for_hostname("A.EXAMPLE.COM") is v1
    store.upload_ca(pem(make_cert(name("Other CA"), ec_key())))
    v2 = store.validator_for_hostname("a.example.com")
    assert v2 is not v1 and v2.trust_version == store.trust_version()
    store.disable_hostnames(["a.example.com"], all_cas=True)
    assert store.validator_for_hostname("a.example.com") is None


def test_unrelated_and_missing_certificates(store):
    store.enable_hostnames(["api.example.com"])
    validator = store.validator_for_hostname("api.example.com")
    auth = validator.validate([])
    assert (auth.presented, auth.verified) == (False, False)
    self_signed = make_cert(name("me"), ec_key(), ca=False, client_auth=True)
    auth = validator.validate([self_signed.public_bytes(serialization.Encoding.DER)])
    assert (auth.presented, auth.verified, auth.revoked) == (True, False, False)


@pytest.fixture
def byoca(store):
    ca_key = ec_key()
    ca_cert = make_cert(name("Acme Device CA", O="Acme"), ca_key)
    uploaded = store.upload_ca(pem(ca_cert), name="acme")
    leaf = make_cert(
        name("acme-device"),
        ec_key(),
        issuer=ca_cert.subject,
        issuer_key=ca_key,
        ca=False,
        client_auth=True,
    )
    return uploaded, leaf.public_bytes(serialization.Encoding.DER)


def test_byoca_certificate_verifies_only_on_its_hostnames(store, byoca):
    uploaded, leaf = byoca
    store.set_hostname_associations(["byoca.example.com", "both.example.com"], uploaded.id)
    store.set_hostname_associations(["managed.example.com", "both.example.com"])
    managed_leaf = der(store.issue_certificate().record.certificate)

    for host, byoca_ok, managed_ok in [
        ("byoca.example.com", True, False),
        ("managed.example.com", False, True),
        ("both.example.com", True, True),
    ]:
        v = store.validator_for_hostname(host)
        assert v.validate([leaf]).verified is byoca_ok, host
        assert v.validate([managed_leaf]).verified is managed_ok, host
    assert store.validator_for_hostname("other.example.com") is None
    # BYOCA certificates are never revoked by the store (Cloudflare has no BYOCA revocation)
    assert store.validator_for_hostname("byoca.example.com").validate([leaf]).revoked is False

    # remove the association (PUT []) and the host stops trusting the CA, then delete it
    store.set_hostname_associations([], uploaded.id)
    assert store.validator_for_hostname("byoca.example.com") is None
    assert store.validator_for_hostname("both.example.com").validate([leaf]).verified is False
    store.delete_uploaded_ca(uploaded.id)


def test_serial_hex_matches_validator_field_for_odd_length_serials(store, monkeypatch):
    monkeypatch.setattr(type(store), "_next_serial", lambda self: 0xABC)
    store.enable_hostnames(["a.example.com"])
    r = store.issue_certificate().record
    assert r.serial_hex == "0ABC" and r.serial_number == str(0xABC)
    auth = store.validator_for_hostname("a.example.com").validate([der(r.certificate)])
    assert auth.fields()[P + "cert_serial"] == b"0ABC"
