"""Issue 9.4: a verified certificate never has empty identity fields.

The attack: a BYOCA client whose subject DN holds a valid T61String (or IA5String) with a
non-ASCII byte. cryptography refuses to decode such a name, the error was swallowed, the
certificate verified and every ``cert_subject_dn*`` read ``""``: a deny rule on
``cert_subject_dn contains "blocked-device"`` did not match, and the origin received
``cf-cert-verified: true`` with an empty subject.

Reproduced through the real CLI (``ca upload``, ``host enable``) and the real proxy on
127.0.0.1 with a real TLS client presenting the certificate. Names are now rendered from
the DER as ``openssl x509`` renders them (T61String as Latin-1, …). A name that truly
cannot be decoded (an odd-length BMPString) makes the certificate ``unable to decode
certificate`` — OpenSSL itself cannot load such a certificate, so no TLS stack sends it:
that case is tested on the validator (tests/tls/test_names.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from store_sec_helpers import HOST, Device, cli, echo_origin, running_proxy, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tls import chains

_CN, _O = "2.5.4.3", "2.5.4.10"

RULES = {
    "name": "deny a device by name",
    "kind": "zone",
    "phase": "http_request_firewall_custom",
    "rules": [
        {
            "ref": "deny_blocked_device",
            "expression": f'http.host eq "{HOST}" and '
            'cf.tls_client_auth.cert_subject_dn contains "blocked-device"',
            "action": "block",
        },
        {
            "ref": "require_verified",
            "expression": f'http.host eq "{HOST}" and not cf.tls_client_auth.cert_verified',
            "action": "block",
        },
    ],
}


def _pem_file(path: Path, *ders: bytes) -> Path:
    path.write_bytes(b"".join(chains.pem(d) for d in ders))
    return path


def _key_file(path: Path, key) -> Path:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def _device(tmp: Path, ca: chains.Issued, label: str, subject: bytes) -> Device:
    """A client certificate of ``ca`` whose subject is the raw DER ``subject``."""
    key = chains.key(f"sec94-{label}")
    base = chains.make(chains.name("placeholder"), key, ca)
    der = chains.rebuild(base, ca.key, subject=subject)
    return Device(label, _pem_file(tmp / f"{label}.crt", der), _key_file(tmp / f"{label}.key", key))


def _log_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_t61_subject_cannot_bypass_a_deny_rule(tmp_path):
    store = tmp_path / "store.db"
    ca = chains.make(chains.name("Partner IoT CA", (chains.NameOID.ORGANIZATION_NAME, "Partner")),
                     chains.key("sec94-ca"), ca=True,
                     validity=(chains.dt.datetime(2020, 1, 1, tzinfo=chains.UTC),
                               chains.dt.datetime(2045, 1, 1, tzinfo=chains.UTC)))
    ca_file = _pem_file(tmp_path / "partner-ca.pem", ca.der)
    cli("ca", "upload", str(ca_file), "--name", "partner", "--store", str(store), "--create")
    cli("host", "enable", HOST, "--ca", "partner", "--store", str(store))
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(RULES))
    # T61String CN with a Latin-1 byte (0xFC), as old smart-card and IoT CAs issue them
    blocked = _device(tmp_path, ca, "blocked",
                      chains.raw_name((_O, 0x13, b"Partner"),
                                      (_CN, 0x14, "blocked-device Zürich".encode("latin-1"))))
    allowed = _device(tmp_path, ca, "allowed",
                      chains.raw_name((_CN, 0x16, "sensor-07 Café".encode("latin-1"))))
    log = tmp_path / "access.log"
    with echo_origin() as origin, running_proxy(store, origin, "--rules", str(rules),
                                                "--access-log", str(log),
                                                "--forward", "cf-cert") as proxy:
        from store_sec_helpers import Client

        with Client(proxy.port, blocked) as client:
            assert client.get("/blocked") == 403  # the deny rule matched the T61 name
        with Client(proxy.port, allowed) as client:
            client.conn.request("GET", "/allowed", headers={"Host": HOST})
            resp = client.conn.getresponse()
            body = resp.read()
            assert resp.status == 200
        echoed = {k.lower(): v for k, v in json.loads(body)["headers"]}
        assert echoed["cf-cert-verified"] == "true"
        # the origin sees the subject OpenSSL prints (non-ASCII escaped for the header)
        assert echoed["cf-cert-subject-dn-rfc2253"] == "CN=sensor-07 Caf\\C3\\A9"
        assert echoed["cf-cert-subject-dn"] == "CN=sensor-07 Caf\\u00e9"
        assert echoed["cf-cert-subject-dn-legacy"] == "/CN=sensor-07 Caf\\xE9"
        assert wait_for(lambda: len(_log_records(log)) >= 2)
    by_path = {r["path"]: r for r in _log_records(log)}
    assert by_path["/blocked"]["rule"] == "deny_blocked_device"
    assert by_path["/blocked"]["cert_status"] == "SUCCESS"
