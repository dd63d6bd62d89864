"""Revocation (serial sets, CRLs) and the result cache (issue 3 points 3 and 5)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from edgerules.tls import ClientCertValidator, CRLRevocation, RevocationSource, SerialRevocation

from .ca_fixture import DAY, NOW, Issued, key, make_ca, make_leaf, pki, profiles


def make_crl(
    ca: Issued,
    serials: list[int],
    *,
    last: dt.datetime = NOW - DAY,
    next_: dt.datetime | None = NOW + 7 * DAY,
    signer=None,
) -> x509.CertificateRevocationList:
    b = x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject).last_update(last)
    if next_ is not None:
        b = b.next_update(next_)
    for s in serials:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(s).revocation_date(last).build()
        )
    return b.sign(signer or ca.key, hashes.SHA256())


# --- serial sets ----------------------------------------------------------------------------


def test_serial_revocation_keeps_verified() -> None:
    sc = profiles()["revoked"]
    rev = SerialRevocation({0x01AB})
    assert isinstance(rev, RevocationSource)
    auth = ClientCertValidator(sc.trusted, revocation=rev).validate(sc.chain, now=NOW)
    assert auth.verified and auth.revoked and auth.failure_reason == ""
    w = auth.tls_client_auth
    assert (w["certVerified"], w["certRevoked"]) == ("SUCCESS", "1")


def test_unverified_is_never_revoked() -> None:
    sc = profiles()["expired"]
    leaf = x509.load_der_x509_certificate(sc.chain[0])
    rev = SerialRevocation({leaf.serial_number})
    auth = ClientCertValidator(sc.trusted, revocation=rev).validate(sc.chain, now=NOW)
    assert not auth.verified and not auth.revoked


def test_revocation_version_invalidates_cache() -> None:
    sc = profiles()["valid"]
    leaf = x509.load_der_x509_certificate(sc.chain[0])
    rev = SerialRevocation()
    v = ClientCertValidator(sc.trusted, revocation=rev)
    first = v.validate(sc.chain, now=NOW)
    assert first.verified and not first.revoked
    assert v.validate(sc.chain, now=NOW) is first  # cached
    rev.add(leaf.serial_number)
    second = v.validate(sc.chain, now=NOW)
    assert second.revoked and second.verified
    rev.discard(leaf.serial_number)
    assert not v.validate(sc.chain, now=NOW).revoked


def test_serial_revocation_issuer_scope() -> None:
    sc = profiles()["revoked"]
    rev = SerialRevocation({0x01AB}, issuer=pki().other.cert.subject)
    assert not ClientCertValidator(sc.trusted, revocation=rev).validate(sc.chain, now=NOW).revoked


class Broken:
    version = 3

    def is_revoked(self, leaf, issuer):
        raise RuntimeError("store down")


def test_broken_source_answers_not_revoked() -> None:
    sc = profiles()["valid"]
    auth = ClientCertValidator(sc.trusted, revocation=Broken()).validate(sc.chain, now=NOW)
    assert auth.verified and not auth.revoked


# --- CRLs -------------------------------------------------------------------------------------


def _crl_case():
    p = pki()
    ca = make_ca("CRL CA", label="crl-ca")
    leaf = make_leaf("crl client", ca, serial=0xC0FFEE)
    return p, ca, leaf


def test_crl_revokes() -> None:
    _, ca, leaf = _crl_case()
    crl = make_crl(ca, [0xC0FFEE])
    for form in (
        crl,
        crl.public_bytes(serialization.Encoding.DER),
        crl.public_bytes(serialization.Encoding.PEM),
    ):
        auth = ClientCertValidator([ca.cert], crls=[form]).validate([leaf.der], now=NOW)
        assert auth.verified and auth.revoked


def test_crl_not_listing_serial() -> None:
    _, ca, leaf = _crl_case()
    auth = ClientCertValidator([ca.cert], crls=[make_crl(ca, [1, 2, 3])]).validate(
        [leaf.der], now=NOW
    )
    assert auth.verified and not auth.revoked


def _view(cert: x509.Certificate):
    from edgerules.tls.certs import decode

    return decode(cert.public_bytes(serialization.Encoding.DER))


def test_stale_crl_entries_stay_revoked() -> None:
    """Issue 9 point 5: an entry from a correctly signed CRL never disappears because
    the CRL went stale."""
    _, ca, leaf = _crl_case()
    stale = make_crl(ca, [0xC0FFEE], last=NOW - 10 * DAY, next_=NOW - DAY)
    for policy in ("open", "closed"):
        v = ClientCertValidator([ca.cert], crls=[stale], crl_stale=policy)
        auth = v.validate([leaf.der], now=NOW)
        assert auth.verified and auth.revoked, policy
    assert CRLRevocation([stale]).problems_for([_view(ca.cert)], NOW) == [
        "CRL of CN=CRL CA: stale"
    ]


def test_unknown_status_after_next_update_is_the_cas_choice() -> None:
    _, ca, leaf = _crl_case()
    stale = make_crl(ca, [1, 2], last=NOW - 10 * DAY, next_=NOW - DAY)
    open_ = ClientCertValidator([ca.cert], crls=[stale]).validate([leaf.der], now=NOW)
    assert open_.verified and not open_.revoked  # fail open: the default
    closed = ClientCertValidator([ca.cert], crls=[stale], crl_stale="closed").validate(
        [leaf.der], now=NOW
    )
    assert not closed.verified and closed.failure_reason == "CRL has expired"
    from edgerules.tls import TrustedCA

    per_ca = ClientCertValidator([TrustedCA(ca.cert, crl_stale="closed")], crls=[stale])
    assert per_ca.validate([leaf.der], now=NOW).failure_reason == "CRL has expired"
    # fresh again: a newer CRL answers for the serial
    fresh = make_crl(ca, [1, 2], last=NOW - DAY, next_=NOW + DAY)
    both = ClientCertValidator([ca.cert], crls=[stale, fresh], crl_stale="closed")
    assert both.validate([leaf.der], now=NOW).verified


def test_future_crl_is_ignored() -> None:
    _, ca, leaf = _crl_case()
    future = make_crl(ca, [0xC0FFEE], last=NOW + DAY, next_=NOW + 9 * DAY)
    auth = ClientCertValidator([ca.cert], crls=[future]).validate([leaf.der], now=NOW)
    assert not auth.revoked


def test_badly_signed_crl_is_ignored() -> None:
    _, ca, leaf = _crl_case()
    forged = make_crl(ca, [0xC0FFEE], signer=key("forger"))
    auth = ClientCertValidator([ca.cert], crls=[forged]).validate([leaf.der], now=NOW)
    assert auth.verified and not auth.revoked
    assert CRLRevocation([forged]).problems_for([_view(ca.cert)], NOW) == [
        "CRL of CN=CRL CA: bad signature or key usage"
    ]


def test_crl_of_another_ca_is_ignored() -> None:
    p, ca, leaf = _crl_case()
    other = make_crl(p.other, [0xC0FFEE])
    auth = ClientCertValidator([ca.cert, p.other.cert], crls=[other]).validate([leaf.der], now=NOW)
    assert not auth.revoked


def test_crl_staleness_expires_cached_result() -> None:
    _, ca, leaf = _crl_case()
    crl = make_crl(ca, [0xC0FFEE], next_=NOW + DAY)
    v = ClientCertValidator([ca.cert], crls=[crl], crl_stale="closed")
    assert v.validate([leaf.der], now=NOW).revoked
    later = v.validate([leaf.der], now=NOW + 2 * DAY)
    assert later.verified and later.revoked  # revoked stays revoked (issue 9 point 5)
    clean = make_crl(ca, [1], next_=NOW + DAY)
    v = ClientCertValidator([ca.cert], crls=[clean], crl_stale="closed")
    assert v.validate([leaf.der], now=NOW).verified
    assert v.validate([leaf.der], now=NOW + 2 * DAY).failure_reason == "CRL has expired"


def _crl_with(ca: Issued, serials, *, number=None, hold=(), extensions=(), last=NOW - DAY):
    b = (x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject)
         .last_update(last).next_update(NOW + 7 * DAY))
    if number is not None:
        b = b.add_extension(x509.CRLNumber(number), critical=False)
    for ext, critical in extensions:
        b = b.add_extension(ext, critical=critical)
    for s in serials:
        rb = x509.RevokedCertificateBuilder().serial_number(s).revocation_date(last)
        if s in hold:
            rb = rb.add_extension(x509.CRLReason(x509.ReasonFlags.certificate_hold), False)
        b = b.add_revoked_certificate(rb.build())
    return b.sign(ca.key, hashes.SHA256())


def test_certificate_hold_is_lifted_by_a_newer_crl_only() -> None:
    _, ca, leaf = _crl_case()
    on_hold = _crl_with(ca, [0xC0FFEE], number=1, hold={0xC0FFEE}, last=NOW - 3 * DAY)
    released = _crl_with(ca, [], number=2)
    v = ClientCertValidator([ca.cert], crls=[on_hold])
    assert v.validate([leaf.der], now=NOW).revoked
    v = ClientCertValidator([ca.cert], crls=[on_hold, released])
    assert not v.validate([leaf.der], now=NOW).revoked  # hold lifted
    # a real revocation is never lifted by a newer CRL that omits it
    revoked = _crl_with(ca, [0xC0FFEE], number=1, last=NOW - 3 * DAY)
    v = ClientCertValidator([ca.cert], crls=[revoked, released])
    assert v.validate([leaf.der], now=NOW).revoked


def test_delta_scoped_and_critical_crls_are_refused_with_a_reason() -> None:
    _, ca, leaf = _crl_case()
    delta = _crl_with(ca, [0xC0FFEE], number=3, extensions=[(x509.DeltaCRLIndicator(2), True)])
    scoped = _crl_with(ca, [0xC0FFEE], extensions=[(x509.IssuingDistributionPoint(
        full_name=None, relative_name=None, only_contains_user_certs=False,
        only_contains_ca_certs=True, only_some_reasons=None, indirect_crl=False,
        only_contains_attribute_certs=False), True)])
    odd = _crl_with(ca, [0xC0FFEE], extensions=[(x509.UnrecognizedExtension(
        x509.ObjectIdentifier("1.3.6.1.4.1.55555.3"), b"\x05\x00"), True)])
    v = ClientCertValidator([ca.cert], crls=[delta, scoped, odd, b"garbage"])
    auth = v.validate([leaf.der], now=NOW)
    assert auth.verified and not auth.revoked  # none applied as a full CRL
    assert len(v.problems) == 4
    assert "delta CRLs are not supported" in v.problems[0]
    assert "scoped CRLs are not supported" in v.problems[1]
    assert "unhandled critical CRL extension" in v.problems[2]
    assert "cannot be decoded" in v.problems[3]


def test_crl_from_a_ca_without_crl_sign_is_not_applied() -> None:
    p = pki()
    ku = x509.KeyUsage(True, False, False, False, False, True, False, False, False)
    ca = make_ca("No CRLSign CA", parent=p.root, label="nocrlsign", key_usage=False, extra=[ku])
    leaf = make_leaf("nocrl client", ca, serial=0xBAD)
    auth = ClientCertValidator([ca.cert], crls=[make_crl(ca, [0xBAD])]).validate(
        [leaf.der], now=NOW)
    assert auth.verified and not auth.revoked


def test_revoked_intermediate_revokes_the_chain() -> None:
    p = pki()
    leaf = make_leaf("under revoked int", p.intermediate)
    crl = make_crl(p.root, [p.intermediate.cert.serial_number])
    auth = ClientCertValidator([p.root.cert], crls=[crl]).validate(
        [leaf.der, p.intermediate.der], now=NOW)
    assert auth.verified and auth.revoked
    assert "depth 1" in auth.detail


def test_crl_not_yet_issued_at_an_earlier_time_is_not_served_from_cache() -> None:
    # The cache window must be cut at every CRL edge, including those before the time
    # the entry was computed: at NOW - 2 days the CRL (last_update NOW - 1 day) is not
    # usable yet, so a validation at that time must not reuse the "revoked" result.
    _, ca, leaf = _crl_case()
    crl = make_crl(ca, [0xC0FFEE], last=NOW - DAY)
    v = ClientCertValidator([ca.cert], crls=[crl])
    assert v.validate([leaf.der], now=NOW).revoked
    earlier = v.validate([leaf.der], now=NOW - 2 * DAY)
    assert earlier.verified and not earlier.revoked
    later = v.validate([leaf.der], now=NOW)
    assert later.verified and later.revoked


def test_crl_for_intermediate_issuer() -> None:
    p = pki()
    leaf = make_leaf("crl via intermediate", p.intermediate, serial=0xBEEF)
    crl = make_crl(p.intermediate, [0xBEEF])
    auth = ClientCertValidator([p.root.cert], crls=[crl]).validate(
        [leaf.der, p.intermediate.der], now=NOW
    )
    assert auth.verified and auth.revoked


# --- cache ---------------------------------------------------------------------------------------


def test_cache_hit_returns_same_object() -> None:
    sc = profiles()["via_intermediate"]
    v = ClientCertValidator(sc.trusted)
    a = v.validate(sc.chain, now=NOW)
    b = v.validate(list(sc.chain), now=NOW + dt.timedelta(hours=1))
    assert a is b
    assert v.cache.hits == 1 and v.cache.misses == 1


def test_cache_expires_at_not_after() -> None:
    p = pki()
    leaf = make_leaf("short lived", p.root, not_before=NOW - DAY, not_after=NOW + DAY)
    v = ClientCertValidator([p.root.cert])
    assert v.validate([leaf.der], now=NOW).verified
    assert v.validate([leaf.der], now=NOW + DAY).verified  # not_after itself is still valid
    after = v.validate([leaf.der], now=NOW + DAY + dt.timedelta(seconds=1))
    assert not after.verified and after.failure_reason == "certificate has expired"


@pytest.mark.parametrize("short_lived", ["intermediate", "anchor"])
def test_cache_window_is_cut_by_every_certificate_of_the_path(short_lived: str) -> None:
    # Not only the leaf: an intermediate or the trust anchor expiring (or starting) ends
    # the cached result's window, in both directions of time.
    span = {"not_before": NOW - DAY, "not_after": NOW + DAY}
    root = make_ca("Window Root", label="window-root", **(span if short_lived == "anchor" else {}))
    inter = make_ca(
        "Window Int",
        parent=root,
        label="window-int",
        **(span if short_lived == "intermediate" else {}),
    )
    leaf = make_leaf("window leaf", inter)
    v = ClientCertValidator([root.cert])
    chain = [leaf.der, inter.der]
    assert v.validate(chain, now=NOW).verified
    later = v.validate(chain, now=NOW + 2 * DAY)
    assert not later.verified and later.failure_reason == "certificate has expired"
    earlier = v.validate(chain, now=NOW - 2 * DAY)
    assert not earlier.verified and earlier.failure_reason == "certificate is not yet valid"
    assert v.validate(chain, now=NOW).verified


def test_cache_window_for_failures() -> None:
    p = pki()
    leaf = make_leaf("soon valid", p.root, not_before=NOW + DAY, not_after=NOW + 10 * DAY)
    v = ClientCertValidator([p.root.cert])
    assert v.validate([leaf.der], now=NOW).failure_reason == "certificate is not yet valid"
    assert v.validate([leaf.der], now=NOW + 2 * DAY).verified


def test_cache_before_not_before() -> None:
    sc = profiles()["valid"]
    v = ClientCertValidator(sc.trusted)
    assert v.validate(sc.chain, now=NOW).verified
    assert (
        v.validate(sc.chain, now=NOW - 365 * DAY).failure_reason == "certificate is not yet valid"
    )


def test_cache_is_bounded_lru() -> None:
    p = pki()
    v = ClientCertValidator([p.root.cert], cache_size=3)
    leaves = [make_leaf(f"lru {i}", p.root).der for i in range(5)]
    for der in leaves:
        v.validate([der], now=NOW)
    assert len(v.cache) == 3
    v.validate([leaves[4]], now=NOW)
    assert v.cache.hits == 1
    v.validate([leaves[0]], now=NOW)  # evicted
    assert v.cache.misses == 6


def test_cache_disabled_and_trust_version() -> None:
    sc = profiles()["valid"]
    v = ClientCertValidator(sc.trusted, cache_size=0)
    assert v.validate(sc.chain, now=NOW) is not v.validate(sc.chain, now=NOW)
    assert len(v.cache) == 0
    v2 = ClientCertValidator(sc.trusted, trust_version=7)
    assert v2.validate(sc.chain, now=NOW).verified and v2.trust_version == 7


def test_cache_byte_budget() -> None:
    from edgerules.tls.cache import ResultCache

    c: ResultCache[str] = ResultCache(maxsize=100, maxbytes=1000)
    for i in range(5):
        c.put(i, str(i), None, None, 400)
    assert len(c) == 2 and c.bytes == 800
    assert c.get(4, NOW) == "4" and c.get(0, NOW) is None
    c.put("huge", "x", None, None, 5000)  # larger than the budget: not cached
    assert c.get("huge", NOW) is None
    c.clear()
    assert len(c) == 0 and c.bytes == 0


def test_concurrent_validations_share_one_result() -> None:
    import threading

    sc = profiles()["via_intermediate"]
    v = ClientCertValidator(sc.trusted, cache_size=8)
    results: list[object] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(50):
                auth = v.validate(sc.chain, now=NOW)
                assert auth.verified and auth.subject_dn == "CN=via intermediate"
                results.append(auth)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 300
    assert len(v.cache) == 1
