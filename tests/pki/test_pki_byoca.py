"""BYOCA: upload validation (docs/pki.md; Cloudflare's BYOCA page), quota 1489, names, delete rules."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from edgerules.errors import PKIError
from edgerules.store import open_store

from .helpers import NOW, ec_key, make_cert, make_csr, name, pem, rsa_key


@pytest.fixture(scope="module")
def customer_ca():
    key = ec_key()
    return make_cert(name("Customer Root", O="Acme"), key), key


def test_upload_records_fields(store, customer_ca):
    cert, _ = customer_ca
    ca = store.upload_ca(pem(cert), name="acme")
    assert len(ca.id) == 32 and ca.name == "acme" and ca.type == "custom"
    assert ca.subject == ca.issuer == "O=Acme,CN=Customer Root"
    assert ca.signature == "ECDSAWithSHA256"
    assert ca.serial_number == str(cert.serial_number)
    d = ca.to_dict()
    assert d["ca"] is True and d["certificates"].startswith("-----BEGIN CERTIFICATE-----")
    assert store.get_uploaded_ca("acme") == ca == store.get_uploaded_ca(ca.id)
    assert store.list_uploaded_cas() == [ca]


def test_upload_accepts_rsa_sha384_and_intermediate(store):
    root_key = rsa_key()
    root = make_cert(name("Root"), root_key, hash_alg=hashes.SHA384())
    inter_key = ec_key()
    inter = make_cert(name("Issuing CA"), inter_key, issuer=root.subject, issuer_key=root_key)
    assert store.upload_ca(pem(root)).signature == "SHA384WithRSA"
    assert store.upload_ca(pem(inter).encode()).issuer == "CN=Root"  # bytes accepted too


def test_reject_leaf(store):
    key = ec_key()
    leaf = make_cert(name("leaf"), key, ca=False)
    with pytest.raises(PKIError, match=r"leaf \(basicConstraints CA:FALSE\)"):
        store.upload_ca(pem(leaf))
    no_bc = make_cert(name("v3 without basicConstraints"), key, ca=None)
    with pytest.raises(PKIError, match="not a CA"):
        store.upload_ca(pem(no_bc))


def test_reject_unsupported_signature_algorithm(store):
    key = ed25519.Ed25519PrivateKey.generate()
    b = (
        x509.CertificateBuilder()
        .subject_name(name("Ed CA"))
        .issuer_name(name("Ed CA"))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW.replace(year=NOW.year + 1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    )
    cert = b.sign(key, None)
    with pytest.raises(PKIError, match="unsupported signature algorithm ed25519"):
        store.upload_ca(pem(cert))
    rsa_ca_key = rsa_key()
    with pytest.raises(PKIError, match="unsupported signature algorithm"):
        store.upload_ca(pem(make_cert(name("sha224"), rsa_ca_key, hash_alg=hashes.SHA224())))


def test_reject_private_key_in_field(store, customer_ca):
    cert, key = customer_ca
    with pytest.raises(PKIError, match="private key"):
        store.upload_ca(pem(cert) + pem(key))
    with pytest.raises(PKIError, match="private key"):
        store.upload_ca(pem(key))


def test_reject_csr_in_field(store):
    csr_pem, _ = make_csr(name("x"))
    with pytest.raises(PKIError, match="certificate signing request"):
        store.upload_ca(csr_pem)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a certificate",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\nMIIB\n",
    ],
    ids=["empty", "text", "bad-der", "bad-base64", "truncated"],
)
def test_reject_malformed_pem(store, text):
    with pytest.raises(PKIError, match="malformed PEM"):
        store.upload_ca(text)


def test_reject_other_pem_blocks(store, customer_ca):
    _, key = customer_ca
    pub = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(PKIError, match="unsupported PEM blocks"):
        store.upload_ca(pub)


def test_reject_multiple_certificates(store, customer_ca):
    cert, _ = customer_ca
    other = make_cert(name("Other"), ec_key())
    with pytest.raises(PKIError, match="contains 2 certificates: upload exactly one"):
        store.upload_ca(pem(cert) + pem(other))


def test_quota_error_1489(store_path):
    with open_store(store_path, create=True, max_uploaded_cas=2) as s:
        s.upload_ca(pem(make_cert(name("a"), ec_key())))
        s.upload_ca(pem(make_cert(name("b"), ec_key())))
        with pytest.raises(PKIError) as err:
            s.upload_ca(pem(make_cert(name("c"), ec_key())))
        assert err.value.code == 1489
        assert str(err.value) == "Hit maximum CA cert allocation."
        assert len(s.list_uploaded_cas()) == 2


def test_default_quota_is_five(store):
    for i in range(5):
        store.upload_ca(pem(make_cert(name(f"ca{i}"), ec_key())))
    with pytest.raises(PKIError, match=r"Hit maximum CA cert allocation\.") as err:
        store.upload_ca(pem(make_cert(name("ca5"), ec_key())))
    assert err.value.code == 1489
    # deleting frees a slot
    store.delete_uploaded_ca(store.list_uploaded_cas()[0].id)
    store.upload_ca(pem(make_cert(name("ca6"), ec_key())))


def test_names_unique_and_duplicates_rejected(store, customer_ca):
    cert, _ = customer_ca
    store.upload_ca(pem(cert), name="acme")
    with pytest.raises(PKIError, match="already exists"):
        store.upload_ca(pem(make_cert(name("other"), ec_key())), name="acme")
    with pytest.raises(PKIError, match="already uploaded"):
        store.upload_ca(pem(cert), name="acme-2")
    with pytest.raises(PKIError, match="1 to 255"):
        store.upload_ca(pem(make_cert(name("blank"), ec_key())), name="  ")


def test_list_newest_first(store):
    a = store.upload_ca(pem(make_cert(name("a"), ec_key())))
    b = store.upload_ca(pem(make_cert(name("b"), ec_key())))
    assert [c.id for c in store.list_uploaded_cas()] == [b.id, a.id]


def test_delete_only_when_unused(store, customer_ca):
    cert, _ = customer_ca
    ca = store.upload_ca(pem(cert), name="acme")
    store.set_hostname_associations(["a.example.com", "b.example.com"], ca.id)
    with pytest.raises(PKIError, match=r"still associated with a\.example\.com, b\.example\.com"):
        store.delete_uploaded_ca(ca.id)
    store.set_hostname_associations([], ca.id)  # as at Cloudflare: PUT [] first, then DELETE
    assert store.delete_uploaded_ca("acme").id == ca.id
    assert store.list_uploaded_cas() == []
    with pytest.raises(PKIError, match="not found"):
        store.delete_uploaded_ca(ca.id)
    with pytest.raises(PKIError, match="managed CA cannot be deleted"):
        store.delete_uploaded_ca("managed")
