"""Interoperability: certificates issued here work in real TLS handshakes.

A Python ``ssl`` server on 127.0.0.1 (port 0) requires a client certificate
(``CERT_REQUIRED``) and trusts only our managed CA; clients are Python's ``ssl``, ``curl``
and ``openssl s_client``. The server checks that the certificate it received is ours and
runs it through the store's validator. Negative control: a certificate from another CA
fails the handshake.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from .helpers import NOW, ec_key, make_cert, name, pem

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class MTLSServer:
    """Accepts connections until closed; records the DER of each verified peer leaf."""

    def __init__(self, tmp: Path, client_ca_pem: str) -> None:
        server_ca_key = ec_key()
        self.server_ca = make_cert(name("Test Server CA"), server_ca_key)
        key = ec_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name("localhost"))
            .issuer_name(self.server_ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW.replace(year=NOW.year - 1))
            .not_valid_after(NOW.replace(year=NOW.year + 1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(server_ca_key.public_key()),
                False,
            )
            .sign(server_ca_key, hashes.SHA256())
        )
        (tmp / "server.pem").write_text(pem(cert))
        (tmp / "server.key").write_text(pem(key))
        (tmp / "server-ca.pem").write_text(pem(self.server_ca))
        self.server_ca_file = str(tmp / "server-ca.pem")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tmp / "server.pem", tmp / "server.key")
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=client_ca_pem)
        self.ctx = ctx
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.peers: list[bytes] = []
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            raw.settimeout(10)
            try:
                with self.ctx.wrap_socket(raw, server_side=True) as conn:
                    self.peers.append(conn.getpeercert(binary_form=True))
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    conn.sendall(OK)
                    try:
                        conn.unwrap()  # close_notify: openssl s_client reports a bare EOF
                    except (ssl.SSLError, OSError):
                        pass
            except (ssl.SSLError, OSError) as exc:
                self.errors.append(str(exc))
            finally:
                raw.close()

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def setup(store, tmp_path):
    store.enable_hostnames(["localhost"])
    issued = store.issue_certificate(common_name="interop-client")
    (tmp_path / "client.pem").write_text(issued.record.certificate)
    (tmp_path / "client.key").write_text(issued.private_key)
    server = MTLSServer(tmp_path, store.managed_ca().certificate)
    yield store, issued, server, tmp_path
    server.close()


def _der(pem_text: str) -> bytes:
    return x509.load_pem_x509_certificate(pem_text.encode()).public_bytes(
        serialization.Encoding.DER
    )


def _check_server_got(store, issued, server) -> None:
    assert server.peers, server.errors
    peer = server.peers[-1]
    assert peer == _der(issued.record.certificate)
    auth = store.validator_for_hostname("localhost").validate([peer])
    assert auth.verified and not auth.revoked


def _client_context(server: MTLSServer, cert_file: Path, key_file: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=server.server_ca_file)
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


def _request(ctx: ssl.SSLContext, port: int, request: bytes) -> bytes:
    """Send ``request`` over TLS to 127.0.0.1 (SNI localhost); everything until close."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(request)
        response = b""
        while chunk := tls.recv(4096):
            response += chunk
    return response


def _needs(tool: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(shutil.which(tool) is None, reason=f"{tool} not installed")


def _run_client(*command: str, stdin: str | None = None) -> str:
    """Run a command-line TLS client; its standard output."""
    out = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_python_ssl_client(setup):
    store, issued, server, tmp = setup
    ctx = _client_context(server, tmp / "client.pem", tmp / "client.key")
    response = _request(ctx, server.port, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert response.endswith(b"ok")
    _check_server_got(store, issued, server)


def test_python_ssl_client_from_pkcs12_and_rsa(setup):
    store, _, server, tmp = setup
    issued = store.issue_certificate(key_type="rsa", common_name="rsa-client")
    from cryptography.hazmat.primitives.serialization import pkcs12

    key, cert, _ = pkcs12.load_key_and_certificates(
        store.export_pkcs12(issued.record.id, private_key=issued.private_key, password=b"pw"), b"pw"
    )
    (tmp / "p12.pem").write_text(pem(cert))
    (tmp / "p12.key").write_text(pem(key))
    ctx = _client_context(server, tmp / "p12.pem", tmp / "p12.key")
    assert _request(ctx, server.port, b"GET / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 200")
    _check_server_got(store, issued, server)


@_needs("curl")
def test_curl_client(setup):
    store, issued, server, tmp = setup
    stdout = _run_client(
        "curl", "-sS", "--max-time", "20", f"https://localhost:{server.port}/",
        "--cacert", server.server_ca_file,
        "--cert", str(tmp / "client.pem"), "--key", str(tmp / "client.key"),
    )
    assert stdout == "ok"
    _check_server_got(store, issued, server)


@_needs("openssl")
def test_openssl_s_client(setup):
    store, issued, server, tmp = setup
    stdout = _run_client(
        "openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", "-servername", "localhost",
        "-CAfile", server.server_ca_file,
        "-cert", str(tmp / "client.pem"), "-key", str(tmp / "client.key"),
        "-verify_return_error", "-ign_eof",
        stdin="GET / HTTP/1.0\r\n\r\n",
    )
    assert "Verify return code: 0 (ok)" in stdout
    assert stdout.rstrip().endswith("ok") or "200 OK" in stdout
    _check_server_got(store, issued, server)


def test_certificate_from_another_ca_is_refused(setup):
    _, _, server, tmp = setup
    other_ca_key = ec_key()
    other_ca = make_cert(name("Other CA"), other_ca_key)
    key = ec_key()
    leaf = make_cert(
        name("intruder"),
        key,
        issuer=other_ca.subject,
        issuer_key=other_ca_key,
        ca=False,
        client_auth=True,
    )
    (tmp / "bad.pem").write_text(pem(leaf))
    (tmp / "bad.key").write_text(pem(key))
    ctx = _client_context(server, tmp / "bad.pem", tmp / "bad.key")
    before = len(server.peers)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        # TLS 1.3: the rejection arrives after our Finished, as a closed connection
        if not _request(ctx, server.port, b"GET / HTTP/1.1\r\n\r\n"):
            raise ConnectionError("closed by the server")
    assert len(server.peers) == before
