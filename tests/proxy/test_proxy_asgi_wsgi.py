"""ASGI / WSGI middleware: certificate sources, trusted proxies, header stripping,
blocks answered by the middleware, decisions passed to the app."""

from __future__ import annotations

import asyncio
import base64
import io
import warnings
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from proxy_helpers import der, make_validator

from edgerules.asgi import EdgeRulesMiddleware
from edgerules.errors import ConfigError
from edgerules.wsgi import EdgeRulesWSGIMiddleware

RULES = {
    "name": "mtls",
    "kind": "zone",
    "phase": "http_request_firewall_custom",
    "rules": [
        {
            "ref": "mtls_enforce",
            "expression": 'http.host eq "api.localhost" and (not cf.tls_client_auth.cert_verified or cf.tls_client_auth.cert_revoked)',
            "action": "block",
        },
        {"ref": "ip_block", "expression": "ip.src eq 198.51.100.66", "action": "block"},
        {"ref": "chal", "expression": 'http.request.uri.path eq "/challenge"', "action": "managed_challenge"},
    ],
}


@pytest.fixture(scope="module")
def ruleset():
    from edgerules.rulesets import Ruleset

    return Ruleset.from_dict(RULES)


def pem(issued) -> str:
    return issued.cert.public_bytes(Encoding.PEM).decode()


class Recorder:
    def __init__(self):
        self.scopes = []

    async def __call__(self, scope, receive, send):
        self.scopes.append(scope)
        if scope["type"] == "lifespan":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"app"})


def call(mw, *, host="api.localhost", client=("192.0.2.10", 5000), headers=(), tls_chain=None, path="/x"):
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", host.encode()), *[(k.encode(), v.encode()) for k, v in headers]],
        "client": client,
        "server": ("127.0.0.1", 443),
        "extensions": {"tls": {"client_cert_chain": tls_chain, "tls_version": 0x0304}} if tls_chain is not None else {},
    }
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(mw(scope, receive, send))
    status = sent[0]["status"]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return status, body


@pytest.fixture
def setup(ruleset, pki):
    app = Recorder()
    mw = EdgeRulesMiddleware(
        app, ruleset, validator=make_validator(pki, revoked=[pki.revoked]), trusted_proxies=["10.0.0.0/8"]
    )
    return app, mw


def test_tls_extension_certificate(setup, pki):
    app, mw = setup
    assert call(mw, tls_chain=[pem(pki.valid)]) == (200, b"app")
    scope = app.scopes[-1]
    assert scope["edgerules.decision"].outcome == "allow"
    assert scope["edgerules.client_auth"].verified is True
    status, body = call(mw, tls_chain=[pem(pki.revoked)])
    assert status == 403 and b"revoked" in body
    status, body = call(mw, tls_chain=[])
    assert status == 403 and b"no client certificate" in body


def test_rfc9440_header_only_from_trusted_proxy(setup, pki):
    app, mw = setup
    value = ":" + base64.b64encode(pki.valid.der).decode() + ":"
    assert call(mw, client=("10.1.2.3", 1), headers=[("client-cert", value)])[0] == 200
    assert (b"client-cert", value.encode()) in app.scopes[-1]["headers"]
    # the same header from an untrusted peer: ignored (blocked) ...
    assert call(mw, client=("192.0.2.10", 1), headers=[("client-cert", value)])[0] == 403
    # ... and stripped when the request is allowed anyway (host without the rule)
    n = len(app.scopes)
    assert call(mw, host="www.localhost", headers=[("Client-Cert", value), ("cf-cert-verified", "true"),
                                                   ("x-forwarded-client-cert", "Cert=x")])[0] == 200
    assert len(app.scopes) == n + 1
    names = {k for k, _ in app.scopes[-1]["headers"]}
    assert names == {b"host"}


def test_underscore_spellings_are_stripped_from_untrusted_peers(setup):
    # An app reading headers CGI-style (WSGI adapters, environ) sees "client_cert" and
    # "x_forwarded_client_cert" as HTTP_CLIENT_CERT / HTTP_X_FORWARDED_CLIENT_CERT.
    app, mw = setup
    forged = [("client_cert", ":aW5qZWN0ZWQ=:"), ("x_forwarded_client_cert", "Cert=x"),
              ("X_SSL_Client_Cert", "x"), ("cf_cert_verified", "true"), ("x_other", "1")]
    assert call(mw, host="www.localhost", headers=forged)[0] == 200
    assert {k for k, _ in app.scopes[-1]["headers"]} == {b"host", b"x_other"}


def test_repeated_certificate_header_is_no_certificate(setup, ruleset, pki):
    # A trusted proxy that appends its header without removing the client's: which line
    # is the proxy's cannot be told, so neither is believed. RFC 9440's Client-Cert is
    # an Item; two field lines combine into "a, b", which is not one (RFC 8941 §4.2).
    _app, mw = setup
    valid = ":" + base64.b64encode(pki.valid.der).decode() + ":"
    forged = ":" + base64.b64encode(pki.self_signed.der).decode() + ":"
    for lines in ([valid, forged], [forged, valid], [valid, valid]):
        status, _ = call(mw, client=("10.1.2.3", 1), headers=[("client-cert", v) for v in lines])
        assert status == 403, lines
    nginx = EdgeRulesMiddleware(Recorder(), ruleset, validator=make_validator(pki),
                                trusted_proxies=["10.0.0.0/8"], cert_header="X-SSL-Client-Cert")
    escaped = quote(pem(pki.valid))
    assert call(nginx, client=("10.1.2.3", 1), headers=[("x-ssl-client-cert", escaped)])[0] == 200
    twice = [("x-ssl-client-cert", escaped), ("x-ssl-client-cert", quote(pem(pki.foreign)))]
    assert call(nginx, client=("10.1.2.3", 1), headers=twice)[0] == 403


def test_client_cert_chain_field_lines_combine(setup, pki):
    # Client-Cert-Chain is a List: several field lines are one list (RFC 8941 §3.1), so
    # the intermediate on the first line counts (not only the last line).
    leaf = ":" + base64.b64encode(pki.via_inter.der).decode() + ":"
    inter = ":" + base64.b64encode(der(pki.inter)).decode() + ":"
    other = ":" + base64.b64encode(pki.foreign.der).decode() + ":"
    _app, mw = setup
    headers = [("client-cert", leaf), ("client-cert-chain", inter), ("client-cert-chain", other)]
    assert call(mw, client=("10.1.2.3", 1), headers=headers)[0] == 200


def test_nginx_escaped_pem_header(ruleset, pki):
    app = Recorder()
    mw = EdgeRulesMiddleware(
        app, ruleset, validator=make_validator(pki), trusted_proxies=["127.0.0.1/32"], cert_header="X-SSL-Client-Cert"
    )
    escaped = quote(pem(pki.valid), safe="")
    assert call(mw, client=("127.0.0.1", 1), headers=[("x-ssl-client-cert", escaped)])[0] == 200
    assert call(mw, client=("127.0.0.2", 1), headers=[("x-ssl-client-cert", escaped)])[0] == 403


def test_envoy_xfcc_header(ruleset, pki):
    app = Recorder()
    mw = EdgeRulesMiddleware(
        app,
        ruleset,
        validator=make_validator(pki),
        trusted_proxies=["10.0.0.0/8"],
        cert_header="x-forwarded-client-cert",
    )
    cert = quote(pem(pki.via_inter), safe="")
    chain = quote(pem(pki.via_inter) + pki.inter.public_bytes(Encoding.PEM).decode(), safe="")
    xfcc = f'By=spiffe://cluster.local/ns/a;Hash=abc;Cert="{cert}";Chain="{chain}";Subject="CN=x,O=\\"q\\""'
    assert call(mw, client=("10.0.0.1", 1), headers=[("x-forwarded-client-cert", "Hash=first," + xfcc)])[0] == 200
    assert app.scopes[-1]["edgerules.client_auth"].verified is True


def test_client_ip_behind_trusted_proxies(setup):
    _app, mw = setup
    # the right-most address not in trusted_proxies is the client
    status, _ = call(mw, host="www.localhost", client=("10.0.0.1", 1),
                     headers=[("x-forwarded-for", "203.0.113.1, 198.51.100.66, 10.0.0.7")])
    assert status == 403  # ip_block rule
    status, _ = call(mw, host="www.localhost", client=("192.0.2.1", 1),
                     headers=[("x-forwarded-for", "198.51.100.66")])
    assert status == 200  # untrusted peer: X-Forwarded-For is not believed


def test_challenge_is_403_page(setup):
    _, mw = setup
    status, body = call(mw, host="www.localhost", path="/challenge")
    assert status == 403 and b"challenge required" in body


def test_lifespan_passthrough(setup):
    app, mw = setup

    async def run():
        await mw({"type": "lifespan"}, None, None)

    asyncio.run(run())
    assert app.scopes[-1] == {"type": "lifespan"}


def test_store_without_mtls_host(ruleset):
    class Store:
        def validator_for_hostname(self, host):
            return None

    mw = EdgeRulesMiddleware(Recorder(), ruleset, store=Store())
    status, _ = call(mw)
    assert status == 403  # api.localhost has no mTLS in this store: cert_verified is false
    with pytest.raises(ConfigError):
        EdgeRulesMiddleware(Recorder(), ruleset, store=Store(), validator=object())


def test_starlette_app(ruleset, pki):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route
        from starlette.testclient import TestClient

    async def hello(request):
        auth = request.scope["edgerules.client_auth"]
        return JSONResponse({"verified": auth.verified, "outcome": request.scope["edgerules.decision"].outcome})

    app = Starlette(routes=[Route("/hello", hello)])
    app.add_middleware(
        EdgeRulesMiddleware, ruleset=ruleset, validator=make_validator(pki), trusted_proxies=["10.0.0.0/8"]
    )
    value = ":" + base64.b64encode(pki.valid.der).decode() + ":"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trusted = TestClient(app, base_url="https://api.localhost", client=("10.9.9.9", 1234))
        untrusted = TestClient(app, base_url="https://api.localhost", client=("192.0.2.9", 1234))
    r = trusted.get("/hello", headers={"client-cert": value})
    assert r.status_code == 200 and r.json() == {"verified": True, "outcome": "allow"}
    r = untrusted.get("/hello", headers={"client-cert": value})
    assert r.status_code == 403


def test_wsgi(ruleset, pki):
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    mw = EdgeRulesWSGIMiddleware(app, ruleset, validator=make_validator(pki), trusted_proxies=["10.0.0.0/8"])

    def call_wsgi(**env):
        base = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/w",
            "QUERY_STRING": "",
            "SERVER_NAME": "api.localhost",
            "SERVER_PORT": "443",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "192.0.2.1",
            "HTTP_HOST": "api.localhost",
            "wsgi.url_scheme": "https",
            "wsgi.input": io.BytesIO(),
        }
        base.update(env)
        status = []
        body = b"".join(mw(base, lambda s, h: status.append(s)))
        return status[0], body

    assert call_wsgi(SSL_CLIENT_CERT=pem(pki.valid))[0] == "200 OK"
    assert seen["edgerules.client_auth"].verified is True
    status, _body = call_wsgi()
    assert status == "403 Forbidden"
    value = ":" + base64.b64encode(pki.valid.der).decode() + ":"
    assert call_wsgi(HTTP_CLIENT_CERT=value)[0] == "403 Forbidden"  # untrusted peer
    assert call_wsgi(HTTP_CLIENT_CERT=value, REMOTE_ADDR="10.0.0.2")[0] == "200 OK"
    seen.clear()
    assert call_wsgi(HTTP_HOST="www.localhost", HTTP_CLIENT_CERT=value)[0] == "200 OK"
    assert "HTTP_CLIENT_CERT" not in seen
