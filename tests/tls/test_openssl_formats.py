"""Field formats of `ClientAuth.fields()` against what Debian's `openssl x509` prints
(part "conformance").

Owns: for a handful of certificates with varied DNs, serials and dates (issued by a
managed-CA-like issuer whose DN has an escaped comma), comparing

  cf.tls_client_auth.cert_subject_dn / cert_issuer_dn     -subject/-issuer -nameopt RFC2253
  cf.tls_client_auth.cert_*_dn_rfc2253                    -subject/-issuer -nameopt RFC2253
  cf.tls_client_auth.cert_*_dn_legacy                     -subject/-issuer -nameopt compat
  cf.tls_client_auth.cert_serial / cert_issuer_serial     -serial
  cf.tls_client_auth.cert_fingerprint_sha256 / _sha1      -fingerprint -sha256/-sha1
                                                          (lower-cased, colons removed)
  cf.tls_client_auth.cert_not_before / cert_not_after     -startdate / -enddate
  cf.tls_client_auth.cert_ski / cert_issuer_ski           -ext subjectKeyIdentifier
                                                          (colons removed)

(`-nameopt compat` is OpenSSL 3's `X509_NAME_oneline` form, `/C=US/ST=…/CN=…`.)

Invariants: every (certificate, field) pair either equals OpenSSL's output exactly, or is
listed in `FORMAT_DIFFERENCES` with the *other* `openssl x509` rendering it equals exactly
(or the literal value expected) and why the difference is by design; listed pairs are
asserted as that exact difference. `test_format_agreement_figures` prints the tally.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID, ObjectIdentifier

from . import chains

F = "cf.tls_client_auth."
UTC = dt.UTC

# field -> (which certificate: "leaf"/"issuer", openssl x509 args, output prefix, post).
# Fields sharing the same args share one `openssl x509` run (outputs are cached).
_RFC2253 = ("-subject", "-issuer", "-nameopt", "RFC2253")
_COMPAT = ("-subject", "-issuer", "-nameopt", "compat")
_PLAIN = ("-serial", "-startdate", "-enddate")
_SKI = ("-ext", "subjectKeyIdentifier")
REFERENCE: dict[str, tuple[str, tuple[str, ...], str, str]] = {
    "cert_subject_dn": ("leaf", _RFC2253, "subject=", ""),
    "cert_subject_dn_rfc2253": ("leaf", _RFC2253, "subject=", ""),
    "cert_subject_dn_legacy": ("leaf", _COMPAT, "subject=", ""),
    "cert_issuer_dn": ("leaf", _RFC2253, "issuer=", ""),
    "cert_issuer_dn_rfc2253": ("leaf", _RFC2253, "issuer=", ""),
    "cert_issuer_dn_legacy": ("leaf", _COMPAT, "issuer=", ""),
    "cert_serial": ("leaf", _PLAIN, "serial=", ""),
    "cert_issuer_serial": ("issuer", _PLAIN, "serial=", ""),
    "cert_fingerprint_sha256": ("leaf", ("-fingerprint", "-sha256"), "sha256 Fingerprint=",
                                "fingerprint"),
    "cert_fingerprint_sha1": ("leaf", ("-fingerprint", "-sha1"), "sha1 Fingerprint=",
                              "fingerprint"),
    "cert_not_before": ("leaf", _PLAIN, "notBefore=", ""),
    "cert_not_after": ("leaf", _PLAIN, "notAfter=", ""),
    "cert_ski": ("leaf", _SKI, "", "ski"),
    "cert_issuer_ski": ("issuer", _SKI, "", "ski"),
}


@dataclass(frozen=True)
class FormatDifference:
    equals_openssl: tuple[str, ...] | None  # other `openssl x509` args whose output ours equals
    literal: str | None  # or: the exact value we produce
    why: str


# (certificate id, field) -> the designed difference
_UTF8_DN = FormatDifference(
    ("-subject", "-issuer", "-nameopt", "RFC2253,-esc_msb"), None,
    "Our choice (unspecified by Cloudflare): cert_subject_dn/cert_issuer_dn keep non-ASCII characters as UTF-8 (OpenSSL's "
    "RFC2253 minus esc_msb), while the *_rfc2253 variants escape them as \\XX like "
    "`-nameopt RFC2253`: the docs show the two variants identical for ASCII names and "
    "say nothing else, so the plain one is the readable one (validator's choice, "
    "documented in its certinfo.dn_utf8).",
)

FORMAT_DIFFERENCES: dict[tuple[str, str], FormatDifference] = {
    ("non-ascii-utf8-high-bit-serial", "cert_subject_dn"): _UTF8_DN,
    ("bmpstring-cn", "cert_subject_dn"): _UTF8_DN,
    ("t61string-latin1-subject-and-issuer", "cert_subject_dn"): _UTF8_DN,
    ("t61string-latin1-subject-and-issuer", "cert_issuer_dn"): _UTF8_DN,
    ("ia5string-latin1-cn", "cert_subject_dn"): _UTF8_DN,
    ("universalstring-and-bmp-astral", "cert_subject_dn"): _UTF8_DN,
}


# ---------------------------------------------------------------------------------------
# the certificates


def _issuer() -> chains.Issued:
    subject = chains.rdns(
        [(NameOID.COUNTRY_NAME, "US")],
        [(NameOID.STATE_OR_PROVINCE_NAME, "California")],
        [(NameOID.LOCALITY_NAME, "San Francisco")],
        [(NameOID.ORGANIZATION_NAME, "Cloudflare, Inc.")],
        [(NameOID.ORGANIZATIONAL_UNIT_NAME, "www.cloudflare.com")],
        [(NameOID.COMMON_NAME, "Managed CA abcdefghijklmnopq123456789")],
    )
    return chains.make(subject, chains.key("fmt-ca"), ca=True,
                       serial=0x2688201DBA77402EA87118876F2E1B24CF8B0395)


def _leaf(ca: chains.Issued, subject: x509.Name, serial: int,
          validity: tuple[dt.datetime, dt.datetime] = chains.LEAF_VALIDITY, **kw) -> bytes:
    return chains.make(subject, chains.key("fmt-leaf"), ca, serial=serial, validity=validity,
                       **kw).der


def _certs() -> tuple[bytes, dict[str, bytes]]:
    ca = _issuer()
    n = chains.rdns
    bmp_subject = x509.Name([
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COUNTRY_NAME, "FR")]),
        x509.RelativeDistinguishedName([
            x509.NameAttribute(NameOID.COMMON_NAME, "Bmp é", _type=_ASN1Type.BMPString)]),
    ])
    leaves = {
        "access-example": _leaf(
            ca,
            n([(NameOID.COUNTRY_NAME, "US")], [(NameOID.STATE_OR_PROVINCE_NAME, "Texas")],
              [(NameOID.LOCALITY_NAME, "Austin")], [(NameOID.ORGANIZATION_NAME, "Access")],
              [(NameOID.ORGANIZATIONAL_UNIT_NAME, "Access Admins")],
              [(NameOID.COMMON_NAME, "James Royal")]),
            0x527E0F20A20EA2A4146C78390F34CE7AF0878CA4,
            (dt.datetime(2026, 3, 21, 13, 35, tzinfo=UTC),
             dt.datetime(2027, 3, 21, 13, 35, tzinfo=UTC)),
        ),
        "managed-leaf-single-digit-day": _leaf(
            ca, n([(NameOID.COUNTRY_NAME, "US")], [(NameOID.COMMON_NAME, "Cloudflare")]),
            1,
            (dt.datetime(2026, 5, 5, 7, 8, 9, tzinfo=UTC),
             dt.datetime(2036, 5, 2, 7, 8, 9, tzinfo=UTC)),
            san=None,
        ),
        "multi-valued-rdn-serial-0x80": _leaf(
            ca, n([(NameOID.COUNTRY_NAME, "US")],
                  [(NameOID.COMMON_NAME, "multi"), (NameOID.USER_ID, "u42")]),
            0x80,
        ),
        "specials-serial-odd-digits": _leaf(
            ca, n([(NameOID.ORGANIZATION_NAME, 'Acme, Inc. + "Sons" \\ co/x')],
                  [(NameOID.ORGANIZATIONAL_UNIT_NAME, "#hash ")],
                  [(NameOID.COMMON_NAME, " lead<>;=")]),
            0xABC,
        ),
        "non-ascii-utf8-high-bit-serial": _leaf(
            ca, n([(NameOID.COUNTRY_NAME, "DE")], [(NameOID.LOCALITY_NAME, "München")],
                  [(NameOID.COMMON_NAME, "Jürgen Ωμέγα 日本")]),
            0x9F00112233445566778899AABBCCDDEEFF0011,
        ),
        "email-and-unknown-oid": _leaf(
            ca, n([(NameOID.EMAIL_ADDRESS, "someone@example.com")],
                  [(ObjectIdentifier("1.3.6.1.4.1.55555.1.2"), "custom-value")],
                  [(NameOID.COMMON_NAME, "oid-client")]),
            0x7F,
        ),
        "bmpstring-cn": _leaf(ca, bmp_subject, 0x0100),
        "no-ski": _leaf(ca, chains.name("no-ski-client"), 0x1234, ski=False),
        # names and serials cryptography cannot build or read (issue 9 point 4, issue 10):
        # rebuilt from the TBS, rendered from the DER as OpenSSL does
        "printablestring-outside-alphabet": _raw(
            ca, subject=chains.raw_name(("2.5.4.6", 0x13, b"US"),
                                        ("2.5.4.3", 0x13, b"device_001 @*&#!"))),
        "t61string-latin1-subject-and-issuer": _raw(
            _T61_CA, subject=chains.raw_name(("2.5.4.3", 0x14, "Zürich device".encode("latin-1")),
                                             ("2.5.4.11", 0x14, b"plain ascii"))),
        "ia5string-latin1-cn": _raw(
            ca, subject=chains.raw_name(("2.5.4.3", 0x16, "café-01".encode("latin-1")))),
        "universalstring-and-bmp-astral": _raw(
            ca, subject=chains.raw_name(("2.5.4.10", 0x1C, "𝄞 clef".encode("utf-32-be")),
                                        ("2.5.4.3", 0x1E, "日本 dev".encode("utf-16-be")))),
        "negative-serial": _raw(ca, serial=b"\xfe\xdc\xba"),
        "long-serial-25-octets": _raw(ca, serial=b"\x01" + bytes(range(1, 25))),
    }
    return ca.der, leaves


# A CA whose own name holds a T61String with a Latin-1 byte (its clients' issuer DN).
_T61_CA_NAME = chains.raw_name(("2.5.4.10", 0x14, "Société Générale".encode("latin-1")),
                               ("2.5.4.3", 0x13, b"T61 CA"))
_T61_CA = "t61-ca"  # sentinel: the CA below, whose name cryptography cannot build


@functools.cache
def _t61_ca() -> chains.Issued:
    return chains.make(chains.name("placeholder"), chains.key("fmt-t61-ca"), ca=True,
                       serial=0x5151)


@functools.cache
def _t61_ca_der() -> bytes:
    return chains.rebuild(_t61_ca(), _t61_ca().key, subject=_T61_CA_NAME, issuer=_T61_CA_NAME)


def _raw(ca, *, subject: bytes | None = None, serial: bytes | None = None) -> bytes:
    """A leaf of ``ca`` (an Issued, or the T61 CA) rebuilt from its TBS."""
    issuer = _t61_ca() if ca == _T61_CA else ca
    base = chains.make(chains.name("placeholder"), chains.key("fmt-leaf"), issuer,
                       serial=0x4242)
    return chains.rebuild(base, issuer.key, subject=subject, serial=serial,
                          issuer=_T61_CA_NAME if ca == _T61_CA else None)


CERT_IDS = [
    "access-example", "managed-leaf-single-digit-day", "multi-valued-rdn-serial-0x80",
    "specials-serial-odd-digits", "non-ascii-utf8-high-bit-serial", "email-and-unknown-oid",
    "bmpstring-cn", "no-ski", "printablestring-outside-alphabet",
    "t61string-latin1-subject-and-issuer", "ia5string-latin1-cn",
    "universalstring-and-bmp-astral", "negative-serial", "long-serial-25-octets",
]
_ISSUER_OF = {"t61string-latin1-subject-and-issuer": "t61"}


@pytest.fixture(scope="module")
def certs() -> tuple[bytes, dict[str, bytes]]:
    ca_der, leaves = _certs()
    assert list(leaves) == CERT_IDS
    return ca_der, leaves


@functools.cache
def _openssl(der: bytes, args: tuple[str, ...]) -> str:
    return chains.openssl_x509(der, *args)


def _openssl_value(der: bytes, field: str, args: tuple[str, ...] | None = None) -> str:
    _which, ref_args, prefix, post = REFERENCE[field]
    return _post(_openssl(der, args or ref_args), prefix, post)


def _post(out: str, prefix: str, post: str) -> str:
    if post == "ski":
        lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
        hexline = [ln for ln in lines if ":" in ln and "Key Identifier" not in ln]
        return hexline[0].replace(":", "") if hexline else ""
    found = [ln[len(prefix):] for ln in out.splitlines() if ln.startswith(prefix)]
    assert len(found) == 1, (prefix, out)
    text = found[0]
    if post == "fingerprint":
        text = text.replace(":", "").lower()
    return text


@pytest.fixture(scope="module")
def ours(certs) -> dict[str, dict[str, str]]:
    from edgerules.tls import ClientCertValidator

    ca_der, leaves = certs
    validator = ClientCertValidator(trusted=[ca_der, _t61_ca_der()])
    out: dict[str, dict[str, str]] = {}
    for cid, der in leaves.items():
        auth = validator.validate([der], now=chains.NOW)
        assert auth.verified, (cid, auth.failure_reason)
        values = auth.fields()
        out[cid] = {}
        for field in REFERENCE:
            v = values[F + field]
            assert isinstance(v, bytes), (cid, field, v)
            out[cid][field] = v.decode("utf-8")
    return out


@pytest.fixture(scope="module")
def theirs(certs) -> dict[str, dict[str, str]]:
    ca_der, leaves = certs
    out: dict[str, dict[str, str]] = {}
    for cid, der in leaves.items():
        out[cid] = {}
        issuer = _t61_ca_der() if _ISSUER_OF.get(cid) == "t61" else ca_der
        for field, (which, *_rest) in REFERENCE.items():
            out[cid][field] = _openssl_value(der if which == "leaf" else issuer, field)
    return out


@pytest.mark.parametrize("field", list(REFERENCE))
@pytest.mark.parametrize("cid", CERT_IDS)
def test_field_format_matches_openssl(cid, field, certs, ours, theirs) -> None:
    mine, ref = ours[cid][field], theirs[cid][field]
    diff = FORMAT_DIFFERENCES.get((cid, field))
    if diff is None:
        assert mine == ref, f"{cid} {field}: ours {mine!r} != openssl {ref!r}"
        return
    assert mine != ref, f"{cid} {field}: listed as a difference but now equal to openssl"
    if diff.equals_openssl is not None:
        ca_der, leaves = certs
        which = REFERENCE[field][0]
        issuer = _t61_ca_der() if _ISSUER_OF.get(cid) == "t61" else ca_der
        alt = _openssl_value(leaves[cid] if which == "leaf" else issuer, field,
                             diff.equals_openssl)
        assert mine == alt, f"{cid} {field}: ours {mine!r} != openssl {diff.equals_openssl}: {alt!r}"
    if diff.literal is not None:
        assert mine == diff.literal, f"{cid} {field}: ours {mine!r} != {diff.literal!r}"


def test_format_differences_table_is_well_formed() -> None:
    for (cid, field), d in FORMAT_DIFFERENCES.items():
        assert cid in CERT_IDS and field in REFERENCE, (cid, field)
        assert d.why.strip() and (d.equals_openssl or d.literal is not None), (cid, field)


def test_format_agreement_figures(ours, theirs) -> None:
    lines = []
    total = agree = 0
    for field in REFERENCE:
        n_agree = sum(ours[c][field] == theirs[c][field] for c in CERT_IDS)
        total += len(CERT_IDS)
        agree += n_agree
        differs = [c for c in CERT_IDS if ours[c][field] != theirs[c][field]]
        lines.append(f"  {field:26} {n_agree}/{len(CERT_IDS)} exact"
                     + (f"  (differ: {', '.join(differs)})" if differs else ""))
    print(f"\nopenssl x509 format comparison: {agree}/{total} (certificate, field) pairs "
          f"identical; {len(FORMAT_DIFFERENCES)} listed differences")
    print("\n".join(lines))
    assert total - agree == len(FORMAT_DIFFERENCES)
