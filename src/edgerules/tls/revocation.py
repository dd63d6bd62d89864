"""Revocation sources: the ``RevocationSource`` protocol, a serial set, and CRLs.

Owns: how "is this verified leaf revoked?" is answered. Revocation is only asked about a
*verified* leaf (spec mtls.md §3.2 step 5); a revoked certificate keeps
``verified = True`` and gets ``revoked = True``.

Invariants:

* ``version`` changes whenever the answer for some certificate may change; the
  validator's cache key includes it, so a revocation is seen on the next ``validate``.
* ``is_revoked`` never raises (a broken source answers "not revoked").

CRL policy (issue 3 point 3; Cloudflare itself does no CRL checks for uploaded CAs):

* A CRL is used for a leaf only when its issuer name equals the leaf's direct issuer's
  subject **and** its signature verifies with that issuer's public key.
* Freshness: a CRL whose ``next_update`` is in the past, or whose ``last_update`` is in
  the future, at the validation time is *stale*.
* [U] decision: a stale or badly signed CRL is treated as **unknown, not revoked** (fail
  open). Rationale: ``cert_revoked`` is a descriptive field that rules combine with
  ``cert_verified``; turning an operator's late CRL refresh into "every certificate is
  revoked" would lock out all clients. Stale CRLs are reported by
  :meth:`CRLRevocation.problems` so operators can alert on them.
"""

from __future__ import annotations

import datetime as _dt
import threading
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from cryptography import x509

__all__ = ["CRLRevocation", "RevocationSource", "SerialRevocation", "load_crl"]

_TICK = _dt.timedelta(microseconds=1)  # the first instant after ``next_update``


@runtime_checkable
class RevocationSource(Protocol):
    """Anything that says whether a verified leaf is revoked."""

    version: int

    def is_revoked(self, leaf: x509.Certificate, issuer: x509.Certificate) -> bool: ...


class SerialRevocation:
    """A mutable set of revoked serial numbers (tests, simple deployments).

    ``issuer`` optionally restricts the set to leaves issued by one CA subject."""

    def __init__(self, serials: Iterable[int] = (), *, issuer: x509.Name | None = None) -> None:
        self._serials = set(serials)
        self._issuer = issuer
        self._lock = threading.Lock()
        self.version = 0

    def add(self, serial: int) -> None:
        with self._lock:
            self._serials.add(serial)
            self.version += 1

    def discard(self, serial: int) -> None:
        with self._lock:
            self._serials.discard(serial)
            self.version += 1

    def is_revoked(self, leaf: x509.Certificate, issuer: x509.Certificate) -> bool:
        try:
            if self._issuer is not None and leaf.issuer != self._issuer:
                return False
            return leaf.serial_number in self._serials
        except Exception:
            return False


def load_crl(data: x509.CertificateRevocationList | bytes | str) -> x509.CertificateRevocationList:
    """A CRL from an object, PEM text/bytes or DER bytes (raises ``ValueError``)."""
    if isinstance(data, x509.CertificateRevocationList):
        return data
    if isinstance(data, str):
        data = data.encode("ascii")
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


class CRLRevocation:
    """Revocation from CRLs (signature checked against the issuing CA, freshness checked
    at the validation time). Immutable: build a new one to replace the CRLs."""

    def __init__(
        self, crls: Iterable[x509.CertificateRevocationList | bytes | str], *, version: int = 0
    ) -> None:
        loaded: list[x509.CertificateRevocationList] = []
        self.decode_problems: list[str] = []
        for item in crls:
            try:
                loaded.append(load_crl(item))
            except Exception as exc:  # reported and skipped, never fatal
                self.decode_problems.append(f"a CRL cannot be decoded and is skipped: {exc}")
        self._crls: tuple[x509.CertificateRevocationList, ...] = tuple(loaded)
        self._by_issuer: dict[x509.Name, list[x509.CertificateRevocationList]] = {}
        for crl in self._crls:
            self._by_issuer.setdefault(crl.issuer, []).append(crl)
        # (id of CRL, issuer DER) -> signature valid?  Both objects live as long as we do.
        self._sig_ok: dict[tuple[int, bytes], bool] = {}
        self._edges = _crl_edges(self._crls)
        self.version = version

    def __bool__(self) -> bool:
        return bool(self._crls)

    @property
    def crls(self) -> tuple[x509.CertificateRevocationList, ...]:
        return self._crls

    def _signature_ok(self, crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
        key = (id(crl), issuer.tbs_certificate_bytes)
        ok = self._sig_ok.get(key)
        if ok is None:
            try:
                ok = bool(crl.is_signature_valid(issuer.public_key()))  # type: ignore[arg-type]
            except Exception:
                ok = False
            self._sig_ok[key] = ok
        return ok

    @staticmethod
    def _fresh(crl: x509.CertificateRevocationList, now: _dt.datetime) -> bool:
        try:
            if crl.last_update_utc > now:
                return False
            nxt = crl.next_update_utc
            return nxt is None or now <= nxt
        except Exception:
            return False

    def usable_crls(
        self, issuer: x509.Certificate, now: _dt.datetime
    ) -> list[x509.CertificateRevocationList]:
        """The CRLs that speak for ``issuer`` at ``now`` (right name, good signature, fresh)."""
        return [
            crl
            for crl in self._by_issuer.get(issuer.subject, ())
            if self._signature_ok(crl, issuer) and self._fresh(crl, now)
        ]

    def is_revoked(
        self,
        leaf: x509.Certificate,
        issuer: x509.Certificate,
        now: _dt.datetime | None = None,
    ) -> bool:
        when = now or _dt.datetime.now(_dt.UTC)
        try:
            if leaf.issuer != issuer.subject:
                return False
            for crl in self.usable_crls(issuer, when):
                if crl.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None:
                    return True
        except Exception:
            return False
        return False

    def problems(self, issuers: Iterable[x509.Certificate], now: _dt.datetime) -> list[str]:
        """Human-readable reasons why a CRL for one of ``issuers`` is ignored."""
        out: list[str] = []
        for issuer in issuers:
            for crl in self._by_issuer.get(issuer.subject, ()):
                if not self._signature_ok(crl, issuer):
                    out.append(f"CRL of {issuer.subject.rfc4514_string()}: bad signature")
                elif not self._fresh(crl, now):
                    out.append(f"CRL of {issuer.subject.rfc4514_string()}: stale")
        return out

    @property
    def edges(self) -> tuple[_dt.datetime, ...]:
        """Every instant at which some CRL becomes usable (``last_update``) or stale (just
        after ``next_update``): a result computed with these CRLs holds only between two
        consecutive edges, in either direction of time."""
        return self._edges


def _crl_edges(crls: Iterable[x509.CertificateRevocationList]) -> tuple[_dt.datetime, ...]:
    out: list[_dt.datetime] = []
    for crl in crls:
        try:
            out.append(crl.last_update_utc)
            if crl.next_update_utc is not None:
                out.append(crl.next_update_utc + _TICK)
        except Exception:
            continue  # unreadable dates: never fresh (``_fresh``), so no edge
    return tuple(out)
