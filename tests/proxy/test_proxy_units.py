"""Unit tests: request fields, header rules, forwarded-certificate parsing, config,
block pages, the demo and the CLI wiring."""

from __future__ import annotations

import base64
import io
import ipaddress
from urllib.parse import quote

import pytest

from edgerules.enforcement.certheaders import der_chain_from_header, pem_to_der
from edgerules.enforcement.decision import Verdict, block_page
from edgerules.enforcement.forwarding import client_response_headers, origin_request_headers
from edgerules.enforcement.request_fields import PROVIDED_FIELDS, RequestInfo, request_fields
from edgerules.errors import ConfigError
from edgerules.proxy.config import (
    ForwardingPolicy,
    Limits,
    ProxyConfig,
    parse_hostport,
    parse_upstream,
)
from edgerules.proxy.tls import boringssl_cipher_name


def info(target=b"/", headers=(), **kw):
    return RequestInfo(method=b"get", target=target, headers=list(headers), client_ip="::ffff:192.0.2.1", **kw)


@pytest.mark.parametrize(
    ("path", "ext"),
    [(b"/foo", b""), (b"/foo.MP3", b"mp3"), (b"/.mp3", b""), (b"/.foo.mp3", b"mp3"), (b"/foo.tar.bz2", b"bz2"),
     (b"/foo.", b""), (b"/a.b/c", b""), (b"/", b"")],
)
def test_path_extension(path, ext):
    assert request_fields(["http.request.uri.path.extension"], info(path))["http.request.uri.path.extension"] == ext


def test_uri_fields_and_args():
    r = info(b"/articles/index?section=539061&expand=comments&expand=x&flag&=v#frag",
             headers=[(b"Host", b"WWW.Example.org:8443")])
    f = request_fields(PROVIDED_FIELDS, r)
    assert f["http.request.uri"] == b"/articles/index?section=539061&expand=comments&expand=x&flag&=v"
    assert f["http.request.uri.path"] == b"/articles/index"
    assert f["http.request.uri.query"] == b"section=539061&expand=comments&expand=x&flag&=v"
    assert f["http.request.uri.args"] == {b"section": (b"539061",), b"expand": (b"comments", b"x"),
                                          b"flag": (b"",), b"": (b"v",)}
    assert f["http.request.uri.args.names"] == (b"section", b"expand", b"expand", b"flag", b"")
    assert f["http.host"] == b"www.example.org"
    assert f["http.request.full_uri"].startswith(b"https://WWW.Example.org:8443/articles/index?section")
    assert f["http.request.method"] == b"GET"
    assert f["http.request.version"] == b"HTTP/1.1"
    assert f["ip.src"] == ipaddress.ip_address("192.0.2.1")  # v4-mapped is unwrapped
    assert f["raw.http.request.uri.path"] == f["http.request.uri.path"]
    assert f["ssl"] is True


def test_absolute_form_target():
    f = request_fields(["http.request.uri.path", "http.request.uri.query"], info(b"https://h.example/p/q?x=1"))
    assert f == {"http.request.uri.path": b"/p/q", "http.request.uri.query": b"x=1"}


def test_header_fields_and_cookies():
    r = info(headers=[(b"Content-Type", b"a/b"), (b"X-A", b"1"), (b"x-a", b"2"),
                      (b"Cookie", b"app=test; %61pp=two; theme=dark"), (b"User-Agent", b"ua"),
                      (b"Referer", b"r"), (b"X-Forwarded-For", b"203.0.113.195, 70.41.3.18"),
                      (b"Accept-Language", b"fr-CH, fr;q=0.9, en;q=0.8, *;q=0.5")])
    f = request_fields(PROVIDED_FIELDS, r)
    assert f["http.request.headers"][b"x-a"] == (b"1", b"2")
    assert f["http.request.headers.names"][:3] == (b"Content-Type", b"X-A", b"x-a")
    assert f["http.request.headers.values"][:3] == (b"a/b", b"1", b"2")
    assert f["http.request.cookies"] == {b"app": (b"test", b"two"), b"theme": (b"dark",)}
    assert f["http.cookie"] == b"app=test; %61pp=two; theme=dark"
    assert f["http.user_agent"] == b"ua" and f["http.referer"] == b"r"
    assert f["http.x_forwarded_for"] == b"203.0.113.195, 70.41.3.18"
    assert f["http.request.accepted_languages"] == (b"fr-CH", b"fr", b"en")


def test_http_host_drops_port_case_and_one_trailing_dot():
    for sent, host in [(b"API.Example.:8443", b"api.example"), (b"api.example.", b"api.example"),
                       (b"[::1]:443", b"[::1]"), (b"api.example", b"api.example")]:
        assert info(headers=[(b"host", sent)]).hostname() == host, sent


def test_only_needed_fields_are_computed():
    class Auth:
        def fields(self):
            raise AssertionError("client-auth fields must not be read when no rule needs them")

    assert request_fields(["http.host"], info(headers=[(b"host", b"a")]), Auth()) == {"http.host": b"a"}


def test_origin_headers_rules():
    out = origin_request_headers(
        [(b"Host", b"api"), (b"Connection", b"close, X-Hop"), (b"X-Hop", b"1"), (b"client-CERT", b"x"),
         (b"CF-Cert-Serial", b"y"), (b"X-Forwarded-For", b"1.1.1.1"), (b"x-forwarded-for", b"2.2.2.2"),
         (b"X-Forwarded-Proto", b"http"), (b"Transfer-Encoding", b"chunked"), (b"X-Keep", b"k")],
        client_ip="192.0.2.1", original_host=b"api", upstream_netloc="origin:8080", preserve_host=False,
        cert_headers=[(b"Client-Cert", b":AA==:")], chunked_body=True,
    )
    names = [n.lower() for n, _ in out]
    assert dict((n.lower(), v) for n, v in out)[b"host"] == b"origin:8080"
    assert b"x-hop" not in names and b"connection" not in names
    assert names.count(b"client-cert") == 1 and (b"Client-Cert", b":AA==:") in out
    assert b"cf-cert-serial" not in names
    assert (b"X-Forwarded-For", b"1.1.1.1, 2.2.2.2, 192.0.2.1") in out
    assert (b"X-Forwarded-Proto", b"https") in out and (b"X-Forwarded-Host", b"api") in out
    assert (b"Transfer-Encoding", b"chunked") in out and (b"X-Keep", b"k") in out
    resp = client_response_headers([(b"Connection", b"x-internal"), (b"X-Internal", b"1"), (b"Keep-Alive", b"5"),
                                     (b"Content-Length", b"3")])
    assert resp == [(b"Content-Length", b"3")]


def test_origin_headers_never_pair_content_length_with_chunked():
    head = [(b"Host", b"api"), (b"Content-Length", b"4"), (b"Transfer-Encoding", b"chunked")]
    common = {"client_ip": "192.0.2.1", "original_host": b"api", "upstream_netloc": "o",
              "preserve_host": True}
    chunked = [n.lower() for n, _ in origin_request_headers(head, chunked_body=True, **common)]
    assert b"content-length" not in chunked and chunked.count(b"transfer-encoding") == 1
    plain = origin_request_headers(head[:2], chunked_body=False, **common)
    assert (b"Content-Length", b"4") in plain


def test_cert_header_parsing(pki):
    from cryptography.hazmat.primitives.serialization import Encoding

    leaf = pki.valid.der
    leaf_pem = pki.valid.cert.public_bytes(Encoding.PEM).decode()
    b64 = base64.b64encode(leaf).decode()
    assert der_chain_from_header("Client-Cert", f":{b64}:") == [leaf]
    assert der_chain_from_header("client-cert", f":{b64}:", f":{b64}:, :{b64}:") == [leaf, leaf, leaf]
    assert der_chain_from_header("client-cert", b64) is None  # not a byte sequence
    assert der_chain_from_header("client-cert", ":%%%:") is None
    assert der_chain_from_header("x-ssl-client-cert", quote(leaf_pem)) == [leaf]
    assert der_chain_from_header("x-ssl-client-cert", leaf_pem.replace("\n", "\t")) == [leaf]
    assert der_chain_from_header("x-forwarded-client-cert", f'Hash=1;Cert="{quote(leaf_pem)}"') == [leaf]
    assert der_chain_from_header("x-forwarded-client-cert", "Hash=1;Subject=\"a,b\"") is None
    assert der_chain_from_header("x-ssl-client-cert", "garbage") is None
    assert pem_to_der("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----") == []


def test_config_validation():
    assert parse_hostport("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_hostport("[::1]:8443") == ("::1", 8443)
    assert parse_hostport(":9000") == ("127.0.0.1", 9000)
    for bad in ("nohost", "h:99999", "h:x"):
        with pytest.raises(ConfigError):
            parse_hostport(bad)
    up = parse_upstream("http://origin:8080/base/")
    assert (up.host, up.port, up.base_path, up.netloc) == ("origin", 8080, "/base", "origin:8080")
    with pytest.raises(ConfigError):
        parse_upstream("ftp://x")
    with pytest.raises(ConfigError):
        Limits(idle_timeout=0)
    with pytest.raises(ConfigError):
        ForwardingPolicy.from_styles(["rfc9440", "bogus"])
    with pytest.raises(ConfigError):
        ProxyConfig(upstream="http://x", cert_file="a.pem")
    cfg = ProxyConfig(upstream="http://x", forwarding_by_host={"API.localhost.": ForwardingPolicy(rfc9440=False)})
    assert cfg.forwarding_for("api.localhost").rfc9440 is False
    assert cfg.forwarding_for("other").rfc9440 is True


def test_block_pages():
    class Auth:
        presented, verified, revoked, failure_reason = True, False, False, "certificate has expired"

    status, ctype, body = block_page(Verdict("block", rule_ref="r1"), Auth(), accept=b"text/html", cert_requested=True)
    assert status == 403 and ctype.startswith(b"text/html")
    assert b"r1" in body and b"valid client certificate is required" in body and b"expired" in body
    status, ctype, body = block_page(Verdict("block", rule_ref="r1"), Auth(), cert_requested=False)
    assert ctype.startswith(b"text/plain") and b"certificate" not in body
    status, ctype, body = block_page(Verdict("challenge", rule_ref="c"), None)
    assert status == 403 and b"challenge required" in body
    custom = Verdict("block", status=429, content_type="application/json", body=b"{}")
    assert block_page(custom, None) == (429, b"application/json", b"{}")


def test_cipher_names():
    assert boringssl_cipher_name("TLS_AES_128_GCM_SHA256") == "AEAD-AES128-GCM-SHA256"
    assert boringssl_cipher_name("ECDHE-RSA-AES128-GCM-SHA256") == "ECDHE-RSA-AES128-GCM-SHA256"


def test_demo_runs_clean():
    from edgerules import demo

    out = io.StringIO()
    assert demo.run(out) == 0, out.getvalue()
    assert "demo OK" in out.getvalue()


def test_cli_bad_arguments(capsys):
    from edgerules.cli import main

    assert main(["proxy", "--upstream", "ftp://x", "--access-log", "off"]) == 2
    assert "upstream must be" in capsys.readouterr().err
    assert main(["proxy", "--upstream", "http://x", "--cert", "/nonexistent.pem", "--key", "/nonexistent.key"]) == 2
    assert "cannot load the server certificate" in capsys.readouterr().err


def test_middlewares_need_no_proxy_extra():
    """``edgerules.asgi``/``wsgi`` (and the gate, forwarding rules) import without
    pyOpenSSL or h11: the core does not need the ``proxy`` extra."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['OpenSSL'] = sys.modules['h11'] = None\n"
        "import edgerules.asgi, edgerules.wsgi, edgerules.enforcement.forwarding\n"
        "assert not any(m.startswith(('OpenSSL', 'h11')) and sys.modules[m] for m in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
