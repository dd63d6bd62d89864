"""Validation settings and CRLs in the product (issue 10 points 1, 3, 4): per-CA and
per-hostname profiles in the store, the upload check, CRLs added from files and fetched
from a URL (a local HTTP server), all honoured by ``validator_for_hostname``."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import sqlite3
import subprocess
import sys
import threading
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from edgerules.errors import PKIError
from edgerules.store import open_store
from edgerules.store import schema as store_schema
from edgerules.store.crlfetch import CRLRefresher, refresh_due
from pki.pg import postgres_database  # noqa: F401 (a fixture; tests/ is on sys.path)

from . import chains

HOST = "api.example.com"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
VALID = (NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=365))


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path, monkeypatch):
    """Both backends run the same SQL (schema version 2, settings, CRLs)."""
    monkeypatch.delenv("EDGERULES_STORE_PASSPHRASE", raising=False)
    monkeypatch.delenv("EDGERULES_ACCOUNT", raising=False)
    if request.param == "sqlite":
        s = open_store(str(tmp_path / "store.db"), create=True)
    else:
        url = request.getfixturevalue("postgres_database")
        s = open_store(url, account_id=f"t-{uuid.uuid4().hex[:12]}", create=True)
    yield s
    s.close()


def _ca(label: str, **kw) -> chains.Issued:
    return chains.make(chains.name(label), chains.key(f"store-{label}"), ca=True,
                       validity=kw.pop("validity", VALID), **kw)


def _leaf(ca: chains.Issued, label: str) -> chains.Issued:
    return chains.make(chains.name(label), chains.key("store-leaf"), ca,
                       validity=(NOW - dt.timedelta(hours=1), NOW + dt.timedelta(days=30)))


def _crl(ca: chains.Issued, serials=(), *, number=1, signer=None, last=None, nxt=None,
         extensions=()) -> bytes:
    last = last or NOW - dt.timedelta(hours=1)
    b = (x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject).last_update(last)
         .next_update(nxt or NOW + dt.timedelta(days=7))
         .add_extension(x509.CRLNumber(number), False))
    for ext, critical in extensions:
        b = b.add_extension(ext, critical=critical)
    for s in serials:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(s).revocation_date(last).build())
    return b.sign(signer or ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _validate(store, chain):
    return store.validator_for_hostname(HOST).validate([c if isinstance(c, bytes) else c.der
                                                        for c in chain])


# --- the upload check = the validation check ---------------------------------------------


def test_upload_check_follows_the_profile(store) -> None:
    nc_bc = _ca("NonCrit BC CA", bc=None,
                extra=[(x509.BasicConstraints(ca=True, path_length=None), False)])
    pem = chains.pem(nc_bc.der)
    with pytest.raises(PKIError, match="Basic Constraints of CA cert not marked critical"):
        store.upload_ca(pem, name="strict-ca", profile="strict")
    assert store.check_ca_upload(pem, profile="strict") == [
        "Basic Constraints of CA cert not marked critical"
    ]
    forced = store.upload_ca(pem, name="forced", profile="strict", force=True)
    assert forced.profile == "strict"
    store.delete_uploaded_ca("forced")
    ca = store.upload_ca(pem, name="partner")  # compatible: OpenSSL accepts it
    assert (ca.profile, ca.allow, ca.crl_stale) == ("compatible", "", "open")
    store.enable_hostnames([HOST], "partner")
    leaf = _leaf(nc_bc, "client of a non-critical-BC CA")
    assert _validate(store, [leaf]).verified
    # the CA's profile is honoured by the validator; a hostname override replaces it
    store.set_ca_settings("partner", profile="strict")
    auth = _validate(store, [leaf])
    assert not auth.verified
    assert auth.failure_reason == "Basic Constraints of CA cert not marked critical"
    store.set_hostname_profile([HOST], "compatible")
    assert _validate(store, [leaf]).verified
    assert store.hostname_profiles() == {HOST: ("compatible", "")}
    store.set_hostname_profile([HOST], None)
    assert not _validate(store, [leaf]).verified


def test_upload_refuses_non_cas_and_weak_keys_unless_allowed(store) -> None:
    leaf_like = chains.make(chains.name("not a CA"), chains.key("store-x"),
                            validity=VALID, bc=(False, None))
    with pytest.raises(PKIError, match="the certificate is a leaf"):
        store.upload_ca(chains.pem(leaf_like.der), force=True)  # even with force
    expired = _ca("Expired CA", validity=(NOW - dt.timedelta(days=30), NOW - dt.timedelta(days=1)))
    with pytest.raises(PKIError, match="certificate has expired"):
        store.upload_ca(chains.pem(expired.der))
    weak = chains.make(chains.name("Weak CA"), chains.key("store-weak", "rsa1024"), ca=True,
                       validity=VALID)
    with pytest.raises(PKIError, match="CA certificate key too weak; allow it with --allow rsa1024"):
        store.upload_ca(chains.pem(weak.der))
    ca = store.upload_ca(chains.pem(weak.der), name="legacy", allow="rsa1024")
    assert ca.allow == "rsa1024"


def test_t61_and_printablestring_cas_are_accepted_and_rendered(store) -> None:
    """Issue 10 point 3: names cryptography cannot decode are handled, never an
    internal error."""
    base = _ca("placeholder-t61")
    t61_name = chains.raw_name(("2.5.4.10", 0x14, "Société".encode("latin-1")),
                               ("2.5.4.3", 0x13, b"Corp_CA #1"))
    der = chains.rebuild(base, base.key, subject=t61_name, issuer=t61_name)
    ca = store.upload_ca(chains.pem(der), name="t61")
    assert ca.subject == ca.issuer == "CN=Corp_CA #1,O=Société"
    store.enable_hostnames([HOST], "t61")
    leaf = chains.rebuild(_leaf(base, "device"), base.key, issuer=t61_name)
    auth = _validate(store, [leaf])
    assert auth.verified, auth.failure_reason
    assert auth.issuer_dn == "CN=Corp_CA #1,O=Société"


def test_cli_upload_with_force_prints_the_reasons(tmp_path) -> None:
    ca = _ca("CLI NC CA", bc=None, extra=[(x509.BasicConstraints(ca=True, path_length=None),
                                           False)])
    (tmp_path / "ca.pem").write_bytes(chains.pem(ca.der))
    base = [sys.executable, "-m", "edgerules", "ca", "upload", str(tmp_path / "ca.pem"),
            "--store", str(tmp_path / "s.db"), "--create", "--profile", "strict"]
    refused = subprocess.run(base, capture_output=True, text=True, check=False)
    assert refused.returncode == 2  # refused (docs/cli.md: 2 = could not run)
    assert "Basic Constraints of CA cert not marked critical" in refused.stderr
    forced = subprocess.run([*base, "--force", "--json"], capture_output=True, text=True,
                            check=False)
    assert forced.returncode == 0, forced.stderr
    assert "warning: Basic Constraints of CA cert not marked critical" in forced.stderr
    assert json.loads(forced.stdout)["warnings"] == [
        "Basic Constraints of CA cert not marked critical"
    ]


# --- CRLs -----------------------------------------------------------------------------------


def test_crl_add_list_remove_and_the_validator(store) -> None:
    ca = _ca("CRL Partner")
    store.upload_ca(chains.pem(ca.der), name="partner")
    store.enable_hostnames([HOST], "partner")
    leaf = _leaf(ca, "device-9")
    assert not _validate(store, [leaf]).revoked
    record = store.add_crl(_crl(ca, [leaf.cert.serial_number]), ca="partner")
    assert (record.ca_name, record.revoked_count, record.crl_number) == ("partner", 1, "1")
    auth = _validate(store, [leaf])  # the trust counter moved: a new validator
    assert auth.verified and auth.revoked
    assert [r.id for r in store.list_crls()] == [record.id]
    store.remove_crl(record.id)
    assert not _validate(store, [leaf]).revoked


def test_crl_add_refusals(store) -> None:
    ca = _ca("CRL Refusals")
    store.upload_ca(chains.pem(ca.der), name="p")
    with pytest.raises(PKIError, match="delta CRLs are not supported"):
        store.add_crl(_crl(ca, extensions=[(x509.DeltaCRLIndicator(1), True)]), ca="p")
    with pytest.raises(PKIError, match="signature does not verify with the CA's key"):
        store.add_crl(_crl(ca, signer=chains.key("store-forger")), ca="p")
    with pytest.raises(PKIError, match="not a CRL"):
        store.add_crl(b"garbage")
    with pytest.raises(PKIError, match="exactly one"):
        store.add_crl(chains.pem(ca.der))
    # a CRL of another issuer (an intermediate below the CA) is kept: it is checked when
    # a client presents that intermediate
    other = _ca("Some Intermediate")
    assert store.add_crl(_crl(other), ca="p").issuer == "CN=Some Intermediate"
    assert store.list_crls()[0].issuer == "CN=Some Intermediate"


class _CRLServer:
    """A local HTTP server serving whatever bytes ``body`` holds (404 when None)."""

    def __init__(self) -> None:
        self.body: bytes | None = None
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if outer.body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ca.crl"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_crl_fetched_from_a_url_and_refreshed(store) -> None:
    ca = _ca("URL Partner")
    store.upload_ca(chains.pem(ca.der), name="partner")
    store.enable_hostnames([HOST], "partner")
    leaf = _leaf(ca, "device-url")
    srv = _CRLServer()
    try:
        srv.body = _crl(ca, [], number=1)
        record = store.add_crl(url=srv.url, ca="partner", refresh_seconds=1)
        ((record, error),) = refresh_due(store, only=record.id)
        assert error == "" and record.crl_number == "1"
        assert not _validate(store, [leaf]).revoked
        # the CA publishes a new CRL: the next refresh picks it up
        srv.body = _crl(ca, [leaf.cert.serial_number], number=2)
        ((record, error),) = refresh_due(store, force=True)
        assert error == "" and record.crl_number == "2" and record.revoked_count == 1
        assert _validate(store, [leaf]).revoked
        # an older CRL replayed by someone on the path is refused; the stored one stays
        srv.body = _crl(ca, [], number=1)
        ((record, error),) = refresh_due(store, force=True)
        assert "older than the stored one" in error and record.crl_number == "2"
        # the server is down: recorded, the CRL kept
        srv.body = None
        ((record, error),) = refresh_due(store, force=True)
        assert "HTTP 404" in error and record.last_error == error
        assert _validate(store, [leaf]).revoked
        # the refresher thread does the same on its schedule
        srv.body = _crl(ca, [], number=3)
        refresher = CRLRefresher(store, interval=0.05).start()
        try:
            deadline = dt.datetime.now() + dt.timedelta(seconds=20)
            while store.list_crls()[0].crl_number != "3" and dt.datetime.now() < deadline:
                threading.Event().wait(0.05)
        finally:
            refresher.stop()
        assert store.list_crls()[0].crl_number == "3"
        assert not _validate(store, [leaf]).revoked
    finally:
        srv.close()


def test_cli_crl_commands(tmp_path) -> None:
    ca = _ca("CLI CRL CA")
    (tmp_path / "ca.pem").write_bytes(chains.pem(ca.der))
    (tmp_path / "ca.crl").write_bytes(_crl(ca, [7, 8]))
    store = str(tmp_path / "s.db")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "edgerules", *args, "--store", store],
                              capture_output=True, text=True, check=False)

    assert run("ca", "upload", str(tmp_path / "ca.pem"), "--name", "p", "--create").returncode == 0
    added = run("crl", "add", str(tmp_path / "ca.crl"), "--ca", "p", "--json")
    assert added.returncode == 0, added.stderr
    crl_id = json.loads(added.stdout)["id"]
    listed = run("crl", "list")
    assert crl_id in listed.stdout and "CN=CLI CRL CA" in listed.stdout
    assert json.loads(run("crl", "show", crl_id, "--json").stdout)["revoked_count"] == 2
    bad = run("crl", "add", str(tmp_path / "ca.pem"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "CRL" in bad.stderr
    unreachable = run("crl", "add", "--url", "http://127.0.0.1:9/none.crl", "--ca", "p")
    assert unreachable.returncode == 2 and "not added" in unreachable.stderr
    assert run("crl", "remove", crl_id).returncode == 0
    assert "No CRLs" in run("crl", "list").stdout


def test_a_version_1_store_is_migrated(tmp_path) -> None:
    """Stores written before issue 10 gain the settings columns with their defaults."""
    path = tmp_path / "old.db"
    s = open_store(str(path), create=True)
    ca = _ca("Old CA")
    s.upload_ca(chains.pem(ca.der), name="old")
    s.close()
    with sqlite3.connect(path) as db:  # back to version 1
        db.execute("DROP INDEX client_certificates_by_status_version")  # version 3
        db.execute("ALTER TABLE client_certificates DROP COLUMN status_version")
        db.execute("DROP TABLE crls")
        db.execute("DROP TABLE hostname_settings")
        for col in ("profile", "allow", "crl_stale"):
            db.execute(f"ALTER TABLE uploaded_cas DROP COLUMN {col}")
        db.execute("UPDATE schema_version SET version = 1")
    s = open_store(str(path))
    try:
        assert s.schema_version() == store_schema.CURRENT_VERSION
        old = s.get_uploaded_ca("old")
        assert (old.profile, old.allow, old.crl_stale) == ("compatible", "", "open")
        assert s.list_crls() == []
    finally:
        s.close()


@pytest.mark.parametrize(
    ("tag", "value"),
    [(0x14, "Zürich-001".encode("latin-1")), (0x13, b"device_001"), (0x0C, b"caf\xe9-01xx")],
    ids=["t61-latin1", "printablestring-underscore", "invalid-utf8"],
)
def test_csrs_with_undecodable_names_are_refused_with_a_reason(store, tag, value) -> None:
    """Issue 10 point 3: never an internal error."""
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    base = x509.CertificateSigningRequestBuilder().subject_name(chains.name("X" * len(value)))
    info = base.sign(key, hashes.SHA256()).tbs_certrequest_bytes
    placeholder = bytes([0x0C, len(value)]) + b"X" * len(value)
    info = info.replace(placeholder, bytes([tag, len(value)]) + value)
    sig = key.sign(info, chains.ec.ECDSA(hashes.SHA256()))
    der = chains._tlv(0x30, info + bytes.fromhex("300a06082a8648ce3d040302")
                      + chains._tlv(0x03, b"\x00" + sig))
    import base64
    import textwrap

    pem = ("-----BEGIN CERTIFICATE REQUEST-----\n"
           + "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
           + "\n-----END CERTIFICATE REQUEST-----\n")
    with pytest.raises(PKIError, match="the CSR's subject cannot be decoded"):
        store.issue_certificate(csr=pem)
