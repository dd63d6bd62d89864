"""Forwarding headers (docs/validator.md, "Forwarding headers") and the RFC 9440 encodings and limits."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from edgerules.errors import ConfigError
from edgerules.tls import NOT_REQUESTED, STRIP_HEADERS, ClientCertValidator, SerialRevocation
from edgerules.tls.headers import MANAGED_HEADERS, escape_header_value, forwarding_headers
from edgerules.tls.rfc9440 import CERT_LIMIT, CHAIN_LIMIT, encode_cert, encode_chain

from .ca_fixture import NOW, make_ca, make_leaf, name, pki, profiles

BIG = x509.ObjectIdentifier("1.3.6.1.4.1.99999.2")


def _auth(label: str, **kw):
    sc = profiles()[label]
    return ClientCertValidator(sc.trusted, **kw).validate(sc.chain, now=NOW)


def test_rfc9440_values() -> None:
    sc = profiles()["via_intermediate"]
    auth = _auth("via_intermediate")
    assert auth.rfc9440 == ":" + base64.b64encode(sc.chain[0]).decode() + ":"
    assert auth.chain_rfc9440 == ":" + base64.b64encode(sc.chain[1]).decode() + ":"
    headers = dict(forwarding_headers(auth, "rfc9440"))
    assert headers == {"Client-Cert": auth.rfc9440, "Client-Cert-Chain": auth.chain_rfc9440}


def test_rfc9440_only_for_verified_not_revoked() -> None:
    assert forwarding_headers(_auth("expired"), "rfc9440") == []
    assert _auth("expired").rfc9440 != ""  # the field is filled even so
    assert (
        forwarding_headers(_auth("revoked", revocation=SerialRevocation({0x01AB})), "rfc9440") == []
    )
    assert forwarding_headers(NOT_REQUESTED, "rfc9440") == []
    # only a leaf: no chain header
    assert [h for h, _ in forwarding_headers(_auth("valid"), "rfc9440")] == ["Client-Cert"]


def test_rfc9440_limits_exact() -> None:
    # exactly at the cap is kept, one byte more is too large
    n = (CERT_LIMIT - 2) // 4 * 3
    value, too_large = encode_cert(b"x" * n)
    assert len(value) <= CERT_LIMIT and not too_large
    value, too_large = encode_cert(b"x" * (n + 3))
    assert (value, too_large) == ("", True)
    assert encode_cert(b"") == ("", False)
    assert encode_chain([]) == ("", False)
    parts = [b"y" * 3000] * 4
    value, too_large = encode_chain(parts)
    assert not too_large and value.count(", ") == 3 and len(value) <= CHAIN_LIMIT
    value, too_large = encode_chain([b"y" * 3000] * 6)
    assert (value, too_large) == ("", True)


def test_too_large_leaf_and_chain() -> None:
    p = pki()
    big_leaf = make_leaf("big leaf", p.root, extra=[x509.UnrecognizedExtension(BIG, b"z" * 9000)])
    auth = ClientCertValidator([p.root.cert]).validate([big_leaf.der], now=NOW)
    assert auth.rfc9440 == "" and auth.rfc9440_too_large is True
    assert auth.tls_client_auth["certRFC9440TooLarge"] is True
    assert auth.fields()["cf.tls_client_auth.cert_rfc9440_too_large"] is True
    assert forwarding_headers(auth, "rfc9440") == []

    fat = [
        make_ca(f"Fat CA {i}", parent=p.root, extra=[x509.UnrecognizedExtension(BIG, b"f" * 5000)])
        for i in range(3)
    ]
    leaf = make_leaf("fat chain", fat[0])
    auth = ClientCertValidator([p.root.cert]).validate([leaf.der] + [c.der for c in fat], now=NOW)
    assert auth.verified
    assert auth.chain_rfc9440 == "" and auth.chain_rfc9440_too_large is True
    assert auth.rfc9440 != "" and not auth.rfc9440_too_large
    assert dict(forwarding_headers(auth, "rfc9440")) == {"Client-Cert": auth.rfc9440}


def test_access_headers() -> None:
    sc = profiles()["valid"]
    auth = _auth("valid")
    headers = dict(forwarding_headers(auth, "access"))
    assert headers["Cf-Client-Cert-Der-Base64"] == base64.b64encode(sc.chain[0]).decode()
    assert base64.b64decode(headers["Cf-Client-Cert-Der-Base64"], validate=True) == sc.chain[0]
    assert headers["Cf-Client-Cert-Sha256"] == hashlib.sha256(sc.chain[0]).hexdigest()
    assert forwarding_headers(_auth("expired"), "access") == []


def test_managed_headers() -> None:
    auth = _auth("valid")
    headers = forwarding_headers(auth, "managed")
    assert [h for h, _ in headers] == [h for h, _ in MANAGED_HEADERS]
    assert len(headers) == 17
    d = dict(headers)
    assert (
        d["cf-cert-verified"] == "true"
        and d["cf-cert-revoked"] == "false"
        and d["cf-cert-presented"] == "true"
    )
    assert d["cf-cert-subject-dn"] == "CN=Cloudflare,C=US"
    assert d["cf-cert-subject-dn-legacy"] == "/C=US/CN=Cloudflare"
    assert d["cf-cert-serial"] == auth.serial and d["cf-cert-issuer-ski"] == auth.issuer_ski
    none = dict(forwarding_headers(NOT_REQUESTED, "managed"))
    assert none["cf-cert-presented"] == "false" and none["cf-cert-subject-dn"] == ""


def test_managed_headers_escape_non_ascii() -> None:
    p = pki()
    leaf = make_leaf(name((NameOID.COUNTRY_NAME, "CH"), (NameOID.COMMON_NAME, "Zürich 😀")), p.root)
    auth = ClientCertValidator([p.root.cert]).validate([leaf.der], now=NOW)
    d = dict(forwarding_headers(auth, "managed"))
    assert d["cf-cert-subject-dn"] == "CN=Z\\u00fcrich \\ud83d\\ude00,C=CH"
    assert d["cf-cert-subject-dn-rfc2253"] == "CN=Z\\C3\\BCrich \\F0\\9F\\98\\80,C=CH"
    assert all(v.isascii() for _, v in forwarding_headers(auth, "all"))
    assert escape_header_value("a\r\nb") == "a\\u000d\\u000ab"


def test_all_and_bad_style() -> None:
    auth = _auth("via_intermediate")
    names = [h for h, _ in forwarding_headers(auth)]
    assert names[:4] == [
        "Client-Cert",
        "Client-Cert-Chain",
        "Cf-Client-Cert-Der-Base64",
        "Cf-Client-Cert-Sha256",
    ]
    assert len(names) == 21
    assert {n.lower() for n in names} == STRIP_HEADERS
    with pytest.raises(ConfigError):
        forwarding_headers(auth, "bogus")
