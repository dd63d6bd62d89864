"""Every cf.tls_client_auth.* string against what Debian's `openssl x509` prints for the same
certificate (issue 3 point 7), plus the pure format rules (serial padding, dates)."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from edgerules.tls import ClientCertValidator
from edgerules.tls.certinfo import openssl_time, serial_hex

from .ca_fixture import DAY, NOW, Issued, make_ca, make_leaf, name, pki

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
needs_openssl = pytest.mark.skipif(not shutil.which(OPENSSL), reason="openssl not installed")
U8 = _ASN1Type.UTF8String
A = x509.NameAttribute
RDN = x509.RelativeDistinguishedName


def openssl(pem: bytes, *args: str) -> str:
    out = subprocess.run(
        [OPENSSL, "x509", "-noout", *args], input=pem, capture_output=True, check=True, timeout=30
    )
    return out.stdout.decode("utf-8")


def _value(output: str, prefix: str) -> str:
    for line in output.splitlines():
        if line.startswith(prefix):
            return line[len(prefix) :]
    raise AssertionError(f"{prefix!r} not in {output!r}")


def _ext_hex(output: str, title: str) -> str:
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if title in line:
            value = lines[i + 1].strip()
            value = value.removeprefix("keyid:")
            return value.replace(":", "").upper()
    return ""


@dataclass(frozen=True)
class Case:
    id: str
    leaf: Issued
    chain: tuple[bytes, ...]
    trusted: tuple[x509.Certificate, ...]
    issuer: Issued


def _cases() -> list[Case]:
    p = pki()
    odd = x509.Name(
        [
            RDN([A(NameOID.COUNTRY_NAME, "CH")]),
            RDN([A(NameOID.STATE_OR_PROVINCE_NAME, "Zürich")]),
            RDN([A(NameOID.ORGANIZATION_NAME, 'Acme, "Intl" <x>; a+b\\c')]),
            RDN([A(NameOID.ORGANIZATIONAL_UNIT_NAME, "a/b"), A(NameOID.USER_ID, "u1")]),
            RDN([A(NameOID.COMMON_NAME, " #lead and trail ")]),
            RDN([A(NameOID.EMAIL_ADDRESS, "ops@example.com")]),
            RDN([A(NameOID.DOMAIN_COMPONENT, "example")]),
            RDN([A(x509.ObjectIdentifier("1.2.3.4.5"), "private attr")]),
            RDN([A(NameOID.SERIAL_NUMBER, "#1", _type=U8)]),
            RDN([A(NameOID.COMMON_NAME, "Bmp é", _type=_ASN1Type.BMPString)]),
            RDN([A(NameOID.COMMON_NAME, "tab\there 日本")]),
        ]
    )
    docs = name(
        (NameOID.COUNTRY_NAME, "US"),
        (NameOID.STATE_OR_PROVINCE_NAME, "Texas"),
        (NameOID.LOCALITY_NAME, "Austin"),
        (NameOID.ORGANIZATION_NAME, "Access"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "Access Admins"),
        (NameOID.COMMON_NAME, "James Royal"),
    )
    out = []
    leaf = make_leaf(docs, p.root, serial=0x527E0F20A20EA2A4146C78390F34CE7AF0878CA4)
    out.append(Case("docs-subject", leaf, (leaf.der,), (p.root.cert,), p.root))
    leaf = make_leaf(odd, p.intermediate, serial=0x1AB)  # odd digit count -> 01AB
    out.append(
        Case("odd-names", leaf, (leaf.der, p.intermediate.der), (p.root.cert,), p.intermediate)
    )
    leaf = make_leaf(
        "high bit serial",
        p.root,
        serial=0x80FF,
        not_before=dt.datetime(2026, 5, 5, 1, 2, 3, tzinfo=dt.UTC),
    )
    out.append(Case("high-bit-serial", leaf, (leaf.der,), (p.root.cert,), p.root))
    leaf = make_leaf("rsa leaf", p.rsa_root, kind="rsa", serial=1)
    out.append(Case("rsa", leaf, (leaf.der,), (p.rsa_root.cert,), p.rsa_root))
    future = make_leaf(
        "far future", p.root, not_after=dt.datetime(2051, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    )
    out.append(Case("generalized-time", future, (future.der,), (p.root.cert,), p.root))
    # an unverified leaf: fields still describe it
    expired = make_leaf("expired leaf", p.root, not_before=NOW - 10 * DAY, not_after=NOW - DAY)
    out.append(Case("expired", expired, (expired.der,), (p.root.cert,), p.root))
    return out


CASES = {c.id: c for c in _cases()}


@needs_openssl
@pytest.mark.parametrize("cid", sorted(CASES))
def test_fields_match_openssl(cid: str) -> None:
    case = CASES[cid]
    auth = ClientCertValidator(case.trusted).validate(case.chain, now=NOW)
    assert auth.presented
    pem = case.leaf.pem
    rfc = openssl(pem, "-subject", "-issuer", "-nameopt", "RFC2253")
    utf8 = openssl(pem, "-subject", "-issuer", "-nameopt", "RFC2253,-esc_msb")
    compat = openssl(pem, "-subject", "-issuer", "-nameopt", "compat")
    misc = openssl(
        pem,
        "-serial",
        "-startdate",
        "-enddate",
        "-ext",
        "subjectKeyIdentifier,authorityKeyIdentifier",
    )
    sha256 = openssl(pem, "-fingerprint", "-sha256")
    sha1 = openssl(pem, "-fingerprint", "-sha1")
    issuer_out = openssl(case.issuer.pem, "-serial", "-ext", "subjectKeyIdentifier")

    f = auth.fields()

    def field(n: str) -> str:
        return f["cf.tls_client_auth." + n].decode("utf-8")

    assert field("cert_subject_dn_rfc2253") == _value(rfc, "subject=")
    assert field("cert_issuer_dn_rfc2253") == _value(rfc, "issuer=")
    assert field("cert_subject_dn") == _value(utf8, "subject=")
    assert field("cert_issuer_dn") == _value(utf8, "issuer=")
    assert field("cert_subject_dn_legacy") == _value(compat, "subject=")
    assert field("cert_issuer_dn_legacy") == _value(compat, "issuer=")
    assert field("cert_serial") == _value(misc, "serial=")
    assert field("cert_not_before") == _value(misc, "notBefore=")
    assert field("cert_not_after") == _value(misc, "notAfter=")
    assert field("cert_ski") == _ext_hex(misc, "Subject Key Identifier")
    assert field("cert_issuer_ski") == _ext_hex(misc, "Authority Key Identifier")
    assert field("cert_issuer_ski") == _ext_hex(issuer_out, "Subject Key Identifier")
    assert field("cert_issuer_serial") == _value(issuer_out, "serial=")
    assert (
        field("cert_fingerprint_sha256")
        == _value(sha256, "sha256 Fingerprint=").replace(":", "").lower()
    )
    assert (
        field("cert_fingerprint_sha1") == _value(sha1, "sha1 Fingerprint=").replace(":", "").lower()
    )


def test_docs_examples() -> None:
    """Cloudflare's own example values (client-certificate variables page, mTLS learning path)."""
    case = CASES["docs-subject"]
    auth = ClientCertValidator(case.trusted).validate(case.chain, now=NOW)
    assert auth.verified
    assert auth.subject_dn == "CN=James Royal,OU=Access Admins,O=Access,L=Austin,ST=Texas,C=US"
    assert auth.subject_dn_rfc2253 == auth.subject_dn
    assert (
        auth.subject_dn_legacy == "/C=US/ST=Texas/L=Austin/O=Access/OU=Access Admins/CN=James Royal"
    )
    assert auth.issuer_dn == (
        "CN=Managed CA test0001,OU=www.cloudflare.com,O=Cloudflare\\, Inc.,L=San Francisco,ST=California,C=US"
    )
    assert auth.issuer_dn_legacy == (
        "/C=US/ST=California/L=San Francisco/O=Cloudflare, Inc./OU=www.cloudflare.com/CN=Managed CA test0001"
    )
    assert auth.serial == "527E0F20A20EA2A4146C78390F34CE7AF0878CA4"
    assert auth.issuer_serial == "2688201DBA77402EA87118876F2E1B24CF8B0395"
    assert (
        len(auth.fingerprint_sha256) == 64
        and auth.fingerprint_sha256 == auth.fingerprint_sha256.lower()
    )
    assert len(auth.fingerprint_sha1) == 40


def test_dn_variants_differ_only_for_non_ascii() -> None:
    auth = ClientCertValidator([pki().root.cert]).validate(CASES["odd-names"].chain, now=NOW)
    assert "Zürich" in auth.subject_dn
    assert "Z\\C3\\BCrich" in auth.subject_dn_rfc2253
    assert auth.subject_dn_rfc2253.isascii() and auth.subject_dn_legacy.isascii()
    assert "\\xC3\\xBC" in auth.subject_dn_legacy  # raw UTF-8 bytes, oneline style


@pytest.mark.parametrize(
    ("serial", "text"),
    [
        (0, "00"),
        (1, "01"),
        (0x1AB, "01AB"),
        (0xFF, "FF"),
        (0x80FF, "80FF"),
        (0x0100, "0100"),
        (-5, "-05"),
    ],
)
def test_serial_hex(serial: int, text: str) -> None:
    assert serial_hex(serial) == text


@pytest.mark.parametrize(
    ("when", "text"),
    [
        (dt.datetime(2024, 5, 25, 23, 11, 0), "May 25 23:11:00 2024 GMT"),
        (dt.datetime(2022, 3, 5, 3, 4, 5), "Mar  5 03:04:05 2022 GMT"),
        (dt.datetime(2051, 12, 31, 23, 59, 59), "Dec 31 23:59:59 2051 GMT"),
    ],
)
def test_openssl_time(when: dt.datetime, text: str) -> None:
    assert openssl_time(when) == text


def test_ca_without_ski_issuer_ski_from_aki() -> None:
    p = pki()
    ca = make_ca("CA without SKI", ski=False)
    leaf = make_leaf("leaf of ski-less ca", ca)
    auth = ClientCertValidator([ca.cert]).validate([leaf.der], now=NOW)
    assert auth.verified
    aki = leaf.cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert auth.issuer_ski == aki.key_identifier.hex().upper()
    assert auth.ski != ""
    plain = make_leaf("leaf without ski", p.root, ski=False)
    assert ClientCertValidator([p.root.cert]).validate([plain.der], now=NOW).ski == ""
