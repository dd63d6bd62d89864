"""Helpers for the proxy tests: a validator over the test CA, proxies started in-process (asyncio
in a thread, port 0, always stopped) and a small HTTPS client with SNI control."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding
from proxy_certs import ProxyTestPKI

from edgerules.enforcement.decision import FunctionDecider, Verdict
from edgerules.proxy.accesslog import AccessLog
from edgerules.proxy.config import ForwardingPolicy, Limits, ProxyConfig
from edgerules.proxy.server import ProxyServer, ServerThread
from edgerules.tls import ClientCertValidator

MTLS_HOST = "api.localhost"
PLAIN_HOST = "www.localhost"
A = "cf.tls_client_auth."


# -- validators -------------------------------------------------------------------------
def make_validator(pki: ProxyTestPKI, revoked=()):
    """The real validator over the test CA, with ``revoked`` certificates revoked."""
    serials = {c.cert.serial_number for c in revoked}

    class Revocation:
        version = 1

        def is_revoked(self, leaf, issuer):
            return leaf.serial_number in serials

    return ClientCertValidator([pki.ca], revocation=Revocation())


# -- proxies --------------------------------------------------------------------------
@dataclass
class Running:
    thread: ServerThread
    server: ProxyServer
    records: list[dict[str, Any]]
    seen: list[dict[str, Any]] = field(default_factory=list)  # fields seen by the decider

    def record(self, path: str, timeout: float = 30.0) -> dict[str, Any]:
        """The newest access-log record for ``path`` (the log line is written just after
        the response, so wait for it)."""
        deadline = time.monotonic() + timeout
        while True:
            for rec in reversed(self.records):
                if rec.get("path") == path:
                    return rec
            if time.monotonic() > deadline:
                raise AssertionError(f"no access log record for {path!r}: {self.records[-3:]}")
            time.sleep(0.01)

    @property
    def port(self) -> int:
        assert self.thread.port is not None
        return self.thread.port


def cert_rule(fields: dict[str, Any], auth: Any) -> Verdict:
    """Stand-in for rules/mtls-required: block unverified or revoked on the mTLS host."""
    if fields.get("http.host") == MTLS_HOST.encode() and (
        not fields.get(A + "cert_verified") or fields.get(A + "cert_revoked")
    ):
        return Verdict("block", rule_ref="mtls-required")
    return Verdict("allow")


@contextlib.contextmanager
def running_proxy(
    upstream: str,
    *,
    validator: Any = None,
    decide=cert_rule,
    fields=frozenset({"http.host", A + "cert_verified", A + "cert_revoked", A + "cert_presented"}),
    limits: Limits | None = None,
    forwarding: ForwardingPolicy | None = None,
    forwarding_by_host=None,
) -> Iterator[Running]:
    seen: list[dict[str, Any]] = []

    def recording(values, auth):
        seen.append(values)
        return decide(values, auth)

    config = ProxyConfig(
        upstream=upstream,
        listen_port=0,
        limits=limits or Limits(),
        forwarding=forwarding or ForwardingPolicy(),
        forwarding_by_host=forwarding_by_host or {},
    )
    log = AccessLog(None)
    log.records = []
    server = ProxyServer(
        config,
        FunctionDecider(recording, fields),
        mtls_lookup=lambda sni: validator if sni == MTLS_HOST else None,
        access_log=log,
    )
    thread = ServerThread(server).start()
    try:
        yield Running(thread, server, log.records, seen)
    finally:
        thread.stop(3.0)


@contextlib.contextmanager
def cli_proxy(*args: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``python -m edgerules proxy --listen 127.0.0.1:0 ARGS`` in a subprocess: yields the
    process and its port once it is listening; killed on exit if still running."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgerules", "proxy", "--listen", "127.0.0.1:0", *args],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = None
        assert proc.stderr is not None
        for line in proc.stderr:
            if "listening on" in line:
                port = int(line.split("https://127.0.0.1:")[1].split()[0])
                break
        assert port, "proxy did not start"
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()


# -- client ----------------------------------------------------------------------------
def client_context(cert=None, *, max_version=None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if max_version is not None:
        ctx.maximum_version = max_version
    if cert is not None:
        ctx.load_cert_chain(cert.cert_path, cert.key_path)
    return ctx


class Client:
    """HTTP/1.1 over one TLS connection to 127.0.0.1 with the given SNI (keep-alive)."""

    def __init__(
        self, port, sni=MTLS_HOST, cert=None, *, max_version=None, session=None, timeout=10, ctx=None
    ):
        ctx = ctx or client_context(cert, max_version=max_version)
        self.ctx = ctx
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname=sni, session=session)
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn.sock = self.sock
        self.host = sni

    def request(self, method="GET", path="/", headers=None, body=None):
        hdrs = {"Host": self.host}
        hdrs.update(headers or {})
        self.conn.request(method, path, body=body, headers=hdrs)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, resp, data

    def json(self, *args, **kw):
        status, resp, data = self.request(*args, **kw)
        return status, json.loads(data) if resp.getheader("x-origin") == "echo" else data

    def close(self):
        with contextlib.suppress(Exception):
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def origin_headers(record: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in record["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


def der(cert) -> bytes:
    return cert.public_bytes(Encoding.DER)
