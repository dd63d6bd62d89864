"""Names read from the DER (issue 9 point 4): decodable exactly when OpenSSL can load the
certificate, rendered as ``openssl x509`` renders them, never silently empty."""

from __future__ import annotations

import subprocess

import pytest

from edgerules.tls import ClientCertValidator

from . import chains

CN = "2.5.4.3"


def _leaf_with_subject(subject: bytes) -> tuple[chains.Issued, bytes]:
    p = chains.Pki()
    base = p.leaf_with(p.root, cn="placeholder")
    return p.root, chains.rebuild(base, p.root.key, subject=subject)


def _openssl_loads(der: bytes) -> bool:
    r = subprocess.run([chains.OPENSSL, "x509", "-inform", "DER", "-noout", "-subject"],
                       input=der, capture_output=True, check=False)
    return r.returncode == 0


@pytest.mark.parametrize(
    ("label", "tag", "value"),
    [
        ("odd-length BMPString", 0x1E, b"\x00d\x00e\x00"),
        ("BMPString surrogate", 0x1E, b"\xd8\x00\x00a"),
        ("invalid UTF-8", 0x0C, b"caf\xe9"),
        ("UTF-8 surrogate", 0x0C, b"\xed\xa0\x80"),
        ("UniversalString past U+10FFFF", 0x1C, b"\x00\x11\x00\x00"),
        ("UniversalString bad length", 0x1C, b"\x00\x00\x00a\x00"),
    ],
)
def test_undecodable_names_are_not_verified(label, tag, value) -> None:
    root, der = _leaf_with_subject(chains.raw_name((CN, tag, value)))
    assert not _openssl_loads(der), f"{label}: OpenSSL loads it, so we must too"
    auth = ClientCertValidator([root.cert]).validate([der], now=chains.NOW)
    assert auth.presented and not auth.verified
    assert auth.failure_reason == "unable to decode certificate"
    # undecodable: no DN is shown for it (and none is ever shown as verified)
    assert auth.subject_dn == ""


@pytest.mark.parametrize(
    ("tag", "value", "rfc2253", "utf8", "legacy"),
    [
        (0x14, "Zürich".encode("latin-1"), "CN=Z\\C3\\BCrich", "CN=Zürich", "/CN=Z\\xFCrich"),
        (0x16, b"caf\xe9", "CN=caf\\C3\\A9", "CN=café", "/CN=caf\\xE9"),
        (0x13, b"device_001 @*&#!", "CN=device_001 @*&#!", "CN=device_001 @*&#!",
         "/CN=device_001 @*&#!"),
        (0x1E, "日本".encode("utf-16-be"), "CN=\\E6\\97\\A5\\E6\\9C\\AC", "CN=日本",
         "/CN=e\\xE5g,"),
    ],
)
def test_lenient_names_verify_and_render_like_openssl(tag, value, rfc2253, utf8, legacy) -> None:
    root, der = _leaf_with_subject(chains.raw_name((CN, tag, value)))
    assert _openssl_loads(der)
    auth = ClientCertValidator([root.cert]).validate([der], now=chains.NOW)
    assert auth.verified, auth.failure_reason
    assert auth.subject_dn_rfc2253 == rfc2253
    assert auth.subject_dn == utf8
    assert auth.subject_dn_legacy == legacy
    assert chains.openssl_x509(der, "-subject", "-nameopt", "RFC2253").strip() == (
        "subject=" + rfc2253
    )
    assert chains.openssl_x509(der, "-subject", "-nameopt", "compat").strip() == (
        "subject=" + legacy
    )


def test_strict_profile_refuses_printablestring_outside_alphabet() -> None:
    root, der = _leaf_with_subject(chains.raw_name((CN, 0x13, b"device_001")))
    auth = ClientCertValidator([root.cert], profile="strict").validate([der], now=chains.NOW)
    assert not auth.verified
    assert "PrintableString" in auth.failure_reason
    assert auth.subject_dn == "CN=device_001"  # still described


def test_verified_implies_every_dn_field_is_filled() -> None:
    """Over every scenario of the differential suite: a verified leaf has all six DNs."""
    for sc in chains.build_scenarios():
        auth = ClientCertValidator(list(sc.trusted)).validate(list(sc.chain), now=sc.now)
        if not auth.verified:
            continue
        fields = auth.fields()
        for name in ("issuer_dn", "issuer_dn_rfc2253", "issuer_dn_legacy"):
            assert fields["cf.tls_client_auth.cert_" + name], (sc.id, name)
        if sc.id != "empty-subject-with-san":  # the one leaf with an empty subject
            for name in ("subject_dn", "subject_dn_rfc2253", "subject_dn_legacy"):
                assert fields["cf.tls_client_auth.cert_" + name], (sc.id, name)
