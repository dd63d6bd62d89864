"""The parts of a certificate read straight from its DER.

Owns: :class:`RawCert` — the TBS bytes, version, serial, signature algorithm and value,
the raw issuer and subject names with each attribute's string tag and content octets,
the SubjectPublicKeyInfo and the extension list — and :func:`loadable_copy`, a copy of a
certificate that ``cryptography`` refuses to load (PrintableString outside its alphabet,
a non-positive serial in a future cryptography) that it can parse.

Why: OpenSSL (the reference of the ``compatible`` profile and of the field formats)
renders names from their content octets with per-type rules (T61String as Latin-1, …),
and accepts string contents ``cryptography`` refuses. Rendering from the DER means a name
is either shown exactly as ``openssl x509`` shows it or reported as undecodable — never
silently empty (issue 9 point 4).

Invariants:

* :meth:`RawCert.parse` raises :class:`~edgerules.tls.der.DERError` for anything that is
  not a well-formed X.509 certificate structure; it never raises anything else.
* Signature inputs (``tbs``, ``signature``, ``sig_alg``) are the original bytes, so a
  signature is always checked over what the issuer signed, even when the certificate's
  *parsed* form comes from :func:`loadable_copy`.
"""

from __future__ import annotations

from edgerules.tls import der
from edgerules.tls.der import DERError

__all__ = ["NameEntry", "RawCert", "loadable_copy", "parse_name"]

_RSA = bytes.fromhex("2a864886f70d010101")
_EC = bytes.fromhex("2a8648ce3d0201")
_DSA = bytes.fromhex("2a8648ce380401")
_ED25519 = bytes.fromhex("2b6570")
_ED448 = bytes.fromhex("2b6571")

# SubjectPublicKeyInfo headers of fixed-size keys -> (kind, params, key bytes after it)
_SPKI_PREFIXES: tuple[tuple[bytes, tuple[str, object, int]], ...] = (
    (bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200"),
     ("ec", bytes.fromhex("2a8648ce3d030107"), 65)),
    (bytes.fromhex("3076301006072a8648ce3d020106052b81040022036200"),
     ("ec", bytes.fromhex("2b81040022"), 97)),
    (bytes.fromhex("302a300506032b6570032100"), ("ed25519", None, 32)),
)

# (RDN index, OID body, string tag, content octets, the attribute value's whole TLV)
NameEntry = tuple[int, bytes, int, bytes, bytes]


def parse_name(name: bytes) -> tuple[NameEntry, ...]:
    """The entries of a DER ``Name`` in certificate order."""
    scan = der.scan
    top = scan(name, 0, len(name))
    if len(top) != 1 or top[0][0] != der.SEQUENCE:
        raise DERError("a Name must be one SEQUENCE")
    out: list[NameEntry] = []
    for index, (rtag, _rp, rcs, rce) in enumerate(scan(name, top[0][2], top[0][3])):
        if rtag != der.SET or rcs == rce:
            raise DERError("a RelativeDistinguishedName must be a non-empty SET")
        for atag, _ap, acs, ace in scan(name, rcs, rce):
            if atag != der.SEQUENCE:
                raise DERError("an AttributeTypeAndValue must be a SEQUENCE")
            atv = scan(name, acs, ace)
            if len(atv) != 2 or atv[0][0] != der.OID:
                raise DERError("an AttributeTypeAndValue is an OID and a value")
            (_ot, _op, ocs, oce), (vtag, vp, vcs, vce) = atv
            out.append((index, name[ocs:oce], vtag, name[vcs:vce], name[vp:vce]))
    return tuple(out)


class RawCert:
    """A certificate's DER split into its fields (see the module docstring)."""

    __slots__ = (
        "_extensions",
        "_issuer_entries",
        "_subject_entries",
        "der",
        "ext_span",
        "issuer",
        "serial",
        "serial_bytes",
        "sig_alg",
        "signature",
        "spki",
        "subject",
        "tbs",
        "tbs_sig_alg",
        "validity",
        "version",
    )

    der: bytes
    tbs: bytes
    version: int
    serial: int
    serial_bytes: bytes
    tbs_sig_alg: bytes
    sig_alg: bytes
    signature: bytes
    issuer: bytes
    subject: bytes
    validity: bytes
    spki: bytes
    ext_span: tuple[int, int] | None

    @classmethod
    def parse(cls, data: bytes) -> RawCert:
        self = cls.__new__(cls)
        self.der = data
        scan = der.scan
        top = scan(data, 0, len(data))
        if len(top) != 1 or top[0][0] != der.SEQUENCE:
            raise DERError("a Certificate must be one SEQUENCE")
        parts = scan(data, top[0][2], top[0][3])
        if len(parts) != 3 or parts[0][0] != der.SEQUENCE or parts[1][0] != der.SEQUENCE:
            raise DERError("a Certificate holds tbsCertificate, signatureAlgorithm, signature")
        (_t, tp, tcs, tce), (_a, ap, _acs, ace), (btag, _bp, bcs, bce) = parts
        if btag != der.BIT_STRING or bce == bcs or data[bcs] != 0:
            raise DERError("the signature must be a BIT STRING without unused bits")
        self.tbs = tbs = data[tp:tce]
        self.sig_alg = data[ap:ace]
        self.signature = data[bcs + 1 : bce]
        fields = scan(tbs, tcs - tp, len(tbs))  # offsets relative to ``tbs``
        i = 0
        self.version = 0
        if fields and fields[0][0] == 0xA0:
            inner = scan(tbs, fields[0][2], fields[0][3])
            if len(inner) != 1 or inner[0][0] != der.INTEGER:
                raise DERError("malformed version")
            self.version = der.decode_int(tbs[inner[0][2] : inner[0][3]])
            i = 1
        if len(fields) < i + 6 or fields[i][0] != der.INTEGER:
            raise DERError("tbsCertificate is missing fields or its serial number")
        self.serial_bytes = tbs[fields[i][2] : fields[i][3]]
        self.serial = der.decode_int(self.serial_bytes)
        for name, (ftag, fp, _fcs, fce) in zip(
            ("tbs_sig_alg", "issuer", "validity", "subject", "spki"),
            fields[i + 1 : i + 6],
            strict=True,
        ):
            if ftag != der.SEQUENCE:
                raise DERError(f"malformed {name}")
            setattr(self, name, tbs[fp:fce])
        self.ext_span = None
        for ftag, _fp, fcs, fce in fields[i + 6 :]:
            if ftag == 0xA3 and self.ext_span is None:
                self.ext_span = (fcs, fce)
            elif ftag not in (0x81, 0xA1, 0x82, 0xA2):  # unique identifiers
                raise DERError("unexpected field in tbsCertificate")
        self._extensions = None
        self._issuer_entries = None
        self._subject_entries = None
        return self

    @property
    def issuer_entries(self) -> tuple[NameEntry, ...]:
        if self._issuer_entries is None:
            self._issuer_entries = parse_name(self.issuer)
        return self._issuer_entries

    @property
    def subject_entries(self) -> tuple[NameEntry, ...]:
        if self._subject_entries is None:
            self._subject_entries = parse_name(self.subject)
        return self._subject_entries

    def _extension_list(self) -> list[tuple[int, int, int, int]]:
        """The Extension SEQUENCEs inside ``tbs`` (one scan, not parsed further)."""
        tbs = self.tbs
        tag, cs, ce = der.read(tbs, *self.ext_span)  # type: ignore[misc]
        if tag != der.SEQUENCE:
            raise DERError("Extensions must be a SEQUENCE")
        return der.scan(tbs, cs, ce)

    def _parse_extension(self, cs: int, ce: int) -> tuple[bytes, bool, bytes]:
        tbs = self.tbs
        items = der.scan(tbs, cs, ce)
        if not 2 <= len(items) <= 3 or items[0][0] != der.OID:
            raise DERError("malformed Extension")
        critical = False
        if len(items) == 3:
            if items[1][0] != der.BOOLEAN or items[1][3] - items[1][2] != 1:
                raise DERError("malformed Extension critical flag")
            critical = tbs[items[1][2]] != 0
        vtag, _vp, vcs, vce = items[-1]
        if vtag != der.OCTET_STRING:
            raise DERError("extnValue must be an OCTET STRING")
        return tbs[items[0][2] : items[0][3]], critical, tbs[vcs:vce]

    @property
    def extensions(self) -> tuple[tuple[bytes, bool, bytes], ...]:
        """``(OID body, critical, extnValue content)`` for each extension, in order."""
        if self._extensions is None:
            out: list[tuple[bytes, bool, bytes]] = []
            if self.ext_span is not None:
                for etag, _p, ecs, ece in self._extension_list():
                    if etag != der.SEQUENCE:
                        raise DERError("an Extension must be a SEQUENCE")
                    out.append(self._parse_extension(ecs, ece))
            self._extensions = tuple(out)
        return self._extensions

    @property
    def key_info(self) -> tuple[str, object]:
        """The public key's kind and size parameters, read from the SubjectPublicKeyInfo
        without loading the key: ``("rsa", (modulus_bits, exponent))``,
        ``("ec", curve OID body or None for explicit parameters)``, ``("dsa", p_bits)``,
        ``("ed25519", None)``, ``("ed448", None)``, else ``(dotted OID, None)``."""
        spki = self.spki
        _tag, cs, ce = der.read(spki, 0, len(spki))
        atag, acs, ace = der.read(spki, cs, ce)
        btag, bcs, bce = der.read(spki, ace, ce)
        if atag != der.SEQUENCE or btag != der.BIT_STRING or bce == bcs:
            raise DERError("malformed SubjectPublicKeyInfo")
        otag, ocs, oce = der.read(spki, acs, ace)
        if otag != der.OID:
            raise DERError("malformed key algorithm")
        oid = spki[ocs:oce]
        if oid == _RSA:
            ktag, kcs, kce = der.read(spki, bcs + 1, bce)
            ntag, ncs, nce = der.read(spki, kcs, kce)
            etag, ecs, ece = der.read(spki, nce, kce)
            if ktag != der.SEQUENCE or ntag != der.INTEGER or etag != der.INTEGER:
                raise DERError("malformed RSA public key")
            n = der.decode_int(spki[ncs:nce])
            return "rsa", (n.bit_length(), der.decode_int(spki[ecs:ece]))
        if oid == _EC:
            if oce < ace:
                ptag, pcs, pce = der.read(spki, oce, ace)
                if ptag == der.OID:
                    return "ec", spki[pcs:pce]
            return "ec", None
        if oid == _DSA:
            if oce < ace:
                ptag, pcs, pce = der.read(spki, oce, ace)
                if ptag == der.SEQUENCE:
                    itag, ics, ice = der.read(spki, pcs, pce)
                    if itag == der.INTEGER:
                        return "dsa", der.decode_int(spki[ics:ice]).bit_length()
            return "dsa", 0
        if oid == _ED25519:
            return "ed25519", None
        if oid == _ED448:
            return "ed448", None
        return der.oid_dotted(oid), None

    def extension(self, oid: bytes) -> tuple[bool, bytes] | None:
        """``(critical, value)`` of the extension with OID body ``oid``, if present (the
        first one; only that extension is parsed, unless all already were)."""
        if self._extensions is not None:
            for eoid, critical, value in self._extensions:
                if eoid == oid:
                    return critical, value
            return None
        if self.ext_span is None:
            return None
        tbs = self.tbs
        head = bytes([der.OID, len(oid)]) + oid
        for etag, _p, ecs, ece in self._extension_list():
            if etag == der.SEQUENCE and tbs.startswith(head, ecs):
                _oid, critical, value = self._parse_extension(ecs, ece)
                return critical, value
        return None


_PLACEHOLDER_NAME = der.encode(
    der.SEQUENCE,
    der.encode(der.SET, der.encode(der.SEQUENCE, der.encode(der.OID, b"\x55\x04\x03")
                                   + der.encode(0x0C, b"edgerules-unloadable"))),
)


def loadable_copy(raw: RawCert) -> bytes:
    """A re-encoding of ``raw`` that ``cryptography`` can load for its extensions, dates
    and key: issuer and subject replaced by a placeholder name (our code reads names from
    the raw DER), a non-positive serial replaced by 1. The copy's signature no longer
    matches: it is never verified (signatures are checked on ``raw.tbs``)."""
    tbs = raw.tbs
    _tag, cs, ce = der.read(tbs, 0, len(tbs))
    out = bytearray()
    fields = list(der.children(tbs, cs, ce))
    i = 1 if fields and fields[0][0] == 0xA0 else 0
    for n, (_t, p, _fcs, fce) in enumerate(fields):
        item = tbs[p:fce]
        if n == i and raw.serial <= 0:
            item = b"\x02\x01\x01"
        elif n in (i + 2, i + 4):  # issuer, subject
            item = _PLACEHOLDER_NAME
        out += item
    new_tbs = der.encode(der.SEQUENCE, bytes(out))
    return der.encode(
        der.SEQUENCE, new_tbs + raw.sig_alg + der.encode(der.BIT_STRING, b"\x00" + raw.signature)
    )
