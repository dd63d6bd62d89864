"""Certificates forwarded by the proxies users run, configured by name.

For each convention a request carries the header exactly as that proxy sends it (format
from the proxy's documentation or source, cited per test), from a trusted peer; the
middleware must then produce the very ``cf.tls_client_auth.*`` fields the validator gives
for the same chain presented over TLS. From untrusted peers the same headers are removed
and ignored. Then the attacks (oversized, malformed, many at once) and the careless
configurations (no trusted_proxies, /0, the wrong convention) — each loud or harmless.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import logging
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from proxy_helpers import der, make_validator

from edgerules.asgi import EdgeRulesMiddleware
from edgerules.enforcement.certheaders import CONVENTIONS, ForwardedCert, parse_xfcc
from edgerules.errors import ConfigError, RuleError
from edgerules.rulesets import Ruleset
from edgerules.wsgi import EdgeRulesWSGIMiddleware

RULES = {
    "name": "mtls",
    "rules": [{
        "ref": "mtls_enforce",
        "expression": 'http.host eq "api.localhost" and (not cf.tls_client_auth.cert_verified '
                      "or cf.tls_client_auth.cert_revoked)",
        "action": "block",
    }],
}
PROXY = ("10.0.0.7", 51000)
CLIENT = ("203.0.113.9", 51000)


@pytest.fixture(scope="module")
def ruleset():
    return Ruleset.from_dict(RULES)


class App:
    def __init__(self):
        self.scopes = []

    async def __call__(self, scope, receive, send):
        self.scopes.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"app"})


def call(mw, headers, *, client=PROXY, host="api.localhost", extensions=None):
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "https", "path": "/", "raw_path": b"/", "query_string": b"",
        "headers": [(b"host", host.encode())] + [(k.lower().encode("latin-1"), v.encode("latin-1"))
                                                 for k, v in headers],
        "client": client, "server": ("10.0.0.2", 8000), "extensions": extensions or {},
    }
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(mw(scope, receive, send))
    return sent[0]["status"]


def pem(cert) -> str:
    return cert.public_bytes(Encoding.PEM).decode()


def b64(cert_der: bytes) -> str:
    return base64.b64encode(cert_der).decode()


def envoy_encode(text: str) -> str:
    # Envoy's documentation shows the PEM with spaces as %20 and newlines as %0a
    # ("-----BEGIN%20CERTIFICATE-----%0aMIID…"); the other characters as they are.
    return text.replace("%", "%25").replace(" ", "%20").replace("\n", "%0a")


LEAF_ONLY = ("cloudflare", "nginx")  # these proxies forward the leaf alone


def issued_for(convention: str, pki):
    return pki.valid if convention in LEAF_ONLY else pki.via_inter


def headers_for(convention: str, pki) -> list[tuple[str, str]]:
    """The header(s) the proxy sends: a leaf of the trusted CA for the leaf-only
    conventions, else pki.via_inter (leaf) with its intermediate pki.inter."""
    leaf, inter = issued_for(convention, pki).cert, pki.inter
    if convention == "rfc9440":
        # RFC 9440 §2.2/§2.3: Byte Sequences, the chain a List without the leaf
        return [("Client-Cert", f":{b64(der(leaf))}:"), ("Client-Cert-Chain", f":{b64(der(inter))}:")]
    if convention == "cloudflare":
        # Cloudflare (Access, "client certificate forwarding"): the leaf's DER in Base64
        return [("Cf-Client-Cert-Der-Base64", b64(der(leaf)))]
    if convention == "nginx":
        # nginx $ssl_client_escaped_cert: ngx_escape_uri(NGX_ESCAPE_URI_COMPONENT) of the
        # leaf's PEM, escaping all but ALPHA, DIGIT, "-", ".", "_", "~" (as quote(safe=""))
        return [("X-SSL-Client-Cert", quote(pem(leaf), safe=""))]
    if convention == "envoy":
        # Envoy XFCC with forward_client_cert_details APPEND_FORWARD and
        # set_current_client_cert_details {subject, cert, chain, uri, dns}
        digest = hashlib.sha256(der(leaf)).hexdigest()
        value = (f'By=spiffe://cluster.local/ns/default/sa/api;Hash={digest};'
                 f'Cert="{envoy_encode(pem(leaf))}";'
                 f'Chain="{envoy_encode(pem(leaf) + pem(inter))}";'
                 f'Subject="CN=via-intermediate,C=US";URI=spiffe://cluster.local/ns/default/sa/client;'
                 f"DNS=client.example;DNS=client2.example")
        return [("X-Forwarded-Client-Cert", value)]
    if convention == "traefik":
        # Traefik v3 passTLSClientCert pem=true: PEM bodies without delimiters or newlines,
        # joined by "," (pkg/middlewares/passtlsclientcert: sanitize + certSeparator)
        return [("X-Forwarded-Tls-Client-Cert", f"{b64(der(leaf))},{b64(der(inter))}")]
    if convention == "alb":
        # AWS ALB mTLS passthrough: the chain in URL-encoded PEM "with +=/ as safe characters"
        return [("X-Amzn-Mtls-Clientcert", quote(pem(leaf) + pem(inter), safe="+=/"))]
    raise AssertionError(convention)


@pytest.mark.parametrize("convention", sorted(CONVENTIONS))
def test_each_convention_gives_every_field_as_tls_would(convention, ruleset, pki):
    validator = make_validator(pki)
    app = App()
    mw = EdgeRulesMiddleware(app, ruleset, validator=validator, trusted_proxies=["10.0.0.0/8"],
                             forwarded_cert=convention)
    headers = headers_for(convention, pki)
    assert call(mw, headers) == 200
    auth = app.scopes[-1]["edgerules.client_auth"]
    issued = issued_for(convention, pki)
    chain = [issued.der] if convention in LEAF_ONLY else [issued.der, der(pki.inter)]
    expected = validator.validate(chain, hostname="api.localhost").fields()
    got = auth.fields()
    assert got == expected  # every cf.tls_client_auth.* field, byte for byte
    assert len(got) >= 17
    assert got["cf.tls_client_auth.cert_presented"] is True
    assert got["cf.tls_client_auth.cert_verified"] is True
    assert got["cf.tls_client_auth.cert_revoked"] is False
    assert got["cf.tls_client_auth.cert_serial"] == issued.serial_hex.encode()
    assert got["cf.tls_client_auth.cert_fingerprint_sha256"] == hashlib.sha256(
        issued.der).hexdigest().encode()
    assert got["cf.tls_client_auth.cert_subject_dn"].startswith(b"C=US,CN=client ")
    # the trusted proxy's header reaches the app
    names = {n for n, _ in app.scopes[-1]["headers"]}
    assert headers[0][0].lower().encode() in names
    # the same header from an untrusted peer is removed and ignored: blocked
    assert call(mw, headers, client=CLIENT) == 403
    assert call(mw, headers, client=CLIENT, host="www.localhost") == 200
    assert not ({n for n, _ in app.scopes[-1]["headers"]} & {h.lower().encode() for h, _ in headers})


def test_alb_verify_mode_leaf_header(ruleset, pki):
    # ALB mTLS verify mode: X-Amzn-Mtls-Clientcert-Leaf, URL-encoded PEM, +=/ safe
    app = App()
    mw = EdgeRulesMiddleware(app, ruleset, validator=make_validator(pki),
                             trusted_proxies=["10.0.0.0/8"], forwarded_cert="alb")
    leaf = quote(pem(pki.valid.cert), safe="+=/")
    assert "+" in leaf or "/" in leaf  # the test is meaningful: '+' must not become ' '
    assert call(mw, [("X-Amzn-Mtls-Clientcert-Leaf", leaf)]) == 200
    both = [("X-Amzn-Mtls-Clientcert-Leaf", leaf), ("X-Amzn-Mtls-Clientcert", leaf)]
    assert call(mw, both) == 403  # one mode or the other, never both


def test_traefik_older_url_escaped_value_and_nginx_legacy_tabs(ruleset, pki):
    app = App()
    traefik = EdgeRulesMiddleware(app, ruleset, validator=make_validator(pki),
                                  trusted_proxies=["10.0.0.0/8"], forwarded_cert="traefik")
    escaped = quote(f"{b64(pki.valid.der)}", safe="")  # url.QueryEscape of older Traefik
    assert call(traefik, [("X-Forwarded-Tls-Client-Cert", escaped)]) == 200
    nginx = EdgeRulesMiddleware(app, ruleset, validator=make_validator(pki),
                                trusted_proxies=["10.0.0.0/8"], forwarded_cert="nginx",
                                cert_header="X-Client-Cert")
    legacy = pem(pki.valid.cert).strip().replace("\n", "\n\t")  # $ssl_client_cert
    assert call(nginx, [("X-Client-Cert", legacy.replace("\n", ""))]) == 200


def test_revoked_and_foreign_certificates_are_judged_not_trusted(ruleset, pki):
    # The proxy forwards whatever the client presented; the validator decides.
    app = App()
    mw = EdgeRulesMiddleware(app, ruleset, validator=make_validator(pki, revoked=[pki.revoked]),
                             trusted_proxies=["10.0.0.0/8"], forwarded_cert="cloudflare")
    for issued in (pki.revoked, pki.foreign, pki.self_signed, pki.expired):
        assert call(mw, [("Cf-Client-Cert-Der-Base64", b64(issued.der))]) == 403, issued


# -- attacks ---------------------------------------------------------------------------
def _gate(pki, convention, ruleset):
    app = App()
    return app, EdgeRulesMiddleware(app, ruleset, validator=make_validator(pki),
                                    trusted_proxies=["10.0.0.0/8"], forwarded_cert=convention)


def test_oversized_values_are_refused_before_parsing(ruleset, pki):
    _app, mw = _gate(pki, "envoy", ruleset)
    good = headers_for("envoy", pki)[0][1]
    huge = "By=x;" * (1024 * 1024 // 5) + good  # 1 MiB of XFCC ending in a valid element
    assert call(mw, [("X-Forwarded-Client-Cert", huge)]) == 403
    assert ForwardedCert.create("envoy").extract([(b"x-forwarded-client-cert", huge.encode())]) is None


def test_many_xfcc_elements_only_the_last_counts(ruleset, pki):
    _app, mw = _gate(pki, "envoy", ruleset)
    good = headers_for("envoy", pki)[0][1]
    many = ",".join(["By=spiffe://x;Hash=00"] * 1000)
    assert call(mw, [("X-Forwarded-Client-Cert", many + "," + good)]) == 200
    # the valid certificate first, 1,000 hops after it: the immediate peer's element wins
    assert call(mw, [("X-Forwarded-Client-Cert", good + "," + many)]) == 403
    # the client's own (forged) element before the proxy's element does not count
    forged = f'Cert="{quote(pem(pki.valid.cert), safe="")}"'
    assert call(mw, [("X-Forwarded-Client-Cert", forged + ",By=spiffe://proxy;Hash=00")]) == 403


@pytest.mark.parametrize("value", [
    'Cert="abc',                                  # quote left open
    'Cert="a"b";Hash=1',                          # a quote in the middle
    'Cert=a"b"',                                  # quote inside an unquoted value
    'Cert="\\',                                   # a dangling escape
    'Cert="x";Cert="y"',                          # two certificates in one element
    ';;;',                                        # no pairs
    'Cert',                                       # a key without a value
    '=abc',                                       # a value without a key
    'Hash=1,,Cert="x"',                           # an empty element
    'C\u00e9rt="x"',                              # a non-ASCII key
])
def test_malformed_xfcc_is_no_certificate(value, ruleset, pki):
    _app, mw = _gate(pki, "envoy", ruleset)
    assert call(mw, [("X-Forwarded-Client-Cert", value)]) == 403


def test_xfcc_grammar_nested_quotes_and_case():
    parsed = parse_xfcc('by=a;SUBJECT="CN=x,O=\\"q;r\\"";uri=u1;URI=u2,Hash=h')
    assert parsed == [{"by": ["a"], "subject": ['CN=x,O="q;r"'], "uri": ["u1", "u2"]}, {"hash": ["h"]}]


@pytest.mark.parametrize("convention,value", [
    ("rfc9440", ":not base64!:"),
    ("rfc9440", "MIIB"),                      # a Token, not a Byte Sequence
    ("rfc9440", ":YWJj:;a=1, :YWJj:"),        # a List where an Item belongs
    ("cloudflare", "MIIB@@@"),
    ("cloudflare", ":YWJj:"),
    ("nginx", "-----BEGIN%20CERTIFICATE-----%0A%%%%%0A-----END%20CERTIFICATE-----"),
    ("nginx", "garbage"),
    ("traefik", "YWJj,,YWJj"),
    ("traefik", "not*base64"),
    ("alb", "-----BEGIN%20CERTIFICATE-----%0Anope%0A"),
])
def test_bad_encodings_are_no_certificate(convention, value, ruleset, pki):
    _app, mw = _gate(pki, convention, ruleset)
    header = ForwardedCert.create(convention).header
    assert call(mw, [(header, value)]) == 403


def test_repeated_single_value_headers_are_no_certificate(ruleset, pki):
    for convention in ("cloudflare", "traefik", "nginx", "alb", "rfc9440"):
        _app, mw = _gate(pki, convention, ruleset)
        sent = headers_for(convention, pki)
        assert call(mw, sent) == 200
        assert call(mw, [sent[0], *sent]) == 403, convention


def test_too_many_certificates_and_bad_latin1_bytes(ruleset, pki):
    _app, mw = _gate(pki, "traefik", ruleset)
    assert call(mw, [("X-Forwarded-Tls-Client-Cert", ",".join([b64(pki.valid.der)] * 21))]) == 403
    fc = ForwardedCert.create("rfc9440")
    assert fc.extract([(b"client-cert", b":\xff\xfe:")]) is None
    assert fc.extract([(b"client-cert", b"\x00" * 10)]) is None


# -- careless operators ------------------------------------------------------------------
def test_a_convention_without_trusted_proxies_is_a_config_error(ruleset, pki):
    for kwargs in ({"forwarded_cert": "envoy"}, {"cert_header": "x-ssl-client-cert"}):
        with pytest.raises(ConfigError, match="trusted_proxies is empty"):
            EdgeRulesMiddleware(App(), ruleset, validator=make_validator(pki), **kwargs)


@pytest.mark.parametrize("everyone", ["0.0.0.0/0", "::/0"])
def test_trusting_every_address_is_a_config_error(everyone, ruleset):
    with pytest.raises(ConfigError, match="trusts every address"):
        EdgeRulesMiddleware(App(), ruleset, trusted_proxies=["10.0.0.0/8", everyone])


def test_unknown_convention_and_fixed_header_names(ruleset):
    with pytest.raises(ConfigError, match="expected one of"):
        EdgeRulesMiddleware(App(), ruleset, trusted_proxies=["10.0.0.1"], forwarded_cert="haproxy")
    with pytest.raises(ConfigError, match="only nginx's header name"):
        EdgeRulesMiddleware(App(), ruleset, trusted_proxies=["10.0.0.1"], forwarded_cert="envoy",
                            cert_header="x-my-cert")
    with pytest.raises(ConfigError, match="bad trusted_proxies"):
        EdgeRulesMiddleware(App(), ruleset, trusted_proxies=["10.0.0.300"])


def test_server_without_tls_extension_warns_once(ruleset, pki, caplog):
    mw = EdgeRulesMiddleware(App(), ruleset, validator=make_validator(pki))
    with caplog.at_level(logging.WARNING, logger="edgerules.middleware"):
        for _ in range(3):
            assert call(mw, [], client=CLIENT) == 403
    warnings = [r for r in caplog.records if r.name == "edgerules.middleware"]
    assert len(warnings) == 1
    text = warnings[0].getMessage()
    assert "EVERY request will look certificate-less" in text and "uvicorn" in text
    assert "edgerules serve" in text


def test_no_warning_when_the_server_reports_tls_or_certificates_do_not_matter(ruleset, pki, caplog):
    mw = EdgeRulesMiddleware(App(), ruleset, validator=make_validator(pki))
    plain = EdgeRulesMiddleware(App(), Ruleset.from_dict(
        {"name": "ip", "rules": [{"expression": "ip.src eq 192.0.2.1", "action": "block"}]}))
    with caplog.at_level(logging.WARNING, logger="edgerules.middleware"):
        call(mw, [], client=CLIENT, extensions={"tls": {"client_cert_chain": []}})
        call(plain, [], client=CLIENT)
    assert [r for r in caplog.records if r.name == "edgerules.middleware"] == []


def test_certificate_header_from_untrusted_peer_warns_once(ruleset, pki, caplog):
    mw = EdgeRulesMiddleware(App(), ruleset, validator=make_validator(pki),
                             trusted_proxies=["10.0.0.0/8"], forwarded_cert="envoy")
    with caplog.at_level(logging.WARNING, logger="edgerules.middleware"):
        for _ in range(2):
            assert call(mw, headers_for("envoy", pki), client=("172.17.0.1", 1)) == 403
    messages = [r.getMessage() for r in caplog.records if r.name == "edgerules.middleware"]
    assert len(messages) == 1
    assert "172.17.0.1" in messages[0] and "not in trusted_proxies" in messages[0]


def test_trusted_proxy_using_another_convention_warns(ruleset, pki, caplog):
    mw = EdgeRulesMiddleware(App(), ruleset, validator=make_validator(pki),
                             trusted_proxies=["10.0.0.0/8"])  # rfc9440 by default
    with caplog.at_level(logging.WARNING, logger="edgerules.middleware"):
        assert call(mw, headers_for("traefik", pki)) == 403
    messages = [r.getMessage() for r in caplog.records if r.name == "edgerules.middleware"]
    assert len(messages) == 1 and "x-forwarded-tls-client-cert" in messages[0]
    assert "forwarded_cert=" in messages[0]


def test_store_option_takes_a_path_or_a_store(ruleset, tmp_path):
    from edgerules.store import open_store

    path = tmp_path / "er.db"
    store = open_store(str(path), create=True)
    store.enable_hostnames(["api.localhost"])
    store.close()
    mw = EdgeRulesMiddleware(App(), ruleset, store=str(path))
    assert call(mw, [], client=CLIENT) == 403  # mTLS host, no certificate
    mw2 = EdgeRulesMiddleware(App(), ruleset, store=path)  # a PathLike too
    assert call(mw2, [], client=CLIENT, host="www.localhost") == 200
    mw.gate.store.close()
    mw2.gate.store.close()
    with pytest.raises(RuleError, match="no such file"):
        EdgeRulesMiddleware(App(), ruleset, store=str(tmp_path / "typo.db"))
    assert not (tmp_path / "typo.db").exists()
    with pytest.raises(RuleError, match="no such file"):
        EdgeRulesWSGIMiddleware(lambda e, s: [], ruleset, store=str(tmp_path / "typo.db"))


def test_wsgi_reads_mod_wsgi_var_lookup(ruleset, pki):
    # mod_wsgi exposes mod_ssl's ssl_var_lookup as environ["mod_ssl.var_lookup"]: the
    # certificate is there even when SSLOptions +ExportCertData is not set.
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        start_response("200 OK", [])
        return [b"ok"]

    mw = EdgeRulesWSGIMiddleware(app, ruleset, validator=make_validator(pki))
    variables = {"SSL_CLIENT_CERT": pem(pki.via_inter.cert), "SSL_CLIENT_CERT_CHAIN_0": pem(pki.inter)}
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": "/", "QUERY_STRING": "", "SERVER_NAME": "api.localhost",
        "SERVER_PORT": "443", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "192.0.2.1",
        "HTTP_HOST": "api.localhost", "wsgi.url_scheme": "https", "wsgi.input": io.BytesIO(),
        "mod_ssl.var_lookup": lambda name: variables.get(name, ""),
    }
    status = []
    body = mw(environ, lambda s, h: status.append(s))
    assert status == ["200 OK"] and list(body) == [b"ok"]
    assert seen["edgerules.client_auth"].verified is True
