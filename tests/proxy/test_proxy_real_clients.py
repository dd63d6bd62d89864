"""curl and openssl s_client against the proxy, with the real store, validator and the
rulesets part's rules/mtls-required.json, through the ``edgerules proxy`` CLI."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from proxy_helpers import cli_proxy

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules" / "mtls-required.json"

pytestmark = pytest.mark.skipif(not RULES.exists(), reason="rules/mtls-required.json not present")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, origin):
    from edgerules.store import open_store

    tmp = tmp_path_factory.mktemp("real")
    store = open_store(str(tmp / "store.db"), create=True)
    store.managed_ca()
    files = {}
    for name in ("valid", "revoked"):
        issued = store.issue_certificate(common_name=f"curl-{name}", validity_days=30)
        (tmp / f"{name}.crt").write_text(issued.record.certificate)
        (tmp / f"{name}.key").write_text(issued.private_key)
        files[name] = (tmp / f"{name}.crt", tmp / f"{name}.key")
        if name == "revoked":
            store.revoke_certificate(issued.record.id)
    store.enable_hostnames(["api.localhost"])
    store.close()
    log = tmp / "access.log"
    with cli_proxy(
        "--upstream", f"http://127.0.0.1:{origin.port}",
        "--rules", str(RULES),
        "--store", str(tmp / "store.db"),
        "--access-log", str(log),
        "--forward", "rfc9440,cf-cert",
    ) as (proc, port):
        yield {"port": port, "files": files, "log": log, "tmp": tmp}
        proc.terminate()
        assert proc.wait(10) == 0


def curl(port, *args):
    return subprocess.run(
        [
            "curl", "-sk", "--max-time", "10",
            "--resolve", f"api.localhost:{port}:127.0.0.1",
            "-o", "-", "-w", "\n%{http_code}",
            *args,
            f"https://api.localhost:{port}/curl",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
@pytest.mark.parametrize(
    ("cert", "status"), [(None, "403"), ("valid", "200"), ("revoked", "403")]
)
def test_curl(deployment, cert, status):
    args = []
    if cert:
        crt, key = deployment["files"][cert]
        args = ["--cert", str(crt), "--key", str(key)]
    result = curl(deployment["port"], *args, "-H", "Client-Cert: :Zm9yZ2Vk:")
    assert result.stdout.rsplit("\n", 1)[-1] == status, result.stderr
    if status == "403":
        assert "client certificate required" in result.stdout  # the rule's custom JSON
    else:
        # what the origin saw: our Client-Cert (not the forged one) and cf-cert-* headers
        assert "Zm9yZ2Vk" not in result.stdout
        assert '"Client-Cert", ":MII' in result.stdout
        assert '["cf-cert-verified", "true"]' in result.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_keepalive(deployment):
    crt, key = deployment["files"]["valid"]
    port = deployment["port"]
    result = subprocess.run(
        [
            "curl", "-sk", "--max-time", "10", "--resolve", f"api.localhost:{port}:127.0.0.1",
            "--cert", str(crt), "--key", str(key), *["-o", "/dev/null"] * 3, "-w", "%{http_code}%{num_connects}\n",
            f"https://api.localhost:{port}/a", f"https://api.localhost:{port}/b", f"https://api.localhost:{port}/c",
        ],
        capture_output=True, text=True, timeout=20,
    )
    # three 200s; only the first needed a new connection (keep-alive)
    assert result.stdout.split() == ["2001", "2000", "2000"], result.stderr


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_openssl_s_client_self_signed_completes_handshake(deployment, version):
    tmp = deployment["tmp"]
    key, crt = tmp / "ss.key", tmp / "ss.crt"
    if not crt.exists():
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(key), "-out", str(crt), "-subj", "/CN=self-signed", "-days", "2"],
            check=True, capture_output=True, timeout=20,
        )
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{deployment['port']}", "-servername", "api.localhost",
         "-cert", str(crt), "-key", str(key), version, "-quiet", "-ign_eof"],
        input=b"GET /s HTTP/1.1\r\nHost: api.localhost\r\nConnection: close\r\n\r\n",
        capture_output=True, timeout=20,
    )
    # the handshake completed (a self-signed certificate does not fail it) and the RULE answered
    assert result.stdout.startswith(b"HTTP/1.1 403 "), (result.stdout, result.stderr)
    assert b"client certificate required" in result.stdout
    assert b"Acceptable client certificate CA names" not in result.stdout


def test_access_log_lines(deployment):
    import json

    # complete lines only: the log thread may be in the middle of writing the last one
    text = deployment["log"].read_text()
    lines = [json.loads(x) for x in text.split("\n")[:-1] if x.strip()]
    assert lines, "no access log written"
    for rec in lines:
        for key in ("host", "path", "decision", "rule", "cert_serial", "status", "duration_ms"):
            assert key in rec
    assert any(r["decision"] == "block" and r["rule"] == "mtls_enforce" for r in lines)
