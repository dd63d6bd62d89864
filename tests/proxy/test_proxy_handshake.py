"""Cloudflare's handshake behaviour over real TLS: a missing, untrusted, expired or
self-signed certificate never fails the handshake; the fields say what was presented,
and the rules decide."""

from __future__ import annotations

import base64
import ssl

import pytest
from proxy_helpers import (
    MTLS_HOST,
    PLAIN_HOST,
    A,
    Client,
    make_validator,
    origin_headers,
    running_proxy,
)

ALL_AUTH = frozenset(
    {
        "http.host",
        A + "cert_presented",
        A + "cert_verified",
        A + "cert_revoked",
        A + "cert_serial",
        "ssl",
        "cf.tls_version",
        "cf.tls_cipher",
        "cf.edge.server_port",
        "ip.src",
    }
)


@pytest.fixture(scope="module")
def proxy(pki, origin):
    validator = make_validator(pki, revoked=[pki.revoked])
    with running_proxy(f"http://127.0.0.1:{origin.port}", validator=validator, fields=ALL_AUTH) as p:
        p.validator = validator
        yield p


CASES = [
    # (id, sni, cert attr, presented, verified, revoked, status)
    ("no-mtls-host", PLAIN_HOST, "valid", False, False, False, 200),
    ("no-cert", MTLS_HOST, None, False, False, False, 403),
    ("self-signed", MTLS_HOST, "self_signed", True, False, False, 403),
    ("expired", MTLS_HOST, "expired", True, False, False, 403),
    ("foreign-ca", MTLS_HOST, "foreign", True, False, False, 403),
    ("valid", MTLS_HOST, "valid", True, True, False, 200),
    ("valid-via-intermediate", MTLS_HOST, "via_inter", True, True, False, 200),
    ("revoked", MTLS_HOST, "revoked", True, True, True, 403),
]


@pytest.mark.parametrize("tls_max", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls12", "tls13"])
@pytest.mark.parametrize(("case", "sni", "cert", "presented", "verified", "revoked", "status"), CASES, ids=[c[0] for c in CASES])
def test_handshake_table(proxy, pki, case, sni, cert, presented, verified, revoked, status, tls_max):
    issued = getattr(pki, cert) if cert else None
    before = len(proxy.seen)
    with Client(proxy.port, sni=sni, cert=issued, max_version=tls_max) as c:
        got, _resp, body = c.request("GET", f"/case/{case}")
    assert got == status, body
    fields = proxy.seen[before]
    assert fields[A + "cert_presented"] is presented
    assert fields[A + "cert_verified"] is verified
    assert fields[A + "cert_revoked"] is revoked
    assert fields["ssl"] is True
    expected_version = b"TLSv1.2" if tls_max == ssl.TLSVersion.TLSv1_2 else b"TLSv1.3"
    assert fields["cf.tls_version"] == expected_version
    assert fields["cf.tls_cipher"]
    if tls_max == ssl.TLSVersion.TLSv1_3:
        assert fields["cf.tls_cipher"].startswith(b"AEAD-")
    assert fields["cf.edge.server_port"] == proxy.port
    assert str(fields["ip.src"]) == "127.0.0.1"
    if presented:
        assert fields[A + "cert_serial"] == issued.serial_hex.encode()
    else:
        assert fields.get(A + "cert_serial", b"") == b""
    if status == 403:
        assert b"valid client certificate is required" in body
        assert b"mtls-required" in body
    record = proxy.record(f"/case/{case}")
    assert record["status"] == status
    assert record["decision"] == ("allow" if status == 200 else "block")
    if presented:
        assert record["cert_serial"] == issued.serial_hex


def test_forwarded_chain_for_intermediate(proxy, pki, origin):
    with Client(proxy.port, cert=pki.via_inter) as c:
        status, echo = c.json("GET", "/chain")
    assert status == 200
    h = origin_headers(echo)
    assert h["client-cert"] == [":" + base64.b64encode(pki.via_inter.der).decode() + ":"]
    from cryptography.hazmat.primitives.serialization import Encoding

    inter = base64.b64encode(pki.inter.public_bytes(Encoding.DER)).decode()
    assert h["client-cert-chain"] == [f":{inter}:"]


def test_validator_runs_once_per_connection(pki, origin):
    validator = make_validator(pki)
    calls = []
    real = validator.validate

    def counting(chain, **kw):
        calls.append(len(chain))
        return real(chain, **kw)

    class Wrapper:
        validate = staticmethod(counting)

    with running_proxy(f"http://127.0.0.1:{origin.port}", validator=Wrapper()) as p, Client(p.port, cert=pki.valid) as c:
        for _ in range(4):
            assert c.request("GET", "/k")[0] == 200
    assert calls == [1]


@pytest.mark.parametrize("tls_max", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls12", "tls13"])
def test_no_session_resumption_keeps_the_verdict(proxy, pki, tls_max):
    """A resumed session would carry no peer chain: resumption is disabled, so a second
    connection offering the session gets a full handshake and the certificate again."""
    with Client(proxy.port, cert=pki.valid, max_version=tls_max) as c:
        assert c.request("GET", "/first")[0] == 200
        session = c.sock.session
    with Client(proxy.port, ctx=c.ctx, session=session) as c2:
        assert c2.request("GET", "/second")[0] == 200
        assert not c2.sock.session_reused
    assert proxy.seen[-1][A + "cert_verified"] is True


def test_keep_alive_carries_several_requests(proxy, pki, origin):
    with Client(proxy.port, cert=pki.valid) as c:
        results = [c.json("GET", f"/ka/{i}") for i in range(5)]
    assert [s for s, _ in results] == [200] * 5
    last = proxy.record("/ka/4")
    records = [r for r in proxy.records if (r["path"] or "").startswith("/ka/")]
    assert len(records) == 5
    assert {r["conn"] for r in records} == {last["conn"]}  # one client connection
    # the proxy pooled its upstream connection too: the origin saw one connection reused
    assert max(echo["connection_requests"] for _, echo in results) >= 2


# -- Host vs SNI: a certificate is asked for by SNI, rules read the Host header -----------
@pytest.mark.parametrize(
    ("sni", "host"),
    [
        (PLAIN_HOST, MTLS_HOST),  # dodge the CertificateRequest, then name the mTLS host
        (PLAIN_HOST, MTLS_HOST.upper() + ":443"),
        (PLAIN_HOST, MTLS_HOST + "."),
        (None, MTLS_HOST),  # no SNI at all (connecting by address)
    ],
)
def test_host_naming_an_mtls_host_on_another_sni_is_421(proxy, pki, sni, host):
    before = len(proxy.seen)
    with Client(proxy.port, sni=sni, cert=pki.valid) as c:
        status, resp, body = c.request("GET", "/misdirected", headers={"Host": host})
    assert status == 421, body
    assert resp.getheader("connection") == "close"
    assert len(proxy.seen) == before  # refused before any rule ran
    record = proxy.record("/misdirected")
    assert record["status"] == 421 and record["decision"] == "error"


def test_host_of_a_plain_host_on_an_mtls_connection_is_served(proxy, pki):
    # The certificate was asked for and validated; the rules see it whatever the Host.
    before = len(proxy.seen)
    with Client(proxy.port, sni=MTLS_HOST, cert=pki.valid) as c:
        status, _resp, _body = c.request("GET", "/other-host", headers={"Host": PLAIN_HOST})
        assert status == 200
        status, _resp, _body = c.request("GET", "/same-host", headers={"Host": "API.localhost:443"})
        assert status == 200
    assert proxy.seen[before][A + "cert_verified"] is True


def test_host_with_trailing_dot_is_the_same_host_for_the_rules(proxy, pki):
    # "api.localhost." names the same host (DNS root label); origins' virtual hosts treat
    # it so. If http.host kept the dot, `http.host eq "api.localhost"` would miss and a
    # client without a certificate would reach the mTLS host's origin.
    before = len(proxy.seen)
    with Client(proxy.port, sni=MTLS_HOST) as c:
        status, _resp, _body = c.request("GET", "/dot", headers={"Host": MTLS_HOST + ".:443"})
    assert status == 403
    assert proxy.seen[before]["http.host"] == MTLS_HOST.encode()
