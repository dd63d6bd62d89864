"""The server's observer hooks (proxy.observer) and the ruleset version in the access log:
what metrics and hot reload rely on, checked on a real proxy on loopback."""

from __future__ import annotations

import socket
import ssl
from typing import Any

from proxy_helpers import MTLS_HOST, PLAIN_HOST, Client, client_context, make_validator

from edgerules.enforcement.decision import RulesetDecider
from edgerules.proxy.accesslog import AccessLog
from edgerules.proxy.config import ProxyConfig
from edgerules.proxy.observer import NullObserver
from edgerules.proxy.server import ProxyServer, ServerThread
from edgerules.rulesets import Ruleset

RULESET = {
    "name": "ops",
    "rules": [
        {
            "ref": "block_admin",
            "expression": 'http.request.uri.path eq "/admin"',
            "action": "block",
        }
    ],
}


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def handshake(self, seconds: float) -> None:
        self.events.append(("handshake", seconds))

    def validated(self, validator: Any, client_auth: Any) -> None:
        self.events.append(("validated", (validator, client_auth)))

    def request(self, record: dict[str, Any]) -> None:
        self.events.append(("request", record))

    def of(self, kind: str) -> list[Any]:
        return [value for k, value in self.events if k == kind]


def start(origin, validator, decider) -> tuple[ServerThread, ProxyServer, Recorder, list]:
    log = AccessLog(None)
    log.records = []
    recorder = Recorder()
    server = ProxyServer(
        ProxyConfig(upstream=f"http://127.0.0.1:{origin.port}", listen_port=0),
        decider,
        mtls_lookup=lambda sni: validator if sni == MTLS_HOST else None,
        access_log=log,
        observer=recorder,
    )
    return ServerThread(server).start(), server, recorder, log.records


def test_the_default_observer_does_nothing(origin) -> None:
    server = ProxyServer(ProxyConfig(upstream=f"http://127.0.0.1:{origin.port}", listen_port=0))
    assert isinstance(server.observer, NullObserver)


def test_handshake_validation_and_request_are_reported_once_each(pki, origin) -> None:
    validator = make_validator(pki)
    decider = RulesetDecider(Ruleset.from_dict(RULESET), version="v-test")
    thread, _server, rec, records = start(origin, validator, decider)
    try:
        with Client(thread.port, MTLS_HOST, pki.valid) as c:
            assert c.request(path="/a")[0] == 200
            assert c.request(path="/admin")[0] == 403
    finally:
        thread.stop(3.0)
    handshakes = rec.of("handshake")
    assert len(handshakes) == 1 and handshakes[0] >= 0.0
    (validated,) = rec.of("validated")
    assert validated[0] is validator and validated[1].verified
    requests = rec.of("request")
    # The very records the access log got, in order; the ruleset version on each.
    assert [r["path"] for r in requests] == ["/a", "/admin"]
    assert all(a is b for a, b in zip(requests, records, strict=True))
    assert [r["ruleset"] for r in requests] == ["v-test", "v-test"]
    assert [(r["decision"], r["rule"]) for r in requests] == [
        ("allow", None),
        ("block", "block_admin"),
    ]


def test_no_validation_is_reported_where_no_certificate_is_asked_for(pki, origin) -> None:
    decider = RulesetDecider(Ruleset.from_dict(RULESET))
    thread, _server, rec, _records = start(origin, make_validator(pki), decider)
    try:
        with Client(thread.port, PLAIN_HOST, pki.valid) as c:
            assert c.request()[0] == 200
    finally:
        thread.stop(3.0)
    assert len(rec.of("handshake")) == 1
    assert rec.of("validated") == []
    (record,) = rec.of("request")
    assert record["ruleset"] is None  # a decider without a version


def test_a_request_no_rule_decided_has_no_ruleset_version(pki, origin) -> None:
    decider = RulesetDecider(Ruleset.from_dict(RULESET), version="v-test")
    thread, _server, rec, _records = start(origin, None, decider)
    try:
        raw = socket.create_connection(("127.0.0.1", thread.port), timeout=5)
        ctx: ssl.SSLContext = client_context()
        with ctx.wrap_socket(raw, server_hostname=PLAIN_HOST) as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
            assert tls.recv(100).startswith(b"HTTP/1.1 400")
    finally:
        thread.stop(3.0)
    (record,) = rec.of("request")
    assert record["status"] == 400 and record["decision"] == "error"
    assert record["ruleset"] is None
