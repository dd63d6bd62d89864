"""ClientCertValidator: verdicts, reasons, direct issuer, anchors, Workers object, fields."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgerules.errors import PKIError
from edgerules.tls import (
    FIELD_NAMES,
    NO_CERTIFICATE,
    NOT_REQUESTED,
    ClientAuth,
    ClientCertValidator,
    SerialRevocation,
)

from .ca_fixture import DAY, NOW, key, make_ca, make_cert, make_leaf, name, pki, profiles

P = "cf.tls_client_auth."


@pytest.mark.parametrize("label", sorted(profiles()))
def test_profile_verdicts(label: str) -> None:
    sc = profiles()[label]
    v = ClientCertValidator(sc.trusted, revocation=SerialRevocation(sc.revoked_serials))
    auth = v.validate(sc.chain, now=NOW)
    assert auth.presented
    assert (auth.verified, auth.failure_reason, auth.revoked) == (
        sc.verified,
        sc.reason,
        sc.revoked,
    )
    expected_status = "SUCCESS" if sc.verified else f"FAILED:{sc.reason}"
    assert auth.tls_client_auth["certVerified"] == expected_status
    if not sc.verified:
        assert auth.detail  # the library's message is kept for logs


def test_no_certificate_and_not_requested() -> None:
    v = ClientCertValidator([pki().root.cert])
    auth = v.validate([], now=NOW)
    assert auth is NO_CERTIFICATE
    for a in (auth, NOT_REQUESTED):
        assert (a.presented, a.verified, a.revoked, a.failure_reason) == (False, False, False, "")
        w = a.tls_client_auth
        assert w["certPresented"] == "0" and w["certVerified"] == "NONE" and w["certRevoked"] == "0"
        assert all(
            w[k] == ""
            for k in w
            if k
            not in {
                "certPresented",
                "certVerified",
                "certRevoked",
                "certRFC9440TooLarge",
                "certChainRFC9440TooLarge",
            }
        )
        assert w["certRFC9440TooLarge"] is False and w["certChainRFC9440TooLarge"] is False
        f = a.fields()
        assert set(f) == set(FIELD_NAMES) and len(f) == 21
        assert all(f[n] in (False, b"") for n in FIELD_NAMES)
    assert NOT_REQUESTED.requested is False and auth.requested is True


def test_client_auth_is_immutable() -> None:
    auth = ClientCertValidator([pki().root.cert]).validate(profiles()["valid"].chain, now=NOW)
    with pytest.raises(AttributeError):
        auth.verified = False  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del auth.presented


def test_trusted_inputs_pem_der_object_and_bundle() -> None:
    p = pki()
    chain = profiles()["valid"].chain
    for trusted in (
        [p.root.cert],
        [p.root.pem],
        [p.root.pem.decode()],
        [p.root.der],
        p.other.pem + p.root.pem,  # one PEM bundle
    ):
        assert ClientCertValidator(trusted).validate(chain, now=NOW).verified
    with pytest.raises(PKIError):
        ClientCertValidator([b"not a certificate"])
    # a malformed CRL is reported and skipped: it never prevents building a validator
    v = ClientCertValidator([pki().root.cert], crls=[b"not a crl"])
    assert v.validate(chain, now=NOW).verified
    assert len(v.problems) == 1 and "CRL" in v.problems[0]


def test_no_trusted_cas() -> None:
    auth = ClientCertValidator([]).validate(profiles()["valid"].chain, now=NOW)
    assert auth.presented and not auth.verified
    assert auth.failure_reason == "unable to get local issuer certificate"


def test_intermediate_as_anchor() -> None:
    p = pki()
    leaf = make_leaf("client of inter", p.intermediate)
    v = ClientCertValidator([p.intermediate.cert])
    for chain in ([leaf.der], [leaf.der, p.intermediate.der]):
        auth = v.validate(chain, now=NOW)
        assert auth.verified, auth.detail
        assert auth.issuer == p.intermediate.cert
        assert [c.subject for c in auth.path] == [leaf.subject, p.intermediate.subject]
    # the root alone needs the intermediate from the client
    root_only = ClientCertValidator([p.root.cert])
    assert not root_only.validate([leaf.der], now=NOW).verified
    assert root_only.validate([leaf.der, p.intermediate.der], now=NOW).verified


def test_misordered_and_extra_intermediates() -> None:
    p = pki()
    leaf = make_leaf("misordered", p.intermediate)
    v = ClientCertValidator([p.root.cert])
    auth = v.validate([leaf.der, p.other.der, p.root.der, p.intermediate.der], now=NOW)
    assert auth.verified
    assert auth.issuer == p.intermediate.cert


def test_naive_now_is_utc_and_default_now() -> None:
    v = ClientCertValidator([pki().root.cert], cache_size=0)
    chain = profiles()["expired"].chain
    assert (
        v.validate(chain, now=NOW.replace(tzinfo=None)).failure_reason == "certificate has expired"
    )
    # the default clock: the fixture's certificates are valid around NOW only, so the
    # real current time may give either answer, but it must not raise
    assert v.validate(chain).presented


# --- reasons in OpenSSL's order --------------------------------------------------------


def _reason(trusted, chain, now=NOW) -> str:
    auth = ClientCertValidator([t.cert for t in trusted]).validate([c.der for c in chain], now=now)
    assert auth.presented
    return "" if auth.verified else auth.failure_reason


def test_reason_expired_intermediate() -> None:
    p = pki()
    inter = make_ca(
        "Old Intermediate", parent=p.root, not_before=NOW - 100 * DAY, not_after=NOW - DAY
    )
    leaf = make_leaf("under old intermediate", inter)
    assert _reason([p.root], [leaf, inter]) == "certificate has expired"


def test_reason_not_yet_valid_intermediate() -> None:
    p = pki()
    inter = make_ca(
        "Future Intermediate", parent=p.root, not_before=NOW + DAY, not_after=NOW + 100 * DAY
    )
    leaf = make_leaf("under future intermediate", inter)
    assert _reason([p.root], [leaf, inter]) == "certificate is not yet valid"


def test_reason_missing_intermediate() -> None:
    p = pki()
    leaf = make_leaf("needs intermediate", p.intermediate)
    assert _reason([p.root], [leaf]) == "unable to get local issuer certificate"


def test_reason_self_signed_in_chain() -> None:
    p = pki()
    rogue_root = make_ca("Rogue Root")
    leaf = make_leaf("rogue", rogue_root)
    assert _reason([p.root], [leaf, rogue_root]) == "self signed certificate in certificate chain"


def test_reason_signature_failure_same_name_other_key() -> None:
    p = pki()
    # A CA with the trusted root's name but another key, without key identifiers, so
    # only the signature tells them apart.
    fake = make_cert(p.root.subject, key_=key("fake-root"), ca=True, aki=False, ski=False)
    leaf = make_cert(
        "victim", key_=key("victim"), issuer=fake, aki=False, eku=[ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    assert _reason([p.root], [leaf]) == "certificate signature failure"


def test_reason_invalid_ca() -> None:
    p = pki()
    not_ca = make_leaf("not a ca", p.root)
    leaf = make_leaf("under a leaf", not_ca)
    assert _reason([p.root], [leaf, not_ca]) == "invalid CA certificate"


def test_reason_path_length() -> None:
    p = pki()
    top = make_ca("PathLen0 CA", parent=p.root, path_length=0)
    mid = make_ca("Below PathLen0", parent=top)
    leaf = make_leaf("too deep", mid)
    assert _reason([p.root], [leaf, mid, top]) == "path length constraint exceeded"


def test_reason_ca_eku_without_client_auth() -> None:
    p = pki()
    inter = make_ca(
        "Server-only Intermediate", parent=p.root, eku=[ExtendedKeyUsageOID.SERVER_AUTH]
    )
    leaf = make_leaf("under server-only", inter)
    assert _reason([p.root], [leaf, inter]) == "unsupported certificate purpose"


def test_eku_absent_is_accepted() -> None:
    p = pki()
    leaf = make_leaf("no eku", p.root, eku=None)
    assert _reason([p.root], [leaf]) == ""


def test_weak_rsa_keys() -> None:
    p = pki()
    # OpenSSL at security level 2 (a TLS server's default) refuses a 1024-bit leaf key
    # too; every profile does unless the operator names the weakness
    leaf = make_leaf("weak", p.root, kind="rsa1024")
    assert _reason([p.root], [leaf]) == "EE certificate key too weak"
    for prof in ("compatible", "strict"):
        v = ClientCertValidator([p.root.cert], profile=prof, allow=("rsa1024",))
        assert v.validate([leaf.der], now=NOW).verified
    # and signatures made with an RSA key under 2048 bits
    weak_ca = make_ca("Weak RSA CA", kind="rsa1024")
    assert (
        _reason([weak_ca], [make_leaf("under weak ca", weak_ca)]) == "CA certificate key too weak"
    )


def test_reason_permitted_subtree() -> None:
    p = pki()
    nc = x509.NameConstraints(
        permitted_subtrees=[x509.DNSName("example.com")], excluded_subtrees=None
    )
    inter = make_ca("Constrained CA", parent=p.root, name_constraints=nc)
    ok = make_leaf("inside", inter, san=[x509.DNSName("a.example.com")])
    bad = make_leaf("outside", inter, san=[x509.DNSName("a.example.org")])
    assert _reason([p.root], [ok, inter]) == ""
    assert _reason([p.root], [bad, inter]) == "permitted subtree violation"


# --- direct issuer ----------------------------------------------------------------------


def test_issuer_fields_unverified_but_known_issuer() -> None:
    p = pki()
    auth = ClientCertValidator([p.root.cert]).validate(profiles()["expired"].chain, now=NOW)
    assert not auth.verified
    assert auth.issuer == p.root.cert
    assert auth.issuer_serial == "2688201DBA77402EA87118876F2E1B24CF8B0395"


def test_issuer_fields_unknown_issuer_use_aki() -> None:
    p = pki()
    auth = ClientCertValidator([p.root.cert]).validate(profiles()["wrong_ca"].chain, now=NOW)
    assert auth.issuer is None
    assert auth.issuer_serial == ""
    ski = p.other.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert auth.issuer_ski == ski.key_identifier.hex().upper()


def test_issuer_fields_through_intermediate() -> None:
    p = pki()
    auth = ClientCertValidator([p.root.cert]).validate(
        profiles()["via_intermediate"].chain, now=NOW
    )
    assert auth.verified
    assert (
        auth.issuer_serial
        == f"{p.intermediate.cert.serial_number:X}".rjust(40, "0")[-len(auth.issuer_serial) :]
    )
    assert int(auth.issuer_serial, 16) == p.intermediate.cert.serial_number
    assert auth.issuer_dn == "CN=Test Intermediate CA"


# --- fields mapping and the engine --------------------------------------------------------


def test_fields_are_lazy() -> None:
    auth = ClientCertValidator([pki().root.cert]).validate(
        profiles()["via_intermediate"].chain, now=NOW
    )
    fresh = ClientAuth(
        presented=True, verified=True, leaf=auth.leaf, chain_der=auth.chain_der, issuer=auth.issuer
    )
    f = fresh.fields()
    assert f[P + "cert_verified"] is True
    assert fresh._memo == {}  # nothing computed for Booleans
    assert f[P + "cert_subject_dn"] == b"CN=via intermediate"
    assert set(fresh._memo) == {"subject_dn"}  # only what was read
    assert isinstance(f[P + "cert_rfc9440"], bytes)
    assert "chain_rfc9440" not in fresh._memo
    with pytest.raises(KeyError):
        f["cf.tls_client_auth.nope"]
    assert "cf.tls_client_auth.cert_serial" in f and "http.host" not in f


def test_fields_types() -> None:
    auth = ClientCertValidator([pki().root.cert]).validate(
        profiles()["via_intermediate"].chain, now=NOW
    )
    values = dict(auth.fields())
    bools = {
        n for n in FIELD_NAMES if n.endswith(("presented", "verified", "revoked", "too_large"))
    }
    assert len(bools) == 5
    for n, v in values.items():
        assert isinstance(v, bool if n in bools else bytes), n
    w = auth.tls_client_auth
    assert w["certSubjectDN"] == values[P + "cert_subject_dn"].decode()
    assert w["certChainRFC9440"] == values[P + "cert_chain_rfc9440"].decode() != ""
    assert w["certPresented"] == "1" and w["certRevoked"] == "0"


def test_engine_context_reads_only_requested_fields() -> None:
    from edgerules.lang import engine
    from edgerules.lang.scheme import default_scheme

    scheme = default_scheme()
    flt = engine.compile(
        'not cf.tls_client_auth.cert_verified or cf.tls_client_auth.cert_subject_dn ne "CN=Cloudflare,C=US"',
        scheme,
    )
    auth = ClientCertValidator([pki().root.cert]).validate(profiles()["valid"].chain, now=NOW)
    ctx = scheme.context()
    ctx.update(auth.fields(), only=flt.fields)
    assert flt.execute(ctx) is False
    assert flt.matches(dict(NOT_REQUESTED.fields())) is True


def test_hostname_does_not_change_result() -> None:
    v = ClientCertValidator([pki().root.cert])
    chain = profiles()["valid"].chain
    assert v.validate(chain, now=NOW, hostname="a.example").verified
    assert v.validate(chain, now=NOW, hostname=None).verified


def test_leaf_is_trusted_self_signed() -> None:
    s = make_cert(
        name((NameOID.COMMON_NAME, "pinned")),
        key_=key("pinned"),
        eku=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    auth = ClientCertValidator([s.cert]).validate([s.der], now=NOW)
    assert auth.verified
    assert auth.issuer == s.cert and auth.issuer_serial == auth.serial


def test_leaf_time_window_edges() -> None:
    p = pki()
    leaf = make_leaf("edges", p.root, not_before=NOW, not_after=NOW + DAY)
    v = ClientCertValidator([p.root.cert])
    assert v.validate([leaf.der], now=NOW).verified
    assert v.validate([leaf.der], now=NOW + DAY).verified
    assert (
        v.validate([leaf.der], now=NOW + DAY + dt.timedelta(seconds=1)).failure_reason
        == "certificate has expired"
    )
    assert (
        v.validate([leaf.der], now=NOW - dt.timedelta(seconds=1)).failure_reason
        == "certificate is not yet valid"
    )


def test_name_constraints_apply_to_subject_names() -> None:
    """Stricter than cryptography (which checks SANs only), as OpenSSL and RFC 5280
    §4.2.1.10 are: subject emailAddress, and a host-name CN when there is no DNS SAN."""
    p = pki()
    nc = x509.NameConstraints(
        permitted_subtrees=[x509.RFC822Name("example.com"), x509.DNSName("example.com")],
        excluded_subtrees=None,
    )
    inter = make_ca("Mail Constrained CA", parent=p.root, name_constraints=nc)
    bad_mail = make_leaf(
        name((NameOID.EMAIL_ADDRESS, "x@other.com"), (NameOID.COMMON_NAME, "person")), inter
    )
    good_mail = make_leaf(
        name((NameOID.EMAIL_ADDRESS, "x@example.com"), (NameOID.COMMON_NAME, "person")), inter
    )
    bad_cn = make_leaf("host.other.com", inter)
    cn_with_san = make_leaf("host.other.com", inter, san=[x509.DNSName("a.example.com")])
    assert _reason([p.root], [bad_mail, inter]) == "permitted subtree violation"
    assert _reason([p.root], [good_mail, inter]) == ""
    assert _reason([p.root], [bad_cn, inter]) == "permitted subtree violation"
    assert _reason([p.root], [cn_with_san, inter]) == ""  # CN ignored when a DNS SAN exists


def test_too_many_intermediates() -> None:
    p = pki()
    cas = [p.root]
    for i in range(9):
        cas.append(make_ca(f"Level {i}", parent=cas[-1]))
    leaf = make_leaf("deep", cas[-1])
    assert _reason([p.root], [leaf, *reversed(cas[1:])]) == "certificate chain too long"
    assert _reason([p.root], [leaf, *reversed(cas[2:]), cas[1]]) == "certificate chain too long"
    assert _reason([cas[1]], [leaf, *reversed(cas[2:])]) == ""  # 8 intermediates: fine


def test_expired_trusted_root() -> None:
    root = make_ca("Expired Root", not_before=NOW - 100 * DAY, not_after=NOW - DAY)
    leaf = make_leaf("under expired root", root)
    assert _reason([root], [leaf]) == "certificate has expired"
    # a still-valid intermediate below it, trusted directly, is a complete anchor
    mid = make_ca("Mid under expired root", parent=root)
    assert _reason([mid], [make_leaf("under mid", mid)]) == ""


def test_package_docstring_example_runs() -> None:
    import doctest

    import edgerules.tls

    result = doctest.testmod(edgerules.tls)
    assert result.attempted >= 3 and result.failed == 0
