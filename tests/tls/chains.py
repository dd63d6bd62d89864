"""Client-chain scenario generator for the conformance tests (part "conformance").

Owns: building X.509 client-certificate chains with cryptography's builder API, the
catalogue of differential scenarios (`SCENARIOS`), and the thin wrappers that run Debian's
`openssl verify` / `openssl x509` on them.

Invariants:
* Generation is deterministic in shape (names, validity, extensions) and fast: ECDSA P-256
  keys unless a scenario is *about* another key type; every key is generated once per
  process and cached by label (`key()`), so the whole catalogue builds in well under a
  second apart from the three RSA-2048 keys.
* A scenario's `chain` is DER, leaf first, exactly as a client would send it (it may be
  misordered, incomplete, padded with unrelated certificates or tampered with).
* Every scenario states what OpenSSL is *meant* to answer (`openssl`: "" for OK, else the
  reason text of OpenSSL 3's first `error NN at D depth lookup: <reason>` line). The
  differential test checks this first, so a scenario that does not test what it claims is
  caught independently of the validator under test.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

UTC = dt.UTC
NOW = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
OPENSSL = os.environ.get("EDGERULES_OPENSSL", "/usr/bin/openssl")

# Validity windows relative to NOW.
ROOT_VALIDITY = (dt.datetime(2020, 1, 1, tzinfo=UTC), dt.datetime(2040, 1, 1, tzinfo=UTC))
INT_VALIDITY = (dt.datetime(2022, 1, 1, tzinfo=UTC), dt.datetime(2035, 1, 1, tzinfo=UTC))
LEAF_VALIDITY = (dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2027, 1, 1, tzinfo=UTC))
EXPIRED = (dt.datetime(2021, 1, 1, tzinfo=UTC), dt.datetime(2026, 5, 1, tzinfo=UTC))
NOT_YET_VALID = (dt.datetime(2026, 7, 1, tzinfo=UTC), dt.datetime(2036, 1, 1, tzinfo=UTC))

# ---------------------------------------------------------------------------------------
# keys

_KEYS: dict[str, object] = {}


def key(label: str, kind: str = "ec"):
    """The private key called `label` (generated on first use, then cached)."""
    k = _KEYS.get(label)
    if k is None:
        if kind == "ec":
            k = ec.generate_private_key(ec.SECP256R1())
        elif kind == "ec384":
            k = ec.generate_private_key(ec.SECP384R1())
        elif kind == "rsa":
            k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif kind == "rsa1024":
            k = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        elif kind == "ed25519":
            k = ed25519.Ed25519PrivateKey.generate()
        elif kind == "dsa":
            k = dsa.generate_private_key(key_size=2048)
        elif kind == "rsa-bigexp":  # RSA-2048 with a 41-bit public exponent (DoS cap)
            k = rsa_with_exponent(2**40 + 15)
        else:  # pragma: no cover - programming error
            raise ValueError(kind)
        _KEYS[label] = k
    return k


def rsa_with_exponent(e: int) -> rsa.RSAPrivateKey:
    """An RSA-2048 key with public exponent ``e`` (cryptography only generates 3 and
    65537): the primes of a generated key, a new private exponent."""
    import math

    while True:
        base = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_numbers()
        p, q = base.p, base.q
        phi = (p - 1) * (q - 1)
        if math.gcd(e, phi) == 1:
            break
    d = pow(e, -1, phi)
    numbers = rsa.RSAPrivateNumbers(
        p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), rsa.RSAPublicNumbers(e, p * q)
    )
    return numbers.private_key()


# ---------------------------------------------------------------------------------------
# names


def name(cn: str, *more: tuple[ObjectIdentifier, str]) -> x509.Name:
    """A DN in certificate (ASN.1) order: the extra attributes first, CN last."""
    attrs = [x509.NameAttribute(oid, value) for oid, value in more]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def rdns(*groups: Sequence[tuple[ObjectIdentifier, str]]) -> x509.Name:
    """A DN from explicit RDNs (each group is one, possibly multi-valued, RDN)."""
    return x509.Name(
        [x509.RelativeDistinguishedName([x509.NameAttribute(o, v) for o, v in g]) for g in groups]
    )


# ---------------------------------------------------------------------------------------
# certificates

_DEFAULT = object()
_SERIAL = [0x1000]

KU_NAMES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)


def _ku(flags: Sequence[str]) -> x509.KeyUsage:
    unknown = set(flags) - set(KU_NAMES)
    assert not unknown, unknown
    kw = {n: n in flags for n in KU_NAMES}
    return x509.KeyUsage(**kw)


@dataclass
class Issued:
    """A certificate together with its private key (so it can sign others)."""

    cert: x509.Certificate
    key: object

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def name(self) -> x509.Name:
        return self.cert.subject


def make(
    subject: x509.Name | str,
    key_: object,
    issuer: Issued | None = None,
    *,
    ca: bool = False,
    validity: tuple[dt.datetime, dt.datetime] | None = None,
    bc: object = _DEFAULT,  # _DEFAULT | None (omit) | (ca, pathlen)
    ku: object = _DEFAULT,  # _DEFAULT | None (omit) | sequence of KU_NAMES
    eku: object = _DEFAULT,  # _DEFAULT | None (omit) | sequence of OIDs
    san: object = _DEFAULT,  # _DEFAULT | None (omit) | sequence of GeneralName
    nc: tuple[Sequence[x509.GeneralName] | None, Sequence[x509.GeneralName] | None] | None = None,
    ski: bool = True,
    aki: bool = True,
    hash_alg: object = _DEFAULT,
    serial: int | None = None,
    issuer_name: x509.Name | None = None,
    extra: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> Issued:
    """Build one certificate. CA defaults: BC CA:TRUE (critical), KU keyCertSign+cRLSign.
    Leaf defaults: BC CA:FALSE, KU digitalSignature, EKU clientAuth, SAN email + DNS."""
    if isinstance(subject, str):
        subject = name(subject)
    if validity is None:
        validity = (ROOT_VALIDITY if issuer is None else INT_VALIDITY) if ca else LEAF_VALIDITY
    if serial is None:
        _SERIAL[0] += 1
        serial = _SERIAL[0]
    signer = issuer.key if issuer is not None else key_
    iname = issuer_name or (issuer.cert.subject if issuer is not None else subject)
    pub = key_.public_key()
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(iname)
        .public_key(pub)
        .serial_number(serial)
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
    )
    if bc is _DEFAULT:
        bc = (True, None) if ca else (False, None)
    if bc is not None:
        b = b.add_extension(x509.BasicConstraints(ca=bc[0], path_length=bc[1]), critical=True)
    if ku is _DEFAULT:
        ku = ("key_cert_sign", "crl_sign") if ca else ("digital_signature",)
    if ku is not None:
        b = b.add_extension(_ku(ku), critical=True)
    if eku is _DEFAULT:
        eku = None if ca else (ExtendedKeyUsageOID.CLIENT_AUTH,)
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if san is _DEFAULT:
        san = None if ca else (x509.RFC822Name("client@example.com"),)
    if san is not None:
        b = b.add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
    if nc is not None:
        b = b.add_extension(
            x509.NameConstraints(
                permitted_subtrees=list(nc[0]) if nc[0] else None,
                excluded_subtrees=list(nc[1]) if nc[1] else None,
            ),
            critical=True,
        )
    if ski:
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
    if aki and issuer is not None:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    for ext, critical in extra:
        b = b.add_extension(ext, critical=critical)
    if hash_alg is _DEFAULT:
        hash_alg = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    cert = b.sign(signer, hash_alg)
    return Issued(cert, key_)


_SHA256_RSA = bytes.fromhex("06092a864886f70d01010b")  # OID sha256WithRSAEncryption
_SHA1_RSA = bytes.fromhex("06092a864886f70d010105")  # OID sha1WithRSAEncryption


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(body)) + body


def resign_sha1_rsa(cert: Issued, issuer_key: rsa.RSAPrivateKey) -> bytes:
    """Re-sign an RSA-SHA256 certificate with SHA-1 (cryptography >= 50 refuses to build
    SHA-1 signatures): swap the algorithm OID in the TBS (same length), sign the new TBS
    with PKCS#1 v1.5 + SHA-1 and reassemble the DER by hand."""
    from cryptography.hazmat.primitives.asymmetric import padding

    tbs = cert.cert.tbs_certificate_bytes
    assert tbs.count(_SHA256_RSA) == 1
    tbs = tbs.replace(_SHA256_RSA, _SHA1_RSA)
    sig = issuer_key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())
    alg = _tlv(0x30, _SHA1_RSA + b"\x05\x00")
    return _tlv(0x30, tbs + alg + _tlv(0x03, b"\x00" + sig))


_RSA_SIGS = {
    "sha1": (_SHA1_RSA, "SHA1"),
    "md5": (bytes.fromhex("06092a864886f70d010104"), "MD5"),
}


def resign_rsa(cert: Issued, issuer_key: rsa.RSAPrivateKey, digest: str) -> bytes:
    """Re-sign an RSA-SHA256 certificate with a weak digest (cryptography refuses to
    build them): swap the algorithm OID, sign with PKCS#1 v1.5, reassemble the DER."""
    from cryptography.hazmat.primitives.asymmetric import padding

    oid, hname = _RSA_SIGS[digest]
    tbs = cert.cert.tbs_certificate_bytes
    assert tbs.count(_SHA256_RSA) == 1
    tbs = tbs.replace(_SHA256_RSA, oid)
    sig = issuer_key.sign(tbs, padding.PKCS1v15(), getattr(hashes, hname)())
    alg = _tlv(0x30, oid + b"\x05\x00")
    return _tlv(0x30, tbs + alg + _tlv(0x03, b"\x00" + sig))


def tamper(der: bytes) -> bytes:
    """Flip one bit of the signature value (the last byte of the DER): still parses."""
    return der[:-1] + bytes([der[-1] ^ 0x01])


def pem(der: bytes) -> bytes:
    """PEM armour for DER certificate bytes (done by hand: cryptography cannot load some
    of the certificates the scenarios build on purpose)."""
    import base64
    import textwrap

    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode("ascii"), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n".encode()


def crl_pem(der: bytes) -> bytes:
    import base64
    import textwrap

    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode("ascii"), 64))
    return f"-----BEGIN X509 CRL-----\n{body}\n-----END X509 CRL-----\n".encode()


# --- certificates cryptography's builder cannot make: rebuilt from the TBS --------------

_ECDSA_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")


def _tlv_end(buf: bytes, pos: int) -> tuple[int, int]:
    """(content start, end) of the TLV at ``pos`` (test-side DER reader: independent of
    the code under test)."""
    n = buf[pos + 1]
    cs = pos + 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(buf[cs : cs + k], "big")
        cs += k
    return cs, cs + n


def _tbs_fields(cert: x509.Certificate) -> list[bytes]:
    tbs = cert.tbs_certificate_bytes
    pos, end = _tlv_end(tbs, 0)
    out = []
    while pos < end:
        _cs, ce = _tlv_end(tbs, pos)
        out.append(tbs[pos:ce])
        pos = ce
    return out


def rebuild(
    cert: Issued,
    signer: object,
    *,
    version: int | None = 2,
    serial: bytes | None = None,
    subject: bytes | None = None,
    issuer: bytes | None = None,
    extensions: bool = True,
) -> bytes:
    """Re-encode ``cert``'s TBS with the given changes (``version`` None = omitted, i.e.
    v1; ``serial`` = INTEGER content octets; ``subject``/``issuer`` = whole Name DER) and
    sign it with ``signer`` (an EC key: ecdsa-with-SHA256)."""
    fields = _tbs_fields(cert.cert)
    assert fields[0][0] == 0xA0  # cryptography always writes v3
    rest = fields[1:]
    serial_f, alg_f, issuer_f, validity_f, subject_f, spki_f, *tail = rest
    assert alg_f == _ECDSA_SHA256, "rebuild() re-signs with ECDSA-SHA256 only"
    out = b""
    if version is not None:
        out += _tlv(0xA0, _tlv(0x02, bytes([version])))
    out += _tlv(0x02, serial) if serial is not None else serial_f
    out += alg_f + (issuer if issuer is not None else issuer_f) + validity_f
    out += (subject if subject is not None else subject_f) + spki_f
    if extensions:
        out += b"".join(tail)
    tbs = _tlv(0x30, out)
    sig = signer.sign(tbs, ec.ECDSA(hashes.SHA256()))  # type: ignore[attr-defined]
    return _tlv(0x30, tbs + _ECDSA_SHA256 + _tlv(0x03, b"\x00" + sig))


_SHA256_RSA_ALG = _tlv(0x30, _SHA256_RSA + b"\x05\x00")


def with_signature(cert: Issued, signature: bytes) -> bytes:
    """``cert`` re-encoded as signed with sha256WithRSAEncryption by ``signature`` (any
    bytes: a crafted certificate's signature need not verify to cost a verification)."""
    fields = _tbs_fields(cert.cert)
    i = 2 if fields[0][0] == 0xA0 else 1  # the TBS signature AlgorithmIdentifier
    fields[i] = _SHA256_RSA_ALG
    tbs = _tlv(0x30, b"".join(fields))
    return _tlv(0x30, tbs + _SHA256_RSA_ALG + _tlv(0x03, b"\x00" + signature))


def raw_name(*rdns: tuple[str, int, bytes]) -> bytes:
    """A Name DER from (attribute OID dotted, string tag, content octets) RDNs."""
    return _tlv(
        0x30,
        b"".join(_tlv(0x31, _tlv(0x30, _oid_der(o) + _tlv(tag, value))) for o, tag, value in rdns),
    )


def _oid_der(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return _tlv(0x06, bytes(body))


# ---------------------------------------------------------------------------------------
# the standard PKI: root -> int -> leaf (+ a second intermediate level and strangers)


class Pki:
    """Lazily built certificates shared by the scenarios."""

    @cached_property
    def root(self) -> Issued:
        return make(name("Conformance Root", (NameOID.ORGANIZATION_NAME, "Edgerules Test")),
                    key("root"), ca=True)

    @cached_property
    def int(self) -> Issued:
        return make(name("Conformance Int", (NameOID.ORGANIZATION_NAME, "Edgerules Test")),
                    key("int"), self.root, ca=True)

    @cached_property
    def int2(self) -> Issued:  # root -> int -> int2 (a second intermediate level)
        return make(name("Conformance Int 2", (NameOID.ORGANIZATION_NAME, "Edgerules Test")),
                    key("int2"), self.int, ca=True)

    @cached_property
    def leaf(self) -> Issued:  # issued by int
        return make(name("client-1", (NameOID.ORGANIZATION_NAME, "Edgerules Test")),
                    key("leaf"), self.int)

    @cached_property
    def leaf_of_root(self) -> Issued:
        return make("client-root", key("leaf"), self.root)

    @cached_property
    def leaf_of_int2(self) -> Issued:
        return make("client-deep", key("leaf"), self.int2)

    @cached_property
    def stranger_root(self) -> Issued:
        return make("Stranger Root", key("stranger-root"), ca=True)

    @cached_property
    def stranger_int(self) -> Issued:
        return make("Stranger Int", key("stranger-int"), self.stranger_root, ca=True)

    def leaf_with(self, issuer: Issued | None = None, cn: str = "client-x", **kw) -> Issued:
        return make(cn, key(kw.pop("key_label", "leaf"), kw.pop("key_kind", "ec")),
                    issuer or self.int, **kw)

    def int_with(self, issuer: Issued | None = None, cn: str = "Conformance Int",
                 label: str = "int", **kw) -> Issued:
        subj = name(cn, (NameOID.ORGANIZATION_NAME, "Edgerules Test"))
        return make(subj, key(label, kw.pop("key_kind", "ec")), issuer or self.root, ca=True, **kw)

    def root_with(self, cn: str = "Conformance Root", label: str = "root", **kw) -> Issued:
        subj = name(cn, (NameOID.ORGANIZATION_NAME, "Edgerules Test"))
        return make(subj, key(label, kw.pop("key_kind", "ec")), ca=True, **kw)


# ---------------------------------------------------------------------------------------
# scenarios


@dataclass(frozen=True)
class Scenario:
    id: str
    description: str
    trusted: tuple[bytes, ...]  # DER trust anchors
    chain: tuple[bytes, ...]  # DER, leaf first, as sent by the client
    openssl: str  # expected OpenSSL answer: "" = OK, else its reason wording
    now: dt.datetime = NOW
    tags: frozenset[str] = field(default_factory=frozenset)


Builder = Callable[[Pki], tuple]
_REGISTRY: dict[str, tuple[str, str, Builder]] = {}


def scenario(sid: str, openssl: str, description: str):
    """Register a scenario builder: fn(pki) -> (trusted, chain[, now]) of Issued or bytes."""

    def deco(fn: Builder) -> Builder:
        assert sid not in _REGISTRY, sid
        _REGISTRY[sid] = (description, openssl, fn)
        return fn

    return deco


def _der(x: Issued | bytes) -> bytes:
    return x if isinstance(x, bytes) else x.der


def scenario_ids() -> list[str]:
    return list(_REGISTRY)


def build_scenarios() -> list[Scenario]:
    pki = Pki()
    out = []
    for sid, (desc, expect, fn) in _REGISTRY.items():
        res = fn(pki)
        trusted, chain = res[0], res[1]
        now = res[2] if len(res) > 2 else NOW
        out.append(Scenario(sid, desc, tuple(map(_der, trusted)), tuple(map(_der, chain)),
                            expect, now))
    return out


OK = ""
ISSUER_LOCAL = "unable to get local issuer certificate"
FIRST_CERT = "unable to verify the first certificate"
SELF_SIGNED = "self-signed certificate"
SELF_SIGNED_IN_CHAIN = "self-signed certificate in certificate chain"
EXPIRED_R = "certificate has expired"
NOT_YET_R = "certificate is not yet valid"
SIG_FAIL = "certificate signature failure"
PURPOSE = "unsuitable certificate purpose"
INVALID_CA = "invalid CA certificate"
PATHLEN = "path length constraint exceeded"
PERMITTED = "permitted subtree violation"
EXCLUDED = "excluded subtree violation"
CRIT_EXT = "unhandled critical extension"

DNS, EMAIL = x509.DNSName, x509.RFC822Name
CLIENT, SERVER = ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH
ANY_EKU = ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE


# --- baseline paths ---------------------------------------------------------------------

@scenario("ok-root-leaf", OK, "root -> leaf, leaf sent alone")
def _(p: Pki):
    return [p.root], [p.leaf_of_root]


@scenario("ok-root-int-leaf", OK, "root -> int -> leaf, client sends leaf + int")
def _(p):
    return [p.root], [p.leaf, p.int]


@scenario("ok-two-intermediates", OK, "root -> int -> int2 -> leaf, sent in order")
def _(p):
    return [p.root], [p.leaf_of_int2, p.int2, p.int]


@scenario("ok-root-also-sent", OK, "client also sends the (trusted) root")
def _(p):
    return [p.root], [p.leaf, p.int, p.root]


@scenario("ok-duplicate-intermediate", OK, "the intermediate is sent twice")
def _(p):
    return [p.root], [p.leaf, p.int, p.int]


@scenario("ok-multiple-anchors", OK, "several trusted CAs, the right one among them")
def _(p):
    return [p.stranger_root, p.root], [p.leaf, p.int]


# --- path building ----------------------------------------------------------------------

@scenario("missing-intermediate", ISSUER_LOCAL, "leaf sent without its intermediate")
def _(p):
    return [p.root], [p.leaf]


@scenario("missing-middle-intermediate", ISSUER_LOCAL,
          "root -> int -> int2 -> leaf, client sends leaf + int2 only")
def _(p):
    return [p.root], [p.leaf_of_int2, p.int2]


@scenario("extra-unrelated-intermediates", OK, "unrelated CAs sent along with the real chain")
def _(p):
    return [p.root], [p.leaf, p.stranger_int, p.int, p.stranger_root]


@scenario("misordered-intermediates", OK, "two intermediate levels sent in reverse order")
def _(p):
    return [p.root], [p.leaf_of_int2, p.int, p.int2]


@scenario("unrelated-only", ISSUER_LOCAL, "only unrelated intermediates sent")
def _(p):
    return [p.root], [p.leaf, p.stranger_int]


@scenario("untrusted-root", ISSUER_LOCAL, "a chain that ends at a CA not in the trust store")
def _(p):
    return [p.stranger_root], [p.leaf, p.int]


@scenario("untrusted-root-sent", SELF_SIGNED_IN_CHAIN,
          "the client sends its own (untrusted) self-signed root")
def _(p):
    return [p.stranger_root], [p.leaf, p.int, p.root]


@scenario("intermediate-as-anchor", OK, "the intermediate is the trusted CA (BYOCA style)")
def _(p):
    return [p.int], [p.leaf]


@scenario("intermediate-as-anchor-also-sent", OK, "intermediate is trusted and also sent")
def _(p):
    return [p.int], [p.leaf, p.int]


@scenario("deep-intermediate-as-anchor", OK, "int2 trusted, leaf of int2 sent alone")
def _(p):
    return [p.int2], [p.leaf_of_int2]


# --- validity periods -------------------------------------------------------------------

@scenario("leaf-expired", EXPIRED_R, "leaf notAfter in the past")
def _(p):
    return [p.root], [p.leaf_with(validity=EXPIRED), p.int]


@scenario("leaf-not-yet-valid", NOT_YET_R, "leaf notBefore in the future")
def _(p):
    return [p.root], [p.leaf_with(validity=NOT_YET_VALID), p.int]


@scenario("intermediate-expired", EXPIRED_R, "intermediate notAfter in the past")
def _(p):
    i = p.int_with(validity=EXPIRED)
    return [p.root], [p.leaf_with(i), i]


@scenario("intermediate-not-yet-valid", NOT_YET_R, "intermediate notBefore in the future")
def _(p):
    i = p.int_with(validity=NOT_YET_VALID)
    return [p.root], [p.leaf_with(i), i]


@scenario("root-expired", EXPIRED_R, "trusted root notAfter in the past")
def _(p):
    r = p.root_with(validity=EXPIRED)
    i = p.int_with(r)
    return [r], [p.leaf_with(i), i]


@scenario("root-not-yet-valid", NOT_YET_R, "trusted root notBefore in the future")
def _(p):
    r = p.root_with(validity=NOT_YET_VALID)
    i = p.int_with(r)
    return [r], [p.leaf_with(i), i]


@scenario("anchor-intermediate-expired", EXPIRED_R, "intermediate as anchor, expired")
def _(p):
    i = p.int_with(validity=EXPIRED)
    return [i], [p.leaf_with(i)]


@scenario("leaf-valid-at-attime-past", OK, "an expired chain checked at a time it was valid",)
def _(p):
    leaf = p.leaf_with(validity=EXPIRED)
    return [p.root], [leaf, p.int], dt.datetime(2025, 1, 1, tzinfo=UTC)


# --- signatures and keys ------------------------------------------------------------------

@scenario("leaf-signature-tampered", SIG_FAIL, "one bit of the leaf's signature flipped")
def _(p):
    return [p.root], [tamper(p.leaf.der), p.int]


@scenario("intermediate-signature-tampered", SIG_FAIL, "intermediate's signature flipped")
def _(p):
    return [p.root], [p.leaf, tamper(p.int.der)]


@scenario("same-name-different-key-ca-akid", ISSUER_LOCAL,
          "trusted root has the real root's name but another key (AKID present)")
def _(p):
    impostor = p.root_with(label="impostor-root")
    return [impostor], [p.leaf, p.int]


@scenario("same-name-different-key-ca-no-akid", SIG_FAIL,
          "as above, but no AKID/SKI, so names alone link the certificates")
def _(p):
    impostor = p.root_with(label="impostor-root", ski=False)
    i = p.int_with(aki=False, ski=False, label="int-noaki")
    leaf = p.leaf_with(i, aki=False)
    return [impostor], [leaf, i]


@scenario("rsa-chain", OK, "RSA-2048 root, intermediate and leaf")
def _(p):
    r = p.root_with(cn="RSA Root", label="rsa-root", key_kind="rsa")
    i = p.int_with(r, cn="RSA Int", label="rsa-int", key_kind="rsa")
    return [r], [p.leaf_with(i, key_label="rsa-leaf", key_kind="rsa"), i]


@scenario("rsa-root-ecdsa-leaf", OK, "RSA root, ECDSA intermediate and leaf")
def _(p):
    r = p.root_with(cn="RSA Root", label="rsa-root", key_kind="rsa")
    i = p.int_with(r, cn="EC Int under RSA")
    return [r], [p.leaf_with(i), i]


@scenario("ecdsa-p384-sha384", OK, "P-384 keys, ECDSA-SHA384 signatures")
def _(p):
    r = p.root_with(cn="P384 Root", label="p384-root", key_kind="ec384", hash_alg=hashes.SHA384())
    leaf = p.leaf_with(r, key_label="p384-leaf", key_kind="ec384", hash_alg=hashes.SHA384())
    return [r], [leaf]


@scenario("ed25519-leaf-key", OK, "ECDSA CA issues a leaf with an Ed25519 key")
def _(p):
    return [p.root], [p.leaf_with(key_label="ed-leaf", key_kind="ed25519"), p.int]


@scenario("ed25519-chain", OK, "Ed25519 root signs an Ed25519 leaf")
def _(p):
    r = p.root_with(cn="Ed25519 Root", label="ed-root", key_kind="ed25519")
    return [r], [p.leaf_with(r, key_label="ed-leaf", key_kind="ed25519")]


@scenario("sha1-leaf-signature", "CA signature digest algorithm too weak",
          "RSA root signs the leaf with sha1WithRSAEncryption")
def _(p):
    r = p.root_with(cn="RSA Root", label="rsa-root", key_kind="rsa")
    return [r], [resign_sha1_rsa(p.leaf_with(r), r.key)]


@scenario("rsa-1024-leaf", "EE certificate key too weak", "leaf with a 1024-bit RSA key")
def _(p):
    return [p.root], [p.leaf_with(key_label="rsa1024-leaf", key_kind="rsa1024"), p.int]


@scenario("rsa-1024-intermediate", "CA certificate key too weak",
          "intermediate CA with a 1024-bit RSA key")
def _(p):
    i = p.int_with(cn="Weak RSA Int", label="rsa1024-int", key_kind="rsa1024")
    return [p.root], [p.leaf_with(i), i]


@scenario("issuer-name-differs-in-case", OK,
          "leaf's issuer DN differs from the intermediate's subject only in letter case")
def _(p):
    i = p.int_with(cn="Case Int", label="case-int")
    leaf = make("client-case", key("leaf"), i,
                issuer_name=name("case int", (NameOID.ORGANIZATION_NAME, "EDGERULES TEST")))
    return [p.root], [leaf, i]


def _long_chain(p: Pki, n: int):
    cur = p.root
    ints = []
    for k in range(n):
        cur = p.int_with(cur, cn=f"Long Int {k}", label=f"long-{k}")
        ints.append(cur)
    return [p.root], [p.leaf_with(cur), *reversed(ints)]


@scenario("chain-of-eight-intermediates", OK, "root -> 8 intermediates -> leaf, all sent")
def _(p):
    return _long_chain(p, 8)


@scenario("chain-of-nine-intermediates", OK, "root -> 9 intermediates -> leaf, all sent")
def _(p):
    return _long_chain(p, 9)


@scenario("chain-of-ten-intermediates", OK, "root -> 10 intermediates -> leaf, all sent")
def _(p):
    return _long_chain(p, 10)


# --- several problems at once: which one OpenSSL reports first -----------------------------

@scenario("first-error-int-expired-leaf-not-yet-valid", EXPIRED_R,
          "intermediate expired and leaf not yet valid (time checks run top-down)")
def _(p):
    i = p.int_with(validity=EXPIRED)
    return [p.root], [p.leaf_with(i, validity=NOT_YET_VALID), i]


@scenario("first-error-leaf-tampered-int-expired", EXPIRED_R,
          "leaf signature broken and intermediate expired")
def _(p):
    i = p.int_with(validity=EXPIRED)
    return [p.root], [tamper(p.leaf_with(i).der), i]


@scenario("first-error-eku-and-expired", PURPOSE,
          "leaf has EKU serverAuth only and is expired (purpose is checked before time)")
def _(p):
    return [p.root], [p.leaf_with(eku=(SERVER,), validity=EXPIRED), p.int]


@scenario("first-error-missing-issuer-and-expired", ISSUER_LOCAL,
          "expired leaf whose issuer is not available (path building comes first)")
def _(p):
    return [p.root], [p.leaf_with(validity=EXPIRED)]


@scenario("first-error-nc-violation-and-expired", EXPIRED_R,
          "leaf violates the intermediate's name constraints and is expired "
          "(OpenSSL checks name constraints after signatures and validity)")
def _(p):
    i = p.int_with(cn="NC Int", label="nc-int", nc=([DNS("example.com")], None))
    return [p.root], [p.leaf_with(i, cn="client-nc-exp", san=[DNS("a.other.com")],
                                  validity=EXPIRED), i]


@scenario("first-error-nc-violation-and-tampered-leaf", SIG_FAIL,
          "leaf violates the intermediate's name constraints and its signature is broken")
def _(p):
    i = p.int_with(cn="NC Int", label="nc-int", nc=([DNS("example.com")], None))
    return [p.root], [tamper(p.leaf_with(i, cn="client-nc-sig", san=[DNS("a.other.com")]).der), i]


# --- EKU ----------------------------------------------------------------------------------

@scenario("eku-client-and-server", OK, "leaf EKU serverAuth + clientAuth")
def _(p):
    return [p.root], [p.leaf_with(eku=(SERVER, CLIENT)), p.int]


@scenario("eku-server-only", PURPOSE, "leaf EKU serverAuth only")
def _(p):
    return [p.root], [p.leaf_with(eku=(SERVER,)), p.int]


@scenario("eku-none", OK, "leaf without an EKU extension")
def _(p):
    return [p.root], [p.leaf_with(eku=None), p.int]


@scenario("eku-any", PURPOSE, "leaf EKU anyExtendedKeyUsage only")
def _(p):
    return [p.root], [p.leaf_with(eku=(ANY_EKU,)), p.int]


@scenario("intermediate-eku-server-only", PURPOSE, "intermediate restricted to serverAuth")
def _(p):
    i = p.int_with(eku=(SERVER,))
    return [p.root], [p.leaf_with(i), i]


@scenario("root-anchor-eku-server-only", PURPOSE,
          "the trusted root is restricted to serverAuth (OpenSSL checks the anchor's purpose)")
def _(p):
    r = p.root_with(cn="EKU Root", label="eku-root", eku=(SERVER,))
    i = p.int_with(r, cn="EKU Int", label="eku-int")
    return [r], [p.leaf_with(i), i]


@scenario("intermediate-anchor-eku-server-only", PURPOSE,
          "the trusted intermediate is restricted to serverAuth")
def _(p):
    i = p.int_with(cn="EKU Int", label="eku-int", eku=(SERVER,))
    return [i], [p.leaf_with(i)]


@scenario("intermediate-anchor-without-bc", OK,
          "the trusted intermediate has no basicConstraints (OpenSSL accepts an anchor so)")
def _(p):
    i = p.int_with(cn="No-BC Int", label="nobc-int", bc=None)
    return [i], [p.leaf_with(i)]


@scenario("intermediate-eku-client", OK, "intermediate restricted to clientAuth")
def _(p):
    i = p.int_with(eku=(CLIENT,))
    return [p.root], [p.leaf_with(i), i]


# --- key usage ----------------------------------------------------------------------------

@scenario("ku-none", OK, "leaf without a keyUsage extension")
def _(p):
    return [p.root], [p.leaf_with(ku=None), p.int]


@scenario("ku-key-encipherment-only", PURPOSE, "leaf KU keyEncipherment, no digitalSignature")
def _(p):
    return [p.root], [p.leaf_with(ku=("key_encipherment",)), p.int]


@scenario("ku-key-agreement-only", OK, "ECDSA leaf KU keyAgreement (OpenSSL accepts for client)")
def _(p):
    return [p.root], [p.leaf_with(ku=("key_agreement",)), p.int]


@scenario("ku-digital-signature-and-more", OK, "leaf KU digitalSignature + keyEncipherment")
def _(p):
    return [p.root], [p.leaf_with(ku=("digital_signature", "key_encipherment")), p.int]


@scenario("intermediate-without-keycertsign", INVALID_CA,
          "intermediate KU digitalSignature + cRLSign, no keyCertSign")
def _(p):
    i = p.int_with(ku=("digital_signature", "crl_sign"))
    return [p.root], [p.leaf_with(i), i]


@scenario("root-without-keycertsign", INVALID_CA, "trusted root KU lacks keyCertSign")
def _(p):
    r = p.root_with(ku=("digital_signature", "crl_sign"))
    i = p.int_with(r)
    return [r], [p.leaf_with(i), i]


@scenario("intermediate-without-ku", OK, "intermediate without a keyUsage extension")
def _(p):
    i = p.int_with(ku=None)
    return [p.root], [p.leaf_with(i), i]


# --- basic constraints and path length ----------------------------------------------------

@scenario("intermediate-ca-false", INVALID_CA, "intermediate has basicConstraints CA:FALSE")
def _(p):
    i = p.int_with(bc=(False, None), ku=("key_cert_sign", "crl_sign", "digital_signature"))
    return [p.root], [p.leaf_with(i), i]


@scenario("intermediate-no-basic-constraints", INVALID_CA,
          "intermediate without basicConstraints")
def _(p):
    i = p.int_with(bc=None)
    return [p.root], [p.leaf_with(i), i]


@scenario("leaf-is-ca", OK, "the leaf asserts basicConstraints CA:TRUE")
def _(p):
    return [p.root], [p.leaf_with(bc=(True, None)), p.int]


@scenario("leaf-no-basic-constraints", OK, "leaf without basicConstraints")
def _(p):
    return [p.root], [p.leaf_with(bc=None), p.int]


@scenario("pathlen-0-root-one-intermediate", PATHLEN, "root pathlen:0 above one intermediate")
def _(p):
    r = p.root_with(bc=(True, 0))
    i = p.int_with(r)
    return [r], [p.leaf_with(i), i]


@scenario("pathlen-0-root-direct-leaf", OK, "root pathlen:0 signs the leaf directly")
def _(p):
    r = p.root_with(bc=(True, 0))
    return [r], [p.leaf_with(r)]


@scenario("pathlen-0-intermediate-ok", OK, "intermediate pathlen:0 signs the leaf")
def _(p):
    i = p.int_with(bc=(True, 0))
    return [p.root], [p.leaf_with(i), i]


@scenario("pathlen-1-root-one-intermediate", OK, "root pathlen:1 over one intermediate")
def _(p):
    r = p.root_with(bc=(True, 1))
    i = p.int_with(r)
    return [r], [p.leaf_with(i), i]


@scenario("pathlen-1-root-two-intermediates", PATHLEN, "root pathlen:1 over two intermediates")
def _(p):
    r = p.root_with(bc=(True, 1))
    i = p.int_with(r)
    i2 = p.int_with(i, cn="Conformance Int 2", label="int2")
    return [r], [p.leaf_with(i2), i2, i]


@scenario("pathlen-0-root-two-intermediates", PATHLEN, "root pathlen:0 over two intermediates")
def _(p):
    r = p.root_with(bc=(True, 0))
    i = p.int_with(r)
    i2 = p.int_with(i, cn="Conformance Int 2", label="int2")
    return [r], [p.leaf_with(i2), i2, i]


@scenario("pathlen-0-intermediate-over-intermediate", PATHLEN,
          "first intermediate pathlen:0 signs a second intermediate")
def _(p):
    i = p.int_with(bc=(True, 0))
    i2 = p.int_with(i, cn="Conformance Int 2", label="int2")
    return [p.root], [p.leaf_with(i2), i2, i]


# --- name constraints ---------------------------------------------------------------------

def _nc_chain(p: Pki, nc, san, cn="client-nc", on_root=False):
    if on_root:
        r = p.root_with(cn="NC Root", label="nc-root", nc=nc)
        i = p.int_with(r, cn="NC Int", label="nc-int")
    else:
        r = p.root
        i = p.int_with(cn="NC Int", label="nc-int", nc=nc)
    return [r], [p.leaf_with(i, cn=cn, san=san), i]


@scenario("nc-permitted-dns-ok", OK, "permitted DNS example.com, SAN a.example.com")
def _(p):
    return _nc_chain(p, ([DNS("example.com")], None), [DNS("a.example.com")])


@scenario("nc-permitted-dns-violation", PERMITTED, "permitted DNS example.com, SAN a.other.com")
def _(p):
    return _nc_chain(p, ([DNS("example.com")], None), [DNS("a.other.com")])


@scenario("nc-excluded-dns", EXCLUDED, "excluded DNS bad.example.com, SAN x.bad.example.com")
def _(p):
    return _nc_chain(p, (None, [DNS("bad.example.com")]), [DNS("x.bad.example.com")])


@scenario("nc-excluded-dns-not-hit", OK, "excluded DNS bad.example.com, SAN good.example.com")
def _(p):
    return _nc_chain(p, (None, [DNS("bad.example.com")]), [DNS("good.example.com")])


@scenario("nc-permitted-email-domain-ok", OK, "permitted email example.com, SAN a@example.com")
def _(p):
    return _nc_chain(p, ([EMAIL("example.com")], None), [EMAIL("a@example.com")])


@scenario("nc-permitted-email-violation", PERMITTED, "permitted email example.com, SAN a@other.com")
def _(p):
    return _nc_chain(p, ([EMAIL("example.com")], None), [EMAIL("a@other.com")])


@scenario("nc-excluded-email", EXCLUDED, "excluded email evil.com, SAN x@evil.com")
def _(p):
    return _nc_chain(p, (None, [EMAIL("evil.com")]), [EMAIL("x@evil.com")])


@scenario("nc-on-root-permitted-dns-violation", PERMITTED,
          "name constraints on the trust anchor itself")
def _(p):
    return _nc_chain(p, ([DNS("example.com")], None), [DNS("a.other.com")], on_root=True)


@scenario("nc-permitted-dns-cn-only-leaf", PERMITTED,
          "permitted DNS example.com; leaf has no SAN and CN=host.other.com")
def _(p):
    return _nc_chain(p, ([DNS("example.com")], None), None, cn="host.other.com")


@scenario("nc-email-subject-emailaddress-violation-with-san", PERMITTED,
          "permitted email example.com; SAN a@example.com but subject emailAddress x@other.com")
def _(p):
    i = p.int_with(cn="NC Int", label="nc-int", nc=([EMAIL("example.com")], None))
    subj = rdns([(NameOID.EMAIL_ADDRESS, "x@other.com")], [(NameOID.COMMON_NAME, "mail")])
    return [p.root], [make(subj, key("leaf"), i, san=[EMAIL("a@example.com")]), i]


@scenario("nc-email-subject-emailaddress-violation-no-san", PERMITTED,
          "permitted email example.com; no SAN, subject emailAddress x@other.com (RFC 5280 "
          "§4.2.1.10: the constraint MUST then apply to emailAddress)")
def _(p):
    i = p.int_with(cn="NC Int", label="nc-int", nc=([EMAIL("example.com")], None))
    subj = rdns([(NameOID.EMAIL_ADDRESS, "x@other.com")], [(NameOID.COMMON_NAME, "mail")])
    return [p.root], [make(subj, key("leaf"), i, san=None), i]


@scenario("nc-email-subject-emailaddress-excluded-no-san", EXCLUDED,
          "excluded email evil.com; no SAN, subject emailAddress x@evil.com")
def _(p):
    i = p.int_with(cn="NC Int", label="nc-int", nc=(None, [EMAIL("evil.com")]))
    subj = rdns([(NameOID.EMAIL_ADDRESS, "x@evil.com")], [(NameOID.COMMON_NAME, "mail")])
    return [p.root], [make(subj, key("leaf"), i, san=None), i]


@scenario("nc-permitted-dirname-violation", PERMITTED,
          "permitted directoryName O=Edgerules Test; leaf subject O=Elsewhere")
def _(p):
    base = x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                            "Edgerules Test")]))
    i = p.int_with(cn="NC Int", label="nc-int", nc=([base], None))
    leaf = make(name("client-dn", (NameOID.ORGANIZATION_NAME, "Elsewhere")), key("leaf"), i)
    return [p.root], [leaf, i]


@scenario("nc-permitted-dirname-ok", OK,
          "permitted directoryName O=Edgerules Test; leaf subject O=Edgerules Test,CN=…")
def _(p):
    base = x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                            "Edgerules Test")]))
    i = p.int_with(cn="NC Int", label="nc-int", nc=([base], None))
    leaf = make(name("client-dn", (NameOID.ORGANIZATION_NAME, "Edgerules Test")), key("leaf"), i)
    return [p.root], [leaf, i]


# --- names and odd DNs ----------------------------------------------------------------------

def _odd_dn_chain(p: Pki, subject: x509.Name, *, on_issuer: bool = False):
    if on_issuer:
        i = make(subject, key("odd-int"), p.root, ca=True)
        return [p.root], [p.leaf_with(i), i]
    return [p.root], [make(subject, key("leaf"), p.int), p.int]


@scenario("dn-multi-valued-rdn", OK, "leaf subject with a multi-valued RDN (CN+UID)")
def _(p):
    subj = rdns([(NameOID.COUNTRY_NAME, "US")],
                [(NameOID.COMMON_NAME, "multi"), (NameOID.USER_ID, "u42")])
    return _odd_dn_chain(p, subj)


@scenario("dn-special-characters", OK, "commas, plus, quotes, backslash, leading # and space")
def _(p):
    subj = rdns([(NameOID.ORGANIZATION_NAME, 'Acme, Inc. + "Sons" \\ co')],
                [(NameOID.ORGANIZATIONAL_UNIT_NAME, "#hash ")],
                [(NameOID.COMMON_NAME, " lead<>;=")])
    return _odd_dn_chain(p, subj)


@scenario("dn-non-ascii-utf8", OK, "non-ASCII UTF-8 attribute values")
def _(p):
    subj = rdns([(NameOID.COUNTRY_NAME, "DE")], [(NameOID.LOCALITY_NAME, "München")],
                [(NameOID.COMMON_NAME, "Jürgen Ωμέγα 日本")])
    return _odd_dn_chain(p, subj)


@scenario("dn-email-address-and-unknown-oid", OK, "emailAddress and an unregistered OID")
def _(p):
    subj = rdns([(NameOID.EMAIL_ADDRESS, "someone@example.com")],
                [(ObjectIdentifier("1.3.6.1.4.1.55555.1.2"), "custom-value")],
                [(NameOID.COMMON_NAME, "oid-client")])
    return _odd_dn_chain(p, subj)


@scenario("dn-odd-issuer-name", OK, "intermediate with commas/UTF-8/multi-valued RDN in its DN")
def _(p):
    subj = rdns([(NameOID.COUNTRY_NAME, "FR")],
                [(NameOID.ORGANIZATION_NAME, "Société, Générale"),
                 (NameOID.ORGANIZATIONAL_UNIT_NAME, "PKI+CA")],
                [(NameOID.COMMON_NAME, "Odd \"Issuer\"")])
    return _odd_dn_chain(p, subj, on_issuer=True)


@scenario("empty-subject-with-san", OK, "leaf with an empty subject and a critical SAN")
def _(p):
    leaf = make(x509.Name([]), key("leaf"), p.int, san=None,
                extra=[(x509.SubjectAlternativeName([EMAIL("anon@example.com")]), True)])
    return [p.root], [leaf, p.int]


# --- self-signed, no SAN, critical extensions ------------------------------------------------

@scenario("self-signed-leaf", SELF_SIGNED, "client sends a self-signed certificate")
def _(p):
    s = make("self-signed client", key("self"), san=[EMAIL("me@example.com")])
    return [p.root], [s]


@scenario("self-signed-leaf-trusted", OK, "self-signed client certificate pinned as the CA")
def _(p):
    s = make("self-signed client", key("self"), san=[EMAIL("me@example.com")])
    return [s], [s]


@scenario("leaf-without-san", OK, "managed-CA style leaf: no SAN at all")
def _(p):
    return [p.root], [p.leaf_with(san=None), p.int]


@scenario("leaf-unknown-critical-extension", CRIT_EXT, "leaf carries an unknown critical ext")
def _(p):
    ext = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.55555.9"), b"\x05\x00")
    return [p.root], [p.leaf_with(extra=[(ext, True)]), p.int]


@scenario("anchor-unknown-critical-extension", CRIT_EXT,
          "the trusted root carries an unknown critical ext (OpenSSL checks anchors too)")
def _(p):
    ext = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.55555.9"), b"\x05\x00")
    r = p.root_with(cn="Crit Root", label="crit-root", extra=[(ext, True)])
    i = p.int_with(r, cn="Crit Int", label="crit-int")
    return [r], [p.leaf_with(i), i]


@scenario("intermediate-anchor-unknown-critical-extension", CRIT_EXT,
          "the trusted intermediate carries an unknown critical ext")
def _(p):
    ext = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.55555.9"), b"\x05\x00")
    i = p.int_with(cn="Crit Int", label="crit-int", extra=[(ext, True)])
    return [i], [p.leaf_with(i)]


@scenario("leaf-san-ip-and-uri", OK, "leaf SAN with an IP address and a URI")
def _(p):
    san = [x509.IPAddress(ipaddress.ip_address("192.0.2.7")),
           x509.UniformResourceIdentifier("spiffe://example.org/client")]
    return [p.root], [p.leaf_with(san=san), p.int]


# --- real private PKIs (issue 10's table) -------------------------------------------------

_CN = "2.5.4.3"
_O = "2.5.4.10"


@scenario("ca-bc-non-critical-intermediate", OK,
          "intermediate CA whose basicConstraints CA:TRUE is not marked critical")
def _(p):
    i = p.int_with(cn="NonCrit BC Int", label="ncbc-int", bc=None,
                   extra=[(x509.BasicConstraints(ca=True, path_length=None), False)])
    return [p.root], [p.leaf_with(i), i]


@scenario("ca-bc-non-critical-anchor", OK,
          "uploaded anchor (an intermediate) with non-critical basicConstraints")
def _(p):
    i = p.int_with(cn="NonCrit BC Anchor", label="ncbc-anchor", bc=None,
                   extra=[(x509.BasicConstraints(ca=True, path_length=None), False)])
    return [i], [p.leaf_with(i)]


@scenario("leaf-eku-critical", OK, "leaf whose extendedKeyUsage (clientAuth) is critical")
def _(p):
    return [p.root], [p.leaf_with(eku=None, extra=[(x509.ExtendedKeyUsage([CLIENT]), True)]),
                      p.int]


@scenario("v1-leaf", OK, "a v1 leaf: no extensions at all (old IoT provisioning)")
def _(p):
    leaf = p.leaf_with(cn="v1 device")
    return [p.root], [rebuild(leaf, p.int.key, version=None, extensions=False), p.int]


@scenario("v1-root-anchor", OK, "a v1 self-signed root as the anchor, v3 leaf below it")
def _(p):
    r = p.root_with(cn="V1 Root", label="v1-root", ski=False)
    v1 = rebuild(r, r.key, version=None, extensions=False)
    leaf = p.leaf_with(r, cn="client-of-v1-root", aki=False)
    return [v1], [leaf]


@scenario("printablestring-outside-alphabet", OK,
          "leaf CN is a PrintableString holding _ @ * & # ! (device_001)")
def _(p):
    leaf = p.leaf_with(cn="placeholder")
    subject = raw_name((_O, 0x13, b"Edgerules Test"), (_CN, 0x13, b"device_001 @*&#!"))
    return [p.root], [rebuild(leaf, p.int.key, subject=subject), p.int]


@scenario("negative-serial", OK, "leaf with a negative serial (old Java/Microsoft CAs)")
def _(p):
    leaf = p.leaf_with(cn="negative serial")
    return [p.root], [rebuild(leaf, p.int.key, serial=b"\xfe\xdc\xba"), p.int]


@scenario("long-serial", OK, "leaf with a 25-octet serial (RFC 5280 allows 20)")
def _(p):
    leaf = p.leaf_with(cn="long serial")
    return [p.root], [rebuild(leaf, p.int.key, serial=b"\x01" + bytes(range(1, 25))), p.int]


@scenario("policy-constraints-critical", OK,
          "intermediate with critical policyConstraints (RFC 5280: MUST be critical)")
def _(p):
    ext = x509.PolicyConstraints(require_explicit_policy=None, inhibit_policy_mapping=0)
    i = p.int_with(cn="Policy Int", label="pol-int", extra=[(ext, True)])
    return [p.root], [p.leaf_with(i), i]


@scenario("inhibit-any-policy-critical", OK,
          "root anchor with critical inhibitAnyPolicy (RFC 5280: MUST be critical)")
def _(p):
    r = p.root_with(cn="Inhibit Root", label="inh-root",
                    extra=[(x509.InhibitAnyPolicy(0), True)])
    i = p.int_with(r, cn="Inhibit Int", label="inh-int")
    return [r], [p.leaf_with(i), i]


@scenario("certificate-policies-critical", OK, "leaf with critical certificatePolicies")
def _(p):
    pol = x509.CertificatePolicies([x509.PolicyInformation(ObjectIdentifier("1.3.6.1.4.1.55555.7"),
                                                           None)])
    return [p.root], [p.leaf_with(extra=[(pol, True)]), p.int]


@scenario("policy-mappings-critical-bridge", OK,
          "bridge-style intermediate: critical policyMappings and certificatePolicies")
def _(p):
    pol = x509.CertificatePolicies([x509.PolicyInformation(ObjectIdentifier("1.3.6.1.4.1.55555.7"),
                                                           None)])
    maps = x509.UnrecognizedExtension(
        ObjectIdentifier("2.5.29.33"),
        bytes.fromhex("3014301206082b0601040183b223070606") + bytes.fromhex("2b0601040183b2230708"),
    )
    i = p.int_with(cn="Bridge Int", label="bridge-int", extra=[(pol, True), (maps, True)])
    return [p.root], [p.leaf_with(i), i]


@scenario("nc-excluded-dirname-not-hit", OK,
          "excluded directoryName O=Banned; leaf subject O=Edgerules Test")
def _(p):
    base = x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                            "Banned")]))
    i = p.int_with(cn="NC Int", label="nc-int", nc=(None, [base]))
    leaf = make(name("client-dn", (NameOID.ORGANIZATION_NAME, "Edgerules Test")), key("leaf"), i)
    return [p.root], [leaf, i]


@scenario("nc-excluded-dirname-hit", EXCLUDED,
          "excluded directoryName O=Banned; leaf subject O=Banned")
def _(p):
    base = x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                            "Banned")]))
    i = p.int_with(cn="NC Int", label="nc-int", nc=(None, [base]))
    leaf = make(name("client-dn", (NameOID.ORGANIZATION_NAME, "Banned")), key("leaf"), i)
    return [p.root], [leaf, i]


@scenario("nc-permitted-dirname-case-folded", OK,
          "permitted directoryName O=EDGERULES test; leaf subject O=Edgerules Test (OpenSSL "
          "compares canonical, case-folded names)")
def _(p):
    base = x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                            "EDGERULES  test")]))
    i = p.int_with(cn="NC Int", label="nc-int", nc=([base], None))
    leaf = make(name("client-dn", (NameOID.ORGANIZATION_NAME, "Edgerules Test")), key("leaf"), i)
    return [p.root], [leaf, i]


@scenario("nc-uri-ok", OK, "permitted URI host .example.org; SAN spiffe://a.example.org/x")
def _(p):
    return _nc_chain(p, ([x509.UniformResourceIdentifier(".example.org")], None),
                     [x509.UniformResourceIdentifier("spiffe://a.example.org/client")])


@scenario("nc-uri-violation", PERMITTED, "permitted URI host .example.org; SAN on other.org")
def _(p):
    return _nc_chain(p, ([x509.UniformResourceIdentifier(".example.org")], None),
                     [x509.UniformResourceIdentifier("spiffe://other.org/client")])


@scenario("nc-intermediate-subject-violation", PERMITTED,
          "root permits directoryName O=Edgerules Test; the intermediate's own subject is "
          "O=Elsewhere (OpenSSL checks every certificate below the constraint)")
def _(p):
    base = x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                            "Edgerules Test")]))
    r = p.root_with(cn="DN NC Root", label="dnnc-root", nc=([base], None))
    i = make(name("Rogue Int", (NameOID.ORGANIZATION_NAME, "Elsewhere")), key("rogue-int"), r,
             ca=True)
    leaf = make(name("client-dn", (NameOID.ORGANIZATION_NAME, "Edgerules Test")), key("leaf"), i)
    return [r], [leaf, i]


@scenario("leaf-with-29-extraneous-certificates", OK,
          "a valid leaf + intermediate sent with 29 unrelated certificates (RFC 8446 §4.4.2)")
def _(p):
    extra = [make(f"unrelated {i}", key("leaf"), p.stranger_int) for i in range(29)]
    return [p.root], [p.leaf, *extra[:15], p.int, *extra[15:]]


@scenario("root-as-its-own-leaf", PURPOSE, "the trusted root presented as the client certificate")
def _(p):
    return [p.root], [p.root]


@scenario("md5-leaf-signature", "CA signature digest algorithm too weak",
          "RSA root signs the leaf with md5WithRSAEncryption")
def _(p):
    r = p.root_with(cn="RSA Root", label="rsa-root", key_kind="rsa")
    return [r], [resign_rsa(p.leaf_with(r), r.key, "md5")]


@scenario("dsa-2048-leaf-key", OK, "ECDSA CA issues a leaf with a DSA-2048 key")
def _(p):
    return [p.root], [p.leaf_with(key_label="dsa-leaf", key_kind="dsa"), p.int]


@scenario("rsa-huge-exponent-intermediate", OK,
          "an RSA-2048 intermediate whose public exponent has 41 bits (DoS: costly to verify)")
def _(p):
    i = p.int_with(cn="BigExp Int", label="bigexp-int", key_kind="rsa-bigexp")
    return [p.root], [p.leaf_with(i), i]


@scenario("t61string-latin1-names", OK,
          "leaf CN and intermediate O are T61Strings holding Latin-1 bytes (Zürich, Société)")
def _(p):
    i_subject = raw_name((_O, 0x14, "Société".encode("latin-1")), (_CN, 0x13, b"T61 Int"))
    i0 = p.int_with(cn="placeholder", label="t61-int")
    i_der = rebuild(i0, p.root.key, subject=i_subject)
    leaf0 = p.leaf_with(i0, cn="placeholder")
    leaf_subject = raw_name((_CN, 0x14, "Zürich device".encode("latin-1")))
    leaf_der = rebuild(leaf0, i0.key, subject=leaf_subject, issuer=i_subject)
    return [p.root], [leaf_der, i_der]


@scenario("ia5string-latin1-cn", OK, "leaf CN is an IA5String holding a Latin-1 byte")
def _(p):
    leaf = p.leaf_with(cn="placeholder")
    subject = raw_name((_CN, 0x16, "café-01".encode("latin-1")))
    return [p.root], [rebuild(leaf, p.int.key, subject=subject), p.int]


# ---------------------------------------------------------------------------------------
# OpenSSL


@dataclass(frozen=True)
class OpenSSLVerdict:
    ok: bool
    reason: str  # first error's reason ("" when ok)
    code: int | None
    depth: int | None
    errors: tuple[tuple[int, int, str], ...]  # every (code, depth, reason) printed
    output: str


_ERR = re.compile(r"^error (\d+) at (\d+) depth lookup: (.*)$", re.M)


def openssl_verify(
    sc: Scenario,
    workdir: Path,
    extra: Sequence[str] = (),
    *,
    auth_level: int = 2,
    strict: bool = False,
    crls: Sequence[bytes] = (),
    crl_check: str = "",
) -> OpenSSLVerdict:
    """Run `openssl verify -purpose sslclient -attime … -partial_chain -auth_level N
    [-x509_strict] [-crl_check|-crl_check_all -CRLfile …] [extra…]` on a scenario (files
    in `workdir`). Security level 2 is what a TLS server applies by default (and what the
    `compatible` profile models)."""
    workdir.mkdir(parents=True, exist_ok=True)
    ca = workdir / "trusted.pem"
    ca.write_bytes(b"".join(pem(d) for d in sc.trusted))
    leaf = workdir / "leaf.pem"
    leaf.write_bytes(pem(sc.chain[0]))
    cmd = [OPENSSL, "verify", "-purpose", "sslclient", "-attime", str(int(sc.now.timestamp())),
           "-partial_chain", "-auth_level", str(auth_level), *extra, "-CAfile", str(ca)]
    if strict:
        cmd.append("-x509_strict")
    if crls:
        crlfile = workdir / "crls.pem"
        crlfile.write_bytes(b"".join(crl_pem(c) for c in crls))
        cmd += [f"-{crl_check or 'crl_check'}", "-CRLfile", str(crlfile)]
    if len(sc.chain) > 1:
        untrusted = workdir / "chain.pem"
        untrusted.write_bytes(b"".join(pem(d) for d in sc.chain[1:]))
        cmd += ["-untrusted", str(untrusted)]
    cmd.append(str(leaf))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    out = r.stdout + r.stderr
    errors = tuple((int(c), int(d), reason.strip()) for c, d, reason in _ERR.findall(out))
    ok = r.returncode == 0 and out.rstrip().endswith(": OK") and not errors
    if ok:
        return OpenSSLVerdict(True, "", None, None, (), out)
    first = errors[0] if errors else (None, None, "<no error line>")
    return OpenSSLVerdict(False, first[2], first[0], first[1], errors, out)


def openssl_x509(der: bytes, *args: str) -> str:
    """`openssl x509 -inform DER -noout <args>` on one certificate; stdout."""
    r = subprocess.run([OPENSSL, "x509", "-inform", "DER", "-noout", *args], input=der,
                       capture_output=True, timeout=30, check=True)
    return r.stdout.decode("utf-8")
