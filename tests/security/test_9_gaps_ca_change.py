"""Issue 9 item 1 (docs/security.md row 1), the "CA change" case: a change of the CAs
trusted for a hostname reaches connections that are already open.

Attack: the verdict used to be computed once per TLS connection. A device of a CA the
operator just stopped trusting for the hostname (a compromised or retired CA) would keep
its keep-alive connection and go on being served as verified; a device of a newly
trusted CA would stay refused until it reconnected.

Guarantee: every request is judged with the hostname's current CA set. Here the host
starts with the managed CA; ``edgerules host enable HOST --ca other`` (the CLI, another
process, the store the proxy runs on) adds an uploaded CA, then
``edgerules host disable HOST --ca managed`` removes the managed one. Two connections
opened before any change — one with a managed-CA certificate, one with the other CA's —
each see their next requests judged by the new set. The documented bound is the poll
interval (0.25 s); the test waits for the change with a generous deadline and then checks
that it holds (a liveness check, not a speed measurement). Through the ``edgerules proxy``
CLI, real TLS, ``http.client`` keep-alive connections."""

from __future__ import annotations

import datetime as dt
import time
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from proxy_attack_helpers import HOST, RULES, cli_proxy, deployment, echo_origin
from test_9_1_revocation_live import KeepAlive

DEADLINE = 10.0  # seconds for a committed change to reach an open connection (liveness)


def other_ca(tmp) -> SimpleNamespace:
    """An outside CA (BYOCA) and one client certificate it issued, as PEM files."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Other Devices CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "other-device")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = SimpleNamespace(
        ca=tmp / "other-ca.pem", cert=tmp / "other-device.crt", key=tmp / "other-device.key"
    )
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.fixture()
def env(tmp_path):
    dep = deployment(tmp_path)  # the managed CA, device-1, mTLS on HOST with the managed CA
    other = other_ca(tmp_path)
    dep.cli("ca", "upload", str(other.ca), "--name", "other")
    with echo_origin() as (thread, _origin), cli_proxy(
        "--upstream", f"http://127.0.0.1:{thread.port}",
        "--rules", str(RULES), "--store", str(dep.store), "--access-log", "off",
    ) as (proc, port):
        yield dep, other, port
        proc.terminate()
        assert proc.wait(10) == 0


def until(conn: KeepAlive, status: int, path: str) -> float:
    """Requests on the open connection until one answers ``status`` (within DEADLINE);
    returns how long after the call that took."""
    start = time.monotonic()
    seen = []
    while time.monotonic() - start < DEADLINE:
        seen.append(conn.get(path)[0])
        if seen[-1] == status:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(
        f"no {status} within {DEADLINE} s on the open connection: {len(seen)} requests "
        f"answered {sorted(set(seen))}"
    )


def test_a_ca_change_reaches_open_keepalive_connections(env):
    dep, other, port = env
    managed_device = KeepAlive(port, dep)
    other_device = KeepAlive(port, other)
    assert managed_device.get("/before")[0] == 200
    assert other_device.get("/before")[0] == 403  # its CA is not trusted for HOST yet

    # Trust the other CA too: the other device's open connection is now verified.
    dep.cli("host", "enable", HOST, "--ca", "other")
    until(other_device, 200, "/other-trusted")
    assert [other_device.get("/other-trusted")[0] for _ in range(3)] == [200] * 3
    assert managed_device.get("/both-trusted")[0] == 200

    # Stop trusting the managed CA: the managed device's open connection is refused.
    dep.cli("host", "disable", HOST, "--ca", "managed")
    until(managed_device, 403, "/managed-untrusted")
    assert [managed_device.get("/managed-untrusted")[0] for _ in range(3)] == [403] * 3
    assert other_device.get("/only-other")[0] == 200

    # And back: the managed CA alone again.
    dep.cli("host", "enable", HOST)
    dep.cli("host", "disable", HOST, "--ca", "other")
    until(other_device, 403, "/other-untrusted")
    until(managed_device, 200, "/managed-again")
    assert other_device.get("/other-untrusted")[0] == 403
    managed_device.close()
    other_device.close()
