"""``edgerules serve MODULE:APP``: a real Starlette application behind edgerules' mTLS
terminator, driven by real curl with client certificates from a real store.

Checks: the ASGI ``tls`` extension (every key), the rules deciding before the app runs
(no, revoked, self-signed certificates get the rule's 403 and the app never sees them),
client-sent certificate headers never reaching the app, request bodies, keep-alive,
lifespan, 421 for a Host naming an mTLS host on a connection whose SNI did not ask for a
certificate, bad MODULE:APP specifications as one-line errors, SIGTERM as exit 0.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules" / "mtls-required.json"
pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is needed")

APP = textwrap.dedent('''
    import contextlib
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    STARTED = []

    @contextlib.asynccontextmanager
    async def lifespan(app):
        STARTED.append(True)
        yield {"started": True}

    async def hello(request):
        tls = request.scope["extensions"]["tls"]
        auth = request.scope["edgerules.client_auth"]
        return JSONResponse({
            "tls": {k: v for k, v in tls.items()},
            "verified": auth.verified,
            "decision": request.scope["edgerules.decision"].outcome,
            "headers": sorted(k for k in request.headers.keys()),
            "state": request.state.started,
            "path": request.url.path,
        })

    async def echo(request):
        body = await request.body()
        return JSONResponse({"length": len(body), "head": body[:10].decode()})

    async def boom(request):
        raise RuntimeError("application bug")

    app = Starlette(routes=[Route("/hello", hello), Route("/echo", echo, methods=["POST"]),
                            Route("/boom", boom)], lifespan=lifespan)
''')


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from edgerules.store import open_store

    tmp = tmp_path_factory.mktemp("serve")
    (tmp / "eco_serve_app.py").write_text(APP)
    store = open_store(str(tmp / "store.db"), create=True)
    files = {}
    for name in ("valid", "revoked"):
        issued = store.issue_certificate(common_name=f"serve-{name}", validity_days=30)
        (tmp / f"{name}.crt").write_text(issued.record.certificate)
        (tmp / f"{name}.key").write_text(issued.private_key)
        files[name] = (tmp / f"{name}.crt", tmp / f"{name}.key")
        if name == "revoked":
            store.revoke_certificate(issued.record.id)
    store.enable_hostnames(["api.localhost"])
    store.close()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(tmp / "ss.key"), "-out", str(tmp / "ss.crt"),
         "-subj", "/CN=self-signed", "-days", "2"],
        check=True, capture_output=True, timeout=30)
    files["self_signed"] = (tmp / "ss.crt", tmp / "ss.key")
    with serve(tmp, "eco_serve_app:app", "--rules", str(RULES), "--store", str(tmp / "store.db"),
               "--access-log", str(tmp / "access.log")) as (proc, port):
        yield {"port": port, "files": files, "tmp": tmp}
        proc.terminate()
        assert proc.wait(15) == 0


@contextmanager
def serve(tmp, *args):
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgerules", "serve", "--listen", "127.0.0.1:0",
         "--app-dir", str(tmp), *args],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=tmp)
    try:
        port = None
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if "listening on" in line:
                port = int(line.split("https://127.0.0.1:")[1].split()[0])
                break
        assert port, "serve did not start: " + "".join(lines)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()


def curl(port, path="/hello", *args, host="api.localhost", sni=None):
    sni = sni or host
    result = subprocess.run(
        ["curl", "-sk", "--max-time", "10", "--resolve", f"{sni}:{port}:127.0.0.1",
         "-o", "-", "-w", "\n%{http_code}", *args, f"https://{sni}:{port}{path}"],
        capture_output=True, text=True, timeout=30)
    body, _, status = result.stdout.rpartition("\n")
    return status, body, result


def cert_args(site, name):
    crt, key = site["files"][name]
    return ["--cert", str(crt), "--key", str(key)]


def test_valid_certificate_reaches_the_app_with_the_tls_extension(site):
    status, body, result = curl(site["port"], "/hello", *cert_args(site, "valid"), "--tlsv1.3")
    assert status == "200", result.stderr
    data = json.loads(body)
    tls = data["tls"]
    assert set(tls) == {"server_cert", "client_cert_chain", "client_cert_name",
                        "client_cert_error", "tls_version", "cipher_suite"}
    leaf = site["files"]["valid"][0].read_text()
    assert [c.strip() for c in tls["client_cert_chain"]] == [leaf.strip()]
    assert tls["client_cert_name"].startswith("CN=serve-valid")
    assert tls["client_cert_error"] is None
    assert tls["tls_version"] == 0x0304
    assert tls["cipher_suite"] in (0x1301, 0x1302, 0x1303)  # TLS 1.3 suites (IANA)
    assert tls["server_cert"].startswith("-----BEGIN CERTIFICATE-----")
    assert data["verified"] is True and data["decision"] == "allow"
    assert data["state"] is True  # lifespan startup ran; its state reached the request


def test_tls12_cipher_suite_number(site):
    status, body, _ = curl(site["port"], "/hello", *cert_args(site, "valid"),
                           "--tlsv1.2", "--tls-max", "1.2")
    assert status == "200"
    tls = json.loads(body)["tls"]
    assert tls["tls_version"] == 0x0303
    assert 0xC000 <= tls["cipher_suite"] <= 0xCCFF  # an ECDHE suite


@pytest.mark.parametrize("cert", [None, "revoked", "self_signed"])
def test_rules_block_before_the_app(site, cert):
    args = cert_args(site, cert) if cert else []
    status, body, result = curl(site["port"], "/hello", *args)
    assert status == "403", result.stderr
    assert "client certificate required" in body  # the rule's custom JSON, not the app


def test_forged_certificate_headers_never_reach_the_app(site):
    status, body, _ = curl(site["port"], "/hello", *cert_args(site, "valid"),
                           "-H", "Client-Cert: :Zm9yZ2Vk:", "-H", "X-Forwarded-Client-Cert: Cert=x",
                           "-H", "cf-cert-verified: true", "-H", "X-Other: 1")
    assert status == "200"
    headers = json.loads(body)["headers"]
    assert "x-other" in headers
    assert not {"client-cert", "x-forwarded-client-cert", "cf-cert-verified"} & set(headers)


def test_request_body_keepalive_and_app_errors(site):
    tmp = site["tmp"]
    upload = tmp / "upload.bin"
    upload.write_bytes(b"0123456789" * 100_000)  # 1 MB
    status, body, _ = curl(site["port"], "/echo", *cert_args(site, "valid"),
                           "--data-binary", f"@{upload}")
    assert status == "200" and json.loads(body) == {"length": 1_000_000, "head": "0123456789"}
    port = site["port"]
    result = subprocess.run(
        ["curl", "-sk", "--max-time", "10", "--resolve", f"api.localhost:{port}:127.0.0.1",
         *cert_args(site, "valid"), *["-o", "/dev/null"] * 3, "-w", "%{http_code}%{num_connects}\n",
         *[f"https://api.localhost:{port}/hello"] * 3],
        capture_output=True, text=True, timeout=30)
    assert result.stdout.split() == ["2001", "2000", "2000"], result.stderr
    status, body, _ = curl(site["port"], "/boom", *cert_args(site, "valid"))
    assert status == "500" and "application bug" not in body
    status, _, _ = curl(site["port"], "/hello", *cert_args(site, "valid"))
    assert status == "200"  # the server survived the app's exception


def test_host_naming_the_mtls_host_on_another_sni_is_421(site):
    status, _, result = curl(site["port"], "/hello", "-H", "Host: api.localhost",
                             host="www.localhost")
    assert status == "421", result.stderr


def test_plain_host_needs_no_certificate(site):
    status, body, _ = curl(site["port"], "/hello", host="www.localhost")
    assert status == "200"
    tls = json.loads(body)["tls"]
    assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None


def test_access_log_records_decisions(site):
    lines = [json.loads(x) for x in (site["tmp"] / "access.log").read_text().splitlines() if x]
    decisions = {(r["path"], r["decision"]) for r in lines}
    assert ("/hello", "allow") in decisions and ("/hello", "block") in decisions


@pytest.mark.parametrize(("spec", "message"), [
    ("nonexistent_mod:app", "no such module"),
    ("eco_serve_app:missing", "has no attribute"),
    ("eco_serve_app", "expected MODULE:APP"),
    ("eco_broken_app:app", "importing 'eco_broken_app' failed: ZeroDivisionError"),
])
def test_bad_application_specs_are_one_line_errors(site, spec, message):
    tmp = site["tmp"]
    (tmp / "eco_broken_app.py").write_text("1 / 0\n")
    result = subprocess.run(
        [sys.executable, "-m", "edgerules", "serve", spec, "--listen", "127.0.0.1:0",
         "--app-dir", str(tmp), "--store", str(tmp / "store.db")],
        capture_output=True, text=True, timeout=30, cwd=tmp)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_missing_store_is_an_error_not_an_empty_store(site, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "edgerules", "serve", "eco_serve_app:app", "--listen",
         "127.0.0.1:0", "--app-dir", str(site["tmp"]), "--store", str(tmp_path / "typo.db")],
        capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert result.returncode == 2 and "no such file" in result.stderr
    assert not (tmp_path / "typo.db").exists()
