"""Managed CA and client-certificate issuing: record fields, extensions, CSRs, keys, PKCS#12."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgerules.errors import PKIError
from edgerules.store import open_store

from .helpers import make_csr, name, rsa_key


def load(pem_text: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem_text.encode())


def test_managed_ca_created_once_with_ca_extensions(store):
    assert store.managed_ca(create=False) is None
    ca = store.managed_ca()
    assert store.managed_ca().id == ca.id  # one per account
    cert = load(ca.certificate)
    assert ca.name == f"edgerules Managed CA for account {store.account_id}"
    assert re.fullmatch(r"CN=Managed CA [0-9a-f]{26},OU=edgerules,O=edgerules", ca.subject)
    assert cert.issuer == cert.subject
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski.digest.hex() == ca.ski
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"
    assert ca.signature == "ECDSAWithSHA256" and ca.key_type == "ecdsa"


def test_managed_ca_rsa_option(tmp_path):
    with open_store(tmp_path / "r.db", create=True, ca_key_type="rsa") as s:
        ca = s.managed_ca()
        assert ca.key_type == "rsa" and ca.signature == "SHA256WithRSA"
        rec = s.issue_certificate().record
        assert rec.signature == "SHA256WithRSA"


def test_managed_cas_are_per_account(store_path):
    with open_store(store_path, create=True, account_id="a") as a, open_store(store_path, account_id="b") as b:
        assert a.managed_ca().id != b.managed_ca().id
        assert a.managed_ca().name.endswith("account a")
        a.issue_certificate()
        assert a.list_certificates().total_count == 1
        assert b.list_certificates().total_count == 0


def test_generated_key_record_has_every_field(store):
    issued = store.issue_certificate(validity_days=3650)
    r = issued.record
    d = r.to_dict()
    assert set(d) == {
        "id",
        "certificate",
        "csr",
        "certificate_authority",
        "common_name",
        "organization",
        "organizational_unit",
        "country",
        "state",
        "location",
        "serial_number",
        "ski",
        "fingerprint_sha256",
        "signature",
        "issued_on",
        "expires_on",
        "validity_days",
        "status",
    }
    cert = load(r.certificate)
    ca = store.managed_ca()
    assert re.fullmatch(r"[0-9a-f]{32}", r.id)
    assert d["certificate_authority"] == {"id": ca.id, "name": ca.name}
    # documented by Cloudflare: a Cloudflare-generated key gets exactly CN=Cloudflare, C=US
    assert cert.subject.rfc4514_string() == "CN=Cloudflare,C=US"
    assert (r.common_name, r.country, r.organization) == ("Cloudflare", "US", "")
    assert r.serial_number == str(cert.serial_number) and r.serial_number.isdigit()
    assert 0 < cert.serial_number < 2**160
    assert int(r.serial_hex, 16) == cert.serial_number and len(r.serial_hex) % 2 == 0
    assert r.serial_hex == r.serial_hex.upper()
    assert r.ski == r.ski.lower() and len(r.ski) == 40
    der = cert.public_bytes(serialization.Encoding.DER)
    assert r.fingerprint_sha256 == hashlib.sha256(der).hexdigest()
    assert r.signature == "ECDSAWithSHA256"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r.issued_on)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=3650)
    assert r.expires_on == cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert r.validity_days == 3650 and r.status == "active"
    # the key is returned once, PKCS#8, and matches the certificate
    key = serialization.load_pem_private_key(issued.private_key.encode(), None)
    assert issued.private_key.startswith("-----BEGIN PRIVATE KEY-----")
    assert key.public_key() == cert.public_key()
    assert "private_key" in issued.to_dict()
    assert r.csr.startswith("-----BEGIN CERTIFICATE REQUEST-----")


def test_client_certificate_extensions(store):
    r = store.issue_certificate().record
    cert = load(r.certificate)
    ca = load(store.managed_ca().certificate)
    ext = cert.extensions
    assert ext.get_extension_for_class(x509.ExtendedKeyUsage).value._usages == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    ku = ext.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    assert ext.get_extension_for_class(x509.BasicConstraints).value.ca is False
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert (
        aki.key_identifier
        == ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    )
    with pytest.raises(x509.ExtensionNotFound):
        ext.get_extension_for_class(x509.SubjectAlternativeName)
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)


def test_rsa_generated_key(store):
    issued = store.issue_certificate(key_type="rsa")
    key = serialization.load_pem_private_key(issued.private_key.encode(), None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048


def test_subject_and_common_name_options(store):
    r = store.issue_certificate(common_name="device-42").record
    assert r.subject == "CN=device-42,C=US"
    r = store.issue_certificate(subject="CN=dev,OU=iot,O=Acme,L=Austin,ST=Texas,C=US").record
    assert (r.common_name, r.organizational_unit, r.organization) == ("dev", "iot", "Acme")
    assert (r.location, r.state, r.country) == ("Austin", "Texas", "US")
    with pytest.raises(PKIError, match="invalid subject"):
        store.issue_certificate(subject="not a dn")


def test_csr_subject_becomes_certificate_subject(store):
    subject = name("sensor-7", O="Acme", OU="Fleet", C="DE", ST="Berlin", L="Berlin")
    csr_pem, key = make_csr(subject)
    issued = store.issue_certificate(csr=csr_pem, validity_days=30)
    assert issued.private_key is None
    r = issued.record
    assert r.csr == csr_pem  # as submitted
    cert = load(r.certificate)
    assert cert.subject == subject
    assert cert.public_key() == key.public_key()
    assert (r.common_name, r.organization, r.organizational_unit) == ("sensor-7", "Acme", "Fleet")
    assert (r.country, r.state, r.location) == ("DE", "Berlin", "Berlin")
    assert r.validity_days == 30


def test_rsa_csr(store):
    csr_pem, _ = make_csr(name("rsa-device"), rsa_key())
    assert store.issue_certificate(csr=csr_pem).record.common_name == "rsa-device"


@pytest.mark.parametrize(
    ("csr", "message"),
    [
        ("hello", "malformed CSR"),
        (
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            "malformed CSR",
        ),
    ],
)
def test_malformed_csr_rejected(store, csr, message):
    with pytest.raises(PKIError, match=message):
        store.issue_certificate(csr=csr)


def test_csr_with_bad_signature_rejected(store):
    key_a, key_b = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    good = (
        x509.CertificateSigningRequestBuilder().subject_name(name("x")).sign(key_a, hashes.SHA256())
    )
    # Swap in another key's SubjectPublicKeyInfo: the self-signature no longer matches.
    der = bytearray(good.public_bytes(serialization.Encoding.DER))
    spki_a = key_a.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    spki_b = key_b.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    i = der.index(spki_a)
    der[i : i + len(spki_a)] = spki_b
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(PKIError, match="signature is invalid"):
        store.issue_certificate(csr=tampered)


def test_csr_weak_key_and_empty_subject_rejected(store):
    csr_pem, _ = make_csr(name("weak"), rsa_key(1024))
    with pytest.raises(PKIError, match="too small"):
        store.issue_certificate(csr=csr_pem)
    key = ec.generate_private_key(ec.SECP256R1())
    empty = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(PKIError, match="subject is empty"):
        store.issue_certificate(csr=empty.public_bytes(serialization.Encoding.PEM))


def test_csr_cannot_be_combined_with_subject(store):
    csr_pem, _ = make_csr(name("x"))
    with pytest.raises(PKIError, match="cannot be combined"):
        store.issue_certificate(csr=csr_pem, common_name="y")


@pytest.mark.parametrize("days", [0, -1, 5476, 10**6, "10", 1.5, True])
def test_validity_days_bounds(store, days):
    with pytest.raises(PKIError, match="validity_days"):
        store.issue_certificate(validity_days=days)


def test_validity_days_extremes_accepted(store):
    assert store.issue_certificate(validity_days=1).record.validity_days == 1
    assert store.issue_certificate(validity_days=5475).record.validity_days == 5475


def test_unknown_key_type(store):
    with pytest.raises(PKIError, match="unsupported key type"):
        store.issue_certificate(key_type="dsa")


def test_serials_and_ids_unique(store):
    records = [store.issue_certificate().record for _ in range(40)]
    assert len({r.serial_number for r in records}) == 40
    assert len({r.id for r in records}) == 40
    assert all(len(format(int(r.serial_number), "x")) <= 40 for r in records)


def test_generated_private_key_never_stored(sqlite_store, store_path):
    store = sqlite_store
    issued = store.issue_certificate()
    body = "".join(issued.private_key.strip().splitlines()[1:-1])
    store.close()
    blob = _read_all(store_path)
    assert body.encode() not in blob
    assert b"BEGIN PRIVATE KEY" in blob  # the CA key is there (no passphrase configured)


def _read_all(path: str) -> bytes:
    """The database file plus its WAL (if one is left), i.e. everything on disk."""
    blob = b""
    for suffix in ("", "-wal"):
        try:
            with open(path + suffix, "rb") as fh:
                blob += fh.read()
        except FileNotFoundError:
            pass
    return blob


def test_ca_key_encrypted_at_rest_with_passphrase(store_path, monkeypatch):
    monkeypatch.setenv("EDGERULES_STORE_PASSPHRASE", "correct horse")
    with open_store(store_path, create=True) as s:
        assert s.managed_ca().key_encrypted
        s.issue_certificate()
    blob = _read_all(store_path)
    assert b"ENCRYPTED PRIVATE KEY" in blob and b"BEGIN PRIVATE KEY" not in blob
    monkeypatch.setenv("EDGERULES_STORE_PASSPHRASE", "wrong")
    with open_store(store_path) as s, pytest.raises(PKIError, match="wrong passphrase"):
        s.issue_certificate()
    monkeypatch.delenv("EDGERULES_STORE_PASSPHRASE")
    with open_store(store_path) as s, pytest.raises(PKIError, match="encrypted"):
        s.issue_certificate()
    with open_store(store_path, passphrase="correct horse") as s:
        assert s.issue_certificate().record.status == "active"


def test_clear_ca_key_is_encrypted_once_a_passphrase_is_configured(store_path, monkeypatch):
    # A store created without a passphrase holds the CA key in clear; once the operator
    # configures one, the key must not stay in clear (it is re-encrypted when first used).
    monkeypatch.delenv("EDGERULES_STORE_PASSPHRASE", raising=False)
    with open_store(store_path, create=True) as s:
        s.issue_certificate()
        assert not s.managed_ca().key_encrypted
    with open_store(store_path, passphrase="correct horse") as s:
        assert s.issue_certificate().record.status == "active"
        assert s.managed_ca().key_encrypted
    blob = _read_all(store_path)
    assert b"ENCRYPTED PRIVATE KEY" in blob and b"BEGIN PRIVATE KEY" not in blob
    with open_store(store_path) as s, pytest.raises(PKIError, match="encrypted"):
        s.issue_certificate()
    with open_store(store_path, passphrase="correct horse") as s:
        assert s.issue_certificate().record.status == "active"


def test_pkcs12_with_generated_key(store):
    issued = store.issue_certificate(common_name="phone")
    data = store.export_pkcs12(issued.record.id, private_key=issued.private_key, password=b"pw")
    key, cert, extra = pkcs12.load_key_and_certificates(data, b"pw")
    assert cert == load(issued.record.certificate)
    assert key.public_key() == cert.public_key()
    assert extra == [load(store.managed_ca().certificate)]
    legacy = store.export_pkcs12(
        issued.record.id, private_key=issued.private_key, password=b"pw", legacy=True
    )
    assert pkcs12.load_key_and_certificates(legacy, b"pw")[1] == cert


def test_pkcs12_without_key_and_with_wrong_key(store):
    issued = store.issue_certificate()
    bundle = pkcs12.load_pkcs12(store.export_pkcs12(issued.record.id), None)
    # Without a key PKCS#12 has no "the" certificate: both are plain certificate bags.
    assert bundle.key is None
    assert [c.certificate for c in bundle.additional_certs] == [
        load(issued.record.certificate),
        load(store.managed_ca().certificate),
    ]
    other = store.issue_certificate()
    with pytest.raises(PKIError, match="does not match"):
        store.export_pkcs12(issued.record.id, private_key=other.private_key)
    with pytest.raises(PKIError, match="malformed private key"):
        store.export_pkcs12(
            issued.record.id,
            private_key="-----BEGIN PRIVATE KEY-----\nAA\n-----END PRIVATE KEY-----\n",
        )


def test_subject_name_oids_roundtrip(store):
    r = store.issue_certificate(subject="CN=a\\,b,O=x+OU=y,C=US").record
    cert = load(r.certificate)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "a,b"


def test_serial_collision_is_retried(store, monkeypatch):
    serials = iter([5, 5, 7])
    monkeypatch.setattr(type(store), "_next_serial", lambda self: next(serials))
    assert store.issue_certificate().record.serial_number == "5"
    assert store.issue_certificate().record.serial_number == "7"
    assert store.list_certificates().total_count == 2


def test_serials_are_unique_monotonic_and_unpredictable(store):
    from edgerules.pki import issuing

    serials = [int(store.issue_certificate().record.serial_number) for _ in range(5)]
    assert serials == sorted(serials) and len(set(serials)) == 5
    assert all(0 < s < 2**159 for s in serials)
    sequence = [s >> issuing.SEQUENCE_SHIFT for s in serials]
    assert sequence == list(range(sequence[0], sequence[0] + 5))  # one counter per account
    low = {s & (2**issuing.SEQUENCE_SHIFT - 1) for s in serials}
    assert len(low) == 5  # the random part differs


def test_kdf_iterations_reader():
    from cryptography.hazmat.primitives import serialization

    from edgerules.pki import keys

    key = keys.generate_key()
    assert keys.kdf_iterations(keys.key_to_pem(key)) is None
    assert keys.kdf_iterations(keys.key_to_pem(key, b"pw")) == keys.KDF_ITERATIONS
    old = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    assert keys.kdf_iterations(old) == 2048
    garbage = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
    assert keys.kdf_iterations(garbage) == 0  # unreadable: weaker than ours, re-encrypted
    with pytest.raises(PKIError, match="empty"):
        keys.key_to_pem(key, b"")
