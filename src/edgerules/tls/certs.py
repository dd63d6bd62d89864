"""One decoded certificate as the validator sees it, and the set of trust anchors.

Owns: :class:`Cert` — the raw DER view (:class:`~edgerules.tls.rawcert.RawCert`: names,
serial, signature inputs, key parameters) together with ``cryptography``'s parsed
certificate (extensions, dates, key) — and :func:`decode`, and :class:`TrustAnchors`.

Invariants:

* :func:`decode` returns ``None`` for anything OpenSSL could not load either: not a
  certificate, or a name OpenSSL's canonicalisation rejects (invalid UTF-8 in a
  UTF8String, an odd-length BMPString, …; see :mod:`edgerules.tls.dn`). A certificate
  whose *names* or *serial* ``cryptography`` refuses (PrintableString outside its
  alphabet, a non-positive serial) is still decoded: ``x509`` is then a
  :func:`~edgerules.tls.rawcert.loadable_copy` and ``copy`` is true — its names and
  signature are not the certificate's and are never used (names, serial and signature
  inputs come from ``raw``).
* Lazy: canonical names and the public key are computed on first use and memoised on the
  object; a ``Cert`` is otherwise immutable and safe to share between threads (the memo
  writes are idempotent).
"""

from __future__ import annotations

import datetime as _dt
import warnings
from collections.abc import Iterable, Sequence

from cryptography import x509
from cryptography.x509.verification import Store

from edgerules.tls import der, dn, keycheck
from edgerules.tls.der import DERError, read
from edgerules.tls.profiles import DEFAULT, Profile
from edgerules.tls.rawcert import RawCert, loadable_copy

__all__ = ["Anchor", "Cert", "TrustAnchors", "decode", "name_decodable"]

_NAME_MEMO: dict[bytes, bool] = {}
_NAME_MEMO_MAX = 4096


def name_decodable(name: bytes) -> bool:
    """OpenSSL can canonicalise (hence load and print) this DER name. Memoised: the
    issuer names of a deployment repeat on every validation."""
    hit = _NAME_MEMO.get(name)
    if hit is None:
        try:
            hit = _name_ok(name)
        except DERError:
            hit = False
        if len(_NAME_MEMO) >= _NAME_MEMO_MAX:
            _NAME_MEMO.clear()  # attacker-chosen names: never let the memo grow
        _NAME_MEMO[name] = hit
    return hit


def _name_ok(name: bytes) -> bool:
    """The structure of a Name and the contents OpenSSL converts to UTF-8 when it loads a
    certificate (x509_name_canon): the condition of :func:`edgerules.tls.dn.canonical`,
    checked without building the canonical form."""
    scan = der.scan
    top = scan(name, 0, len(name))
    if len(top) != 1 or top[0][0] != der.SEQUENCE:
        return False
    for rtag, _rp, rcs, rce in scan(name, top[0][2], top[0][3]):
        if rtag != der.SET or rcs == rce:
            return False
        for atag, _ap, acs, ace in scan(name, rcs, rce):
            if atag != der.SEQUENCE:
                return False
            atv = scan(name, acs, ace)
            if len(atv) != 2 or atv[0][0] != der.OID:
                return False
            tag, _vp, vcs, vce = atv[1]
            if tag in (12, 28, 30):  # UTF8String, UniversalString, BMPString
                dn.check_text(tag, name[vcs:vce])
    return True


class Cert:
    """A certificate: raw fields plus cryptography's parsed form (see module docstring)."""

    __slots__ = (
        "_canon_issuer",
        "_canon_subject",
        "_key",
        "_key_info",
        "_ku",
        "_refusal",
        "copy",
        "der",
        "memo",
        "raw",
        "x509",
    )

    def __init__(self, der: bytes, raw: RawCert, cert: x509.Certificate, copy: bool) -> None:
        self.der = der
        self.raw = raw
        self.x509 = cert
        self.copy = copy
        self._canon_subject: object = None
        self._canon_issuer: object = None
        self._key: object = None
        self._key_info: tuple[str, object] | None = None
        self._refusal: str | None = None
        self._ku: int | None = None
        # derived answers other modules memoise on the certificate (strict profile
        # checks of a CA: they do not depend on the chain it is in)
        self.memo: dict[object, object] = {}

    def __repr__(self) -> str:
        try:
            return f"Cert({dn.rfc2253(self.raw.subject_entries)!r})"
        except Exception:
            return "Cert(<undecodable name>)"

    # -- names ----------------------------------------------------------------------

    @property
    def subject(self) -> bytes:
        return self.raw.subject

    @property
    def issuer(self) -> bytes:
        return self.raw.issuer

    @property
    def canon_subject(self) -> object:
        if self._canon_subject is None:
            self._canon_subject = dn.canonical(self.raw.subject_entries)
        return self._canon_subject

    @property
    def canon_issuer(self) -> object:
        if self._canon_issuer is None:
            if self.raw.issuer == self.raw.subject:
                self._canon_issuer = self.canon_subject
            else:
                self._canon_issuer = dn.canonical(self.raw.issuer_entries)
        return self._canon_issuer

    def names_decodable(self) -> bool:
        return name_decodable(self.raw.subject) and name_decodable(self.raw.issuer)

    # -- key ------------------------------------------------------------------------

    @property
    def key_info(self) -> tuple[str, object]:
        if self._key_info is None:
            try:
                self._key_info = self.raw.key_info
            except DERError:
                self._key_info = ("malformed", None)
        return self._key_info

    @property
    def key_refusal(self) -> str:
        """Why this key must not verify signatures (DoS caps; ``""`` when it may)."""
        if self._refusal is None:
            self._refusal = keycheck.refusal(self.key_info)
        return self._refusal

    @property
    def key_usage_bits(self) -> int:
        """The keyUsage bits as one int (bit 0x80 of the first byte = digitalSignature,
        0x04 = keyCertSign; ``-1`` when there is no keyUsage extension), read from the
        raw DER: a cheap check for the hot path."""
        if self._ku is None:
            self._ku = _key_usage_bits(self.raw)
        return self._ku

    @property
    def cost(self) -> int:
        return keycheck.cost(self.key_info)

    def public_key(self) -> object | None:
        """The public key, or None when it cannot be loaded."""
        if self._key is None:
            try:
                self._key = self.x509.public_key()
            except Exception:
                self._key = False
        return self._key or None

    # -- time and extensions --------------------------------------------------------

    @property
    def validity_edges(self) -> tuple[_dt.datetime, _dt.datetime]:
        """``(notBefore, the first instant after notAfter)``: where its validity changes."""
        edges = self.memo.get("edges")
        if edges is None:
            edges = self.memo["edges"] = (
                self.x509.not_valid_before_utc,
                self.x509.not_valid_after_utc + _dt.timedelta(microseconds=1),
            )
        return edges  # type: ignore[return-value]

    def valid_at(self, now: _dt.datetime) -> bool:
        try:
            return self.x509.not_valid_before_utc <= now <= self.x509.not_valid_after_utc
        except Exception:
            return False

    def ext(self, cls: type[x509.ExtensionType]) -> object | None:
        """The parsed extension of type ``cls`` (None when absent or unparsable)."""
        try:
            return self.x509.extensions.get_extension_for_class(cls).value
        except Exception:
            return None

    def ext_critical(self, cls: type[x509.ExtensionType]) -> bool:
        try:
            return self.x509.extensions.get_extension_for_class(cls).critical
        except Exception:
            return False


_KU_OID = bytes.fromhex("551d0f")


def _key_usage_bits(raw: RawCert) -> int:
    """keyUsage bits (first two bytes of the BIT STRING, big-endian); -1 when absent,
    -2 when malformed."""
    try:
        found = raw.extension(_KU_OID)
        if found is None:
            return -1
        value = found[1]
        tag, cs, ce = read(value, 0, len(value))
        if tag != 0x03 or ce != len(value) or ce - cs < 1:
            return -2
        bits = value[cs + 1 : ce] + b"\x00\x00"
        return bits[0] << 8 | bits[1]
    except DERError:
        return -2


def _load(data: bytes, nonpositive_serial: bool) -> x509.Certificate:
    if nonpositive_serial:
        # cryptography warns (and will one day refuse) on serials <= 0, which OpenSSL
        # and real CAs produce; the warning must not reach the proxy's stderr.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cert = x509.load_der_x509_certificate(data)
            cert.serial_number  # noqa: B018
    else:
        cert = x509.load_der_x509_certificate(data)
    cert.not_valid_before_utc  # noqa: B018
    cert.not_valid_after_utc  # noqa: B018
    return cert


def decode(data: bytes) -> Cert | None:
    """A :class:`Cert` from DER, or None when OpenSSL could not load it either."""
    try:
        raw = RawCert.parse(data)
    except DERError:
        return None
    if not (name_decodable(raw.subject) and name_decodable(raw.issuer)):
        return None
    try:
        return Cert(data, raw, _load(data, raw.serial <= 0), False)
    except Exception:
        pass
    try:
        return Cert(data, raw, _load(loadable_copy(raw), False), True)
    except Exception:
        return None


CRL_STALE_CHOICES = ("open", "closed")


class Anchor:
    """A trusted certificate, the profile its clients are validated with, and what an
    unknown CRL status (its newest CRL past nextUpdate) means for them: ``"open"`` (not
    revoked) or ``"closed"`` (not verified)."""

    __slots__ = ("cert", "crl_stale", "profile")

    def __init__(self, cert: Cert, profile: Profile, crl_stale: str = "open") -> None:
        self.cert = cert
        self.profile = profile
        self.crl_stale = crl_stale


class TrustAnchors:
    """The trusted CA certificates, indexed once.

    Anchors whose key the DoS caps refuse, or that cannot be decoded the way OpenSSL
    decodes certificates, are left out and listed in ``problems`` (never an exception:
    one bad CA must not disable a hostname's other CAs)."""

    __slots__ = (
        "anchors",
        "by_canon",
        "by_der",
        "by_x509_id",
        "certs",
        "cost_by_subject",
        "ders",
        "max_subject_cost",
        "name_constraints",
        "problems",
        "profiles",
        "store",
        "verifier",
    )

    def __init__(self, items: Iterable[tuple[Cert, Profile, str]] | Sequence[Cert]) -> None:
        unique: dict[bytes, Anchor] = {}
        self.problems: list[str] = []
        for item in items:
            view, prof, stale = item if isinstance(item, tuple) else (item, DEFAULT, "open")
            refusal = view.key_refusal
            if refusal:
                self.problems.append(f"trusted CA {view!r} refused: {refusal}")
                continue
            unique.setdefault(view.der, Anchor(view, prof, stale))
        self.anchors: tuple[Anchor, ...] = tuple(unique.values())
        self.certs: tuple[x509.Certificate, ...] = tuple(a.cert.x509 for a in self.anchors)
        self.by_der: dict[bytes, Anchor] = unique
        self.ders = frozenset(unique)
        # Whether any anchor may carry NameConstraints (raw DER pre-filter).
        self.name_constraints = any(_NC_OID_DER in d for d in unique)
        native = [a.cert.x509 for a in self.anchors if not a.cert.copy]
        self.store = Store(native) if native else None
        # (verification second, cryptography ClientVerifier) last built (tls/verify.py)
        self.verifier: tuple[object, object] | None = None
        self.by_canon: dict[object, list[Anchor]] = {}
        for a in self.anchors:
            try:
                self.by_canon.setdefault(a.cert.canon_subject, []).append(a)
            except DERError:
                continue
        self.profiles = frozenset(a.profile for a in self.anchors)
        self.by_x509_id: dict[int, Cert] = {id(a.cert.x509): a.cert for a in self.anchors}
        # raw subject -> summed signature cost of the anchors with that subject (the
        # cryptography path builder's candidates; see verify.builder_bound)
        self.cost_by_subject: dict[bytes, int] = {}
        for a in self.anchors:
            if not a.cert.copy:
                subj = a.cert.subject
                self.cost_by_subject[subj] = self.cost_by_subject.get(subj, 0) + a.cert.cost
        self.max_subject_cost = max(self.cost_by_subject.values(), default=0)


# DER of the NameConstraints extension OID: a cheap pre-filter on raw certificate bytes.
_NC_OID_DER = bytes.fromhex("0603551d1e")
