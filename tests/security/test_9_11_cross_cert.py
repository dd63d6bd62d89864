"""Issue 9.11: revocation can't be sidestepped by a cross-certificate.

The mistake: an operator uploads (BYOCA) a second certificate for the managed CA — same
name, same key, other serial and dates (a re-issued or cross-signed copy, e.g. from a
backup) — and associates it with the hostname too. Chains through that copy verify the
managed CA's client certificates, and revocation was matched by *exact* CA certificate,
so a revoked device read as not revoked and got through.

Reproduced through the real CLI (``ca create``, ``cert issue``, ``ca upload``,
``host enable``, ``cert revoke``) and the real proxy on 127.0.0.1 with the revoked
device's real certificate. Revocation is now matched by the issuer's public key.
"""

from __future__ import annotations

import datetime as dt
import sqlite3

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from store_sec_helpers import (
    HOST,
    RULES,
    Client,
    cli,
    deploy,
    echo_origin,
    running_proxy,
)


def _cross_certificate(store, path) -> None:
    """A re-issued copy of the managed CA: its name and key (read from the store file, as
    anyone holding the store or a key backup can), another serial and validity."""
    with sqlite3.connect(store) as db:
        cert_pem, key_pem = db.execute(
            "SELECT certificate, private_key FROM managed_cas"
        ).fetchone()
    ca = x509.load_pem_x509_certificate(cert_pem.encode())
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    now = dt.datetime.now(dt.UTC)
    cross = (
        x509.CertificateBuilder()
        .subject_name(ca.subject)
        .issuer_name(ca.subject)
        .public_key(ca.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                     False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cross.public_bytes(serialization.Encoding.PEM))


def test_revoked_device_stays_revoked_through_an_uploaded_copy_of_the_ca(tmp_path):
    dep = deploy(tmp_path, names=("ok", "revoked"))
    cross = tmp_path / "managed-ca-copy.pem"
    _cross_certificate(dep.store, cross)
    cli("ca", "upload", str(cross), "--name", "managed-copy", "--store", str(dep.store))
    cli("host", "enable", HOST, "--ca", "managed-copy", "--store", str(dep.store))
    with echo_origin() as origin, running_proxy(dep.store, origin, "--rules", str(RULES)) as proxy:
        with Client(proxy.port, dep.devices["revoked"]) as client:
            assert client.get("/") == 403  # revoked: blocked by mtls-required
        with Client(proxy.port, dep.devices["ok"]) as client:
            assert client.get("/") == 200
        # and a revocation made now reaches the path through the copy too
        cli("cert", "revoke", dep.devices["ok"].id, "--store", str(dep.store))
        from store_sec_helpers import wait_for

        def blocked() -> bool:
            with Client(proxy.port, dep.devices["ok"]) as client:
                return client.get("/") == 403

        assert wait_for(blocked)
