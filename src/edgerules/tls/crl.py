"""CRLs: which certificates of a verified path they revoke (RFC 5280 §6.3, adapted).

Owns: loading CRLs and refusing those we cannot apply as full CRLs
(:func:`crl_refusal`), matching a CRL to the certificate that issued it, and the status
of one certificate (:meth:`CRLRevocation.status`).

Semantics (issue 10 point 4, issue 9 point 5):

* A CRL speaks for an issuer when its issuer name equals the issuer's subject
  (OpenSSL's canonical comparison), its signature verifies with the issuer's public key,
  and the issuer's keyUsage, when present, allows cRLSign. Anything else is ignored for
  that issuer (and reported by :meth:`CRLRevocation.problems`).
* Refused as a whole (reported, never applied as a full CRL): a delta CRL
  (deltaCRLIndicator), a scoped CRL (issuingDistributionPoint limited to user, CA or
  attribute certificates, to some reasons, or indirect), any other critical CRL or entry
  extension OpenSSL does not handle. A CRL that cannot be decoded is reported and
  skipped: it never prevents building a validator.
* Revoked stays revoked: an entry from a correctly signed CRL counts whether or not that
  CRL is still fresh (after ``nextUpdate``) — a stale CRL never makes a revoked
  certificate read as good. Only an entry with reason ``certificateHold`` is lifted, by a
  newer CRL (higher cRLNumber; else later thisUpdate) from the same issuer that no longer
  lists the serial.
* A CRL whose ``thisUpdate`` is after the validation time is not yet usable at all.
* Unknown status: a certificate not listed while the newest usable CRL of its issuer is
  past its ``nextUpdate`` has an *unknown* status; what that means (fail open: not
  revoked; fail closed: not verified, ``CRL has expired``) is the trusted CA's setting
  (the validator applies it). An issuer with no CRL at all is not checked (CRLs are
  opt-in per CA; Cloudflare itself checks none for uploaded CAs).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import CRLEntryExtensionOID, ExtensionOID

from edgerules.tls import dn
from edgerules.tls.certs import Cert
from edgerules.tls.der import DERError
from edgerules.tls.rawcert import parse_name
from edgerules.tls.reasons import Reason

__all__ = ["CRLRevocation", "CRLStatus", "crl_issuer", "crl_refusal", "load_crl"]

_TICK = _dt.timedelta(microseconds=1)  # the first instant after ``next_update``
_KU_CRL_SIGN = 0x0200
_HANDLED_CRL_EXTENSIONS = frozenset(
    {
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.CRL_NUMBER,
        ExtensionOID.ISSUING_DISTRIBUTION_POINT,  # unscoped only (see crl_refusal)
        ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
        ExtensionOID.FRESHEST_CRL,
    }
)
_HANDLED_ENTRY_EXTENSIONS = frozenset(
    {CRLEntryExtensionOID.CRL_REASON, CRLEntryExtensionOID.INVALIDITY_DATE}
)


def load_crl(data: x509.CertificateRevocationList | bytes | str) -> x509.CertificateRevocationList:
    """A CRL from an object, PEM text/bytes or DER bytes (raises ``ValueError``)."""
    if isinstance(data, x509.CertificateRevocationList):
        return data
    if isinstance(data, str):
        data = data.encode("ascii")
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def crl_refusal(crl: x509.CertificateRevocationList) -> str:
    """Why ``crl`` cannot be applied as a full CRL (``""`` when it can)."""
    try:
        exts = list(crl.extensions)
    except Exception as exc:
        return f"unreadable CRL extensions ({exc})"
    for ext in exts:
        if ext.oid == ExtensionOID.DELTA_CRL_INDICATOR:
            return "delta CRLs are not supported (deltaCRLIndicator)"
        if ext.oid == ExtensionOID.ISSUING_DISTRIBUTION_POINT:
            idp = ext.value
            scoped = [
                name
                for name, on in (
                    ("onlyContainsUserCerts", idp.only_contains_user_certs),
                    ("onlyContainsCACerts", idp.only_contains_ca_certs),
                    ("onlyContainsAttributeCerts", idp.only_contains_attribute_certs),
                    ("indirectCRL", idp.indirect_crl),
                    ("onlySomeReasons", idp.only_some_reasons is not None),
                )
                if on
            ]
            if scoped:
                return (
                    "scoped CRLs are not supported (issuingDistributionPoint "
                    f"{', '.join(scoped)})"
                )
        elif ext.critical and ext.oid not in _HANDLED_CRL_EXTENSIONS:
            return f"{Reason.UNHANDLED_CRITICAL_CRL} ({ext.oid.dotted_string})"
    try:
        for entry in crl:
            for ext in entry.extensions:
                if ext.critical and ext.oid not in _HANDLED_ENTRY_EXTENSIONS:
                    return f"{Reason.UNHANDLED_CRITICAL_CRL} (entry {ext.oid.dotted_string})"
        crl.last_update_utc  # noqa: B018
        crl.next_update_utc  # noqa: B018
    except Exception as exc:
        return f"unreadable CRL ({exc})"
    return ""


def crl_issuer(crl: x509.CertificateRevocationList) -> tuple[str, object]:
    """``(RFC 2253 text, canonical form)`` of the CRL's issuer name (raises ``DERError``
    for a name OpenSSL could not decode)."""
    entries = parse_name(crl.issuer.public_bytes(Encoding.DER))
    return dn.rfc2253(entries, escape_msb=False), dn.canonical(entries)


@dataclass(frozen=True, slots=True)
class CRLStatus:
    """The CRL verdict for one certificate: ``revoked``; or ``unknown`` with the reason
    (the newest CRL is stale); or neither (good, or no CRL for its issuer)."""

    revoked: bool = False
    unknown: str = ""
    detail: str = ""


GOOD = CRLStatus()


class _Loaded:
    __slots__ = ("crl", "issuer_canon", "last", "next", "number")

    def __init__(self, crl: x509.CertificateRevocationList) -> None:
        self.crl = crl
        self.issuer_canon = dn.canonical(parse_name(crl.issuer.public_bytes(Encoding.DER)))
        self.last = crl.last_update_utc
        self.next = crl.next_update_utc
        try:
            self.number = int(
                crl.extensions.get_extension_for_oid(ExtensionOID.CRL_NUMBER).value.crl_number
            )
        except Exception:
            self.number = -1

    def order(self) -> tuple[int, _dt.datetime]:
        return (self.number, self.last)


def _is_hold(entry: x509.RevokedCertificate) -> bool:
    try:
        reason = entry.extensions.get_extension_for_oid(CRLEntryExtensionOID.CRL_REASON).value
    except Exception:
        return False
    return reason.reason == x509.ReasonFlags.certificate_hold


class CRLRevocation:
    """CRLs for the issuers of verified paths. Immutable: build a new one to change them.

    ``problems`` lists the CRLs refused when loading (undecodable, delta, scoped,
    unhandled critical extension)."""

    def __init__(self, crls: Iterable[x509.CertificateRevocationList | bytes | str]) -> None:
        self.problems: list[str] = []
        loaded: list[_Loaded] = []
        for item in crls:
            try:
                crl = load_crl(item)
            except Exception as exc:
                self.problems.append(f"a CRL cannot be decoded and is skipped: {exc}")
                continue
            refusal = crl_refusal(crl)
            if refusal:
                self.problems.append(f"{_issuer_text(crl)}: refused: {refusal}")
                continue
            try:
                loaded.append(_Loaded(crl))
            except (DERError, ValueError) as exc:
                self.problems.append(f"a CRL's issuer name cannot be decoded: {exc}")
        self._by_issuer: dict[object, list[_Loaded]] = {}
        for item in loaded:
            self._by_issuer.setdefault(item.issuer_canon, []).append(item)
        # (id of CRL, issuer DER) -> signature valid?  Both live as long as we do.
        self._sig_ok: dict[tuple[int, bytes], bool] = {}
        self._edges = _crl_edges(loaded)
        self._loaded = tuple(loaded)

    def __bool__(self) -> bool:
        return bool(self._loaded)

    @property
    def crls(self) -> tuple[x509.CertificateRevocationList, ...]:
        return tuple(item.crl for item in self._loaded)

    @property
    def edges(self) -> tuple[_dt.datetime, ...]:
        """Every instant at which some CRL becomes usable (``last_update``) or stale (just
        after ``next_update``): a result computed with these CRLs holds only between two
        consecutive edges, in either direction of time."""
        return self._edges

    def _speaks_for(self, item: _Loaded, issuer: Cert) -> bool:
        key = (id(item), issuer.der)
        ok = self._sig_ok.get(key)
        if ok is None:
            ku = issuer.key_usage_bits
            ok = ku == -1 or bool(ku > 0 and ku & _KU_CRL_SIGN)
            if ok and not issuer.key_refusal:
                pub = issuer.public_key()
                try:
                    ok = pub is not None and bool(item.crl.is_signature_valid(pub))  # type: ignore[arg-type]
                except Exception:
                    ok = False
            else:
                ok = False
            self._sig_ok[key] = ok
        return ok

    def status(self, cert: Cert, issuer: Cert, now: _dt.datetime) -> CRLStatus:
        """The CRL status of ``cert`` (issued by ``issuer``) at ``now`` (aware)."""
        try:
            candidates = self._by_issuer.get(issuer.canon_subject, ())
        except DERError:
            candidates = ()
        if not candidates:
            return GOOD  # no CRL for this issuer: not checked
        signed = [c for c in candidates if self._speaks_for(c, issuer)]
        usable = [c for c in signed if c.last <= now]
        if not usable:
            # CRLs claim this issuer but none can answer: the status is unknown
            why = Reason.CRL_NOT_YET_VALID if signed else Reason.CRL_SIGNATURE_FAILURE
            return CRLStatus(unknown=why, detail=f"no usable CRL for {_issuer_text(candidates[0].crl)}")
        serial = cert.raw.serial
        newest = max(usable, key=_Loaded.order)
        listed = [
            (item, entry)
            for item in usable
            if (entry := item.crl.get_revoked_certificate_by_serial_number(serial)) is not None
        ]
        for item, entry in listed:
            held = _is_hold(entry)
            if held and item is not newest and not any(i is newest for i, _e in listed):
                continue  # certificateHold lifted by a newer CRL that no longer lists it
            return CRLStatus(revoked=True, detail=f"revoked by the CRL of {_issuer_text(item.crl)}")
        if newest.next is not None and now > newest.next:
            return CRLStatus(unknown=Reason.CRL_EXPIRED,
                             detail=f"the newest CRL of {_issuer_text(newest.crl)} is stale")
        return GOOD

    def signed_by(self, issuer: Cert) -> bool:
        """Every CRL naming ``issuer`` verifies with its key (and its keyUsage allows
        cRLSign); True when none names it."""
        try:
            items = self._by_issuer.get(issuer.canon_subject, ())
        except DERError:
            return True
        return all(self._speaks_for(item, issuer) for item in items)

    def problems_for(self, issuers: Iterable[Cert], now: _dt.datetime) -> list[str]:
        """Human-readable reasons why a CRL naming one of ``issuers`` is not applied
        (bad signature or key usage) or is stale at ``now``."""
        out: list[str] = []
        for issuer in issuers:
            try:
                items = self._by_issuer.get(issuer.canon_subject, ())
            except DERError:
                continue
            for item in items:
                if not self._speaks_for(item, issuer):
                    out.append(f"CRL of {_issuer_text(item.crl)}: bad signature or key usage")
                elif item.next is not None and now > item.next:
                    out.append(f"CRL of {_issuer_text(item.crl)}: stale")
        return out


def _issuer_text(crl: x509.CertificateRevocationList) -> str:
    try:
        return dn.rfc2253(parse_name(crl.issuer.public_bytes(Encoding.DER)))
    except Exception:
        return "an undecodable issuer"


def _crl_edges(items: Iterable[_Loaded]) -> tuple[_dt.datetime, ...]:
    out: list[_dt.datetime] = []
    for item in items:
        out.append(item.last)
        if item.next is not None:
            out.append(item.next + _TICK)
    return tuple(out)
