"""Issue 9.5 (CRL part): a revocation entry from a correctly signed CRL never disappears
because the CRL went stale.

The mistake it guards against: a CRL past its nextUpdate used to be ignored as a whole
(fail open), so a certificate its issuer had revoked read as *not revoked* the moment the
operator's CRL refresh was late — an attacker holding a revoked device certificate only
had to wait. Now the revoked entries stay revoked; what a *stale* CRL means for a
certificate it does not list is the CA's documented choice (``--crl-stale open|closed``).

Through the real CLI (``ca upload``, ``host enable``, ``crl add``, ``ca set``) and the real
proxy on 127.0.0.1 with real TLS clients, with the real clock: the CRL's nextUpdate is a
few seconds ahead, and the proxy keeps running while it passes.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from store_sec_helpers import HOST, RULES, Client, Device, cli, echo_origin, running_proxy, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tls import chains

LIFETIME = 4.0  # seconds between the CRL's thisUpdate and its nextUpdate


def _device(tmp: Path, ca: chains.Issued, label: str) -> tuple[Device, int]:
    key = chains.key(f"sec95-{label}")
    now = dt.datetime.now(dt.UTC)
    leaf = chains.make(chains.name(label), key, ca, validity=(now - dt.timedelta(days=1),
                                                            now + dt.timedelta(days=30)))
    (tmp / f"{label}.crt").write_bytes(chains.pem(leaf.der))
    (tmp / f"{label}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return Device(label, tmp / f"{label}.crt", tmp / f"{label}.key"), leaf.cert.serial_number


def _crl(ca: chains.Issued, serials, this: dt.datetime, nxt: dt.datetime) -> bytes:
    b = (x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject)
         .last_update(this).next_update(nxt).add_extension(x509.CRLNumber(1), False))
    for s in serials:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(s).revocation_date(this).build())
    return b.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _status(port: int, device: Device) -> int:
    with Client(port, device) as client:
        return client.get("/")


def test_revoked_stays_revoked_after_the_crl_goes_stale(tmp_path):
    store = tmp_path / "store.db"
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ca = chains.make(chains.name("Partner CA"), chains.key("sec95-ca"), ca=True,
                     validity=(now - dt.timedelta(days=1), now + dt.timedelta(days=365)))
    (tmp_path / "ca.pem").write_bytes(chains.pem(ca.der))
    cli("ca", "upload", str(tmp_path / "ca.pem"), "--name", "partner", "--store", str(store),
        "--create")
    cli("host", "enable", HOST, "--ca", "partner", "--store", str(store))
    revoked, revoked_serial = _device(tmp_path, ca, "lost-device")
    good, _ = _device(tmp_path, ca, "good-device")
    next_update = now + dt.timedelta(seconds=LIFETIME)
    (tmp_path / "ca.crl").write_bytes(_crl(ca, [revoked_serial], now - dt.timedelta(hours=1),
                                           next_update))
    added = cli("crl", "add", str(tmp_path / "ca.crl"), "--ca", "partner", "--store", str(store),
                "--json")
    assert json.loads(added.stdout)["revoked_count"] == 1

    with echo_origin() as origin, running_proxy(store, origin, "--rules", str(RULES)) as proxy:
        assert _status(proxy.port, revoked) == 403
        assert _status(proxy.port, good) == 200
        # let the CRL go stale under the running proxy (no refresh arrives)
        assert wait_for(lambda: dt.datetime.now(dt.UTC) > next_update + dt.timedelta(seconds=1),
                        timeout=LIFETIME + 10)
        assert _status(proxy.port, revoked) == 403  # still revoked: never un-revoked
        # unknown status after nextUpdate: fail open by default ...
        assert _status(proxy.port, good) == 200
        # ... fail closed when the CA says so (picked up without a restart)
        cli("ca", "set", "partner", "--crl-stale", "closed", "--store", str(store))
        assert wait_for(lambda: _status(proxy.port, good) == 403)
        assert _status(proxy.port, revoked) == 403
