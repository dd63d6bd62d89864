"""A small test CA: certificates generated at test time with a fixed clock.

Nothing is committed as PEM; keys are cached per label so a test session generates each
key once (RSA generation is the slow part). All times are relative to :data:`NOW`.

Named profiles (:func:`profiles`): ``valid``, ``expired``, ``not_yet_valid``,
``self_signed``, ``wrong_ca``, ``via_intermediate``, ``revoked``, ``no_san``,
``wrong_eku``, ``rsa``, ``ecdsa``; each a :class:`Scenario` with the chain the client
presents, the trusted CAs and the expected verdict.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@functools.cache
def key(label: str, kind: str = "ec") -> PrivateKey:
    """A private key, generated once per (label, kind)."""
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "rsa1024":
        return rsa.generate_private_key(public_exponent=65537, key_size=1024)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(kind)


def name(*pairs: tuple[x509.ObjectIdentifier, str] | str, **kw: str) -> x509.Name:
    """``name("leaf")`` -> CN=leaf; ``name((NameOID.COUNTRY_NAME, "US"), ...)`` in order."""
    attrs = []
    for p in pairs:
        if isinstance(p, str):
            attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, p))
        else:
            attrs.append(x509.NameAttribute(p[0], p[1]))
    return x509.Name(attrs)


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: PrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def subject(self) -> x509.Name:
        return self.cert.subject


def _hash_for(k: PrivateKey, sha1: bool = False) -> hashes.HashAlgorithm | None:
    if isinstance(k, ed25519.Ed25519PrivateKey):
        return None
    return hashes.SHA1() if sha1 else hashes.SHA256()


def make_cert(
    subject: x509.Name | str,
    *,
    key_: PrivateKey,
    issuer: Issued | None = None,
    ca: bool = False,
    path_length: int | None = None,
    serial: int | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    san: Sequence[x509.GeneralName] | None = None,
    eku: Sequence[x509.ObjectIdentifier] | None = None,
    key_usage: bool = True,
    ski: bool = True,
    aki: bool = True,
    basic_constraints: bool = True,
    name_constraints: x509.NameConstraints | None = None,
    sha1: bool = False,
    extra: Sequence[x509.ExtensionType] = (),
) -> Issued:
    """One certificate; self-signed when ``issuer`` is None."""
    subj = name(subject) if isinstance(subject, str) else subject
    signer_key = issuer.key if issuer else key_
    issuer_name = issuer.cert.subject if issuer else subj
    b = (
        x509.CertificateBuilder()
        .subject_name(subj)
        .issuer_name(issuer_name)
        .public_key(key_.public_key())
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(not_before or NOW - 30 * DAY)
        .not_valid_after(not_after or NOW + 365 * DAY)
    )
    if basic_constraints:
        b = b.add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True
        )
    if ski:
        b = b.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key_.public_key()), critical=False
        )
    if aki and (issuer is not None or ca):
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()),
            critical=False,
        )
    if key_usage:
        if ca:
            ku = x509.KeyUsage(True, False, False, False, False, True, True, False, False)
        else:
            ku = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
        b = b.add_extension(ku, critical=True)
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if san is not None:
        b = b.add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
    if name_constraints is not None:
        b = b.add_extension(name_constraints, critical=True)
    for ext in extra:
        b = b.add_extension(ext, critical=False)
    return Issued(b.sign(signer_key, _hash_for(signer_key, sha1)), key_)


def make_ca(
    subject: x509.Name | str,
    *,
    parent: Issued | None = None,
    kind: str = "ec",
    label: str | None = None,
    **kw,
) -> Issued:
    return make_cert(
        subject, key_=key(label or f"ca:{subject}", kind), issuer=parent, ca=True, **kw
    )


CLIENT_EKU = [ExtendedKeyUsageOID.CLIENT_AUTH]


def make_leaf(
    subject: x509.Name | str, issuer: Issued, *, kind: str = "ec", label: str | None = None, **kw
) -> Issued:
    kw.setdefault("eku", CLIENT_EKU)
    return make_cert(subject, key_=key(label or f"leaf:{subject}", kind), issuer=issuer, **kw)


@dataclass(frozen=True)
class Scenario:
    name: str
    chain: tuple[bytes, ...]  # what the client presents, leaf first
    trusted: tuple[x509.Certificate, ...]
    verified: bool
    reason: str = ""
    revoked_serials: frozenset[int] = field(default_factory=frozenset)
    revoked: bool = False


@dataclass(frozen=True)
class PKI:
    """A root, an intermediate under it, and an unrelated CA."""

    root: Issued
    intermediate: Issued
    other: Issued
    rsa_root: Issued


@functools.cache
def pki() -> PKI:
    root = make_ca(
        name(
            (NameOID.COUNTRY_NAME, "US"),
            (NameOID.STATE_OR_PROVINCE_NAME, "California"),
            (NameOID.LOCALITY_NAME, "San Francisco"),
            (NameOID.ORGANIZATION_NAME, "Cloudflare, Inc."),
            (NameOID.ORGANIZATIONAL_UNIT_NAME, "www.cloudflare.com"),
            (NameOID.COMMON_NAME, "Managed CA test0001"),
        ),
        label="root",
        serial=0x2688201DBA77402EA87118876F2E1B24CF8B0395,
        not_before=NOW - 400 * DAY,
        not_after=NOW + 3650 * DAY,
    )
    inter = make_ca("Test Intermediate CA", parent=root, label="inter", not_after=NOW + 1000 * DAY)
    other = make_ca("Unrelated CA", label="other")
    rsa_root = make_ca("RSA Root CA", label="rsa-root", kind="rsa")
    return PKI(root, inter, other, rsa_root)


@functools.cache
def profiles() -> dict[str, Scenario]:
    p = pki()
    root, inter = p.root, p.intermediate
    out: dict[str, Scenario] = {}

    def add(
        label: str,
        chain: Sequence[Issued],
        trusted: Sequence[Issued],
        verified: bool,
        reason: str = "",
        **kw,
    ) -> None:
        out[label] = Scenario(
            label,
            tuple(c.der for c in chain),
            tuple(t.cert for t in trusted),
            verified,
            reason,
            **kw,
        )

    cf_subject = name((NameOID.COUNTRY_NAME, "US"), (NameOID.COMMON_NAME, "Cloudflare"))
    valid = make_leaf(cf_subject, root, label="valid")
    add("valid", [valid], [root], True)
    add("ecdsa", [valid], [root], True)
    add("no_san", [valid], [root], True)
    expired = make_leaf("expired", root, not_before=NOW - 400 * DAY, not_after=NOW - DAY)
    add("expired", [expired], [root], False, "certificate has expired")
    nyv = make_leaf("not yet valid", root, not_before=NOW + DAY, not_after=NOW + 400 * DAY)
    add("not_yet_valid", [nyv], [root], False, "certificate is not yet valid")
    ss = make_cert("self signed", key_=key("ss"))
    add("self_signed", [ss], [root], False, "self signed certificate")
    wrong = make_leaf("wrong ca", p.other)
    add("wrong_ca", [wrong], [root], False, "unable to get local issuer certificate")
    via = make_leaf("via intermediate", inter, san=[x509.DNSName("client.example")])
    add("via_intermediate", [via, inter], [root], True)
    revoked = make_leaf("revoked", root, serial=0x01AB)
    add("revoked", [revoked], [root], True, revoked_serials=frozenset({0x01AB}), revoked=True)
    wrong_eku = make_leaf("server only", root, eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    add("wrong_eku", [wrong_eku], [root], False, "unsupported certificate purpose")
    rsa_leaf = make_leaf("rsa client", p.rsa_root, kind="rsa")
    add("rsa", [rsa_leaf], [p.rsa_root], True)
    return out
