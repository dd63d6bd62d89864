"""The account-store interface (``Store``) and what is shared by every backend.

``Store`` is the one interface the CLI, the proxy and the demo use. The SQLite backend
(:class:`edgerules.store.sqlite.SQLiteStore`) is the embedded default; a backend on a
shared SQL server (many proxies, one store) implements the same abstract methods. The
shared behaviour lives here:

* **The enforcement state in memory** (:mod:`edgerules.store.live`): trusted CAs per
  hostname, the managed CA and its revoked serials, and two versions, loaded in one
  consistent read and refreshed by a background thread when the store changes (every
  ``poll_interval`` seconds a cheap change token is compared; a backend with push
  notifications wakes it at once; a write through this store object refreshes it before
  returning). :meth:`Store.versions`, :meth:`Store.trust_version`,
  :meth:`Store.revocation_version`, :meth:`Store.validator_for_hostname` and
  :class:`StoreRevocationSource` read only that memory: no query per call, so the proxy
  may call them on every request.
* **Fail static / fail closed** (issue 9.5): when the store cannot be read the last state
  that loaded stays in force (revocations included) and the failure is logged at error
  level and shown by :meth:`Store.health`; with no state ever loaded,
  :meth:`Store.load_state` raises (the proxy refuses to start) and the revocation source
  answers per ``revocation_unknown`` (default ``"revoked"``: fail closed).
* :meth:`Store.issue_certificate`, :meth:`Store.export_pkcs12` and the hostname methods
  (normalisation, "what was removed") — the certificate and hostname work
  (``edgerules.pki``), around the backend's primitives.

A store is bound to one account (``account_id``, default ``"default"``).
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from edgerules.pki import inspect, issuing, keys
from edgerules.pki.bundle import export_pkcs12
from edgerules.pki.crl import CRLRecord
from edgerules.pki.errors import PKIError
from edgerules.pki.hostnames import lookup_key, normalize_hostnames
from edgerules.pki.records import (
    CertificatePage,
    ClientCertificate,
    IssuedCertificate,
    ManagedCA,
    UploadedCA,
)
from edgerules.store import validation
from edgerules.store.errors import StoreError
from edgerules.store.live import LiveState, RawState, StateSnapshot, StoreHealth
from edgerules.store.validation import CRLFields

if TYPE_CHECKING:  # types only: certificates are read by edgerules.pki; the validator is
    # another part, imported only when building one
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

    from edgerules.tls import ClientCertValidator

log = logging.getLogger("edgerules.store")

DEFAULT_ACCOUNT = "default"
DEFAULT_MAX_UPLOADED_CAS = 5  # Cloudflare's BYOCA quota: 5 CAs per account
# How often the in-memory state checks for changes made by other processes (the bound on
# their propagation when the backend has no push notifications).
DEFAULT_REVOCATION_POLL_S = 0.1
REVOCATION_UNKNOWN_CHOICES = ("revoked", "not-revoked")


class Store(ABC):
    """The persistent account store: managed CA, client certificates, BYOCA, hostnames.

    Every mutating method is one transaction. Errors are :class:`~edgerules.errors.PKIError`
    (bad input, unknown id, quota, state) or :class:`~edgerules.errors.StoreError` (the
    storage itself).
    """

    account_id: str
    max_validity_days: int = issuing.MAX_VALIDITY_DAYS

    def __init__(
        self,
        account_id: str = DEFAULT_ACCOUNT,
        *,
        revocation_poll_interval: float = DEFAULT_REVOCATION_POLL_S,
        revocation_unknown: str = "revoked",
    ) -> None:
        if revocation_unknown not in REVOCATION_UNKNOWN_CHOICES:
            raise StoreError(
                f"revocation_unknown must be one of {', '.join(REVOCATION_UNKNOWN_CHOICES)}, "
                f"got {revocation_unknown!r}"
            )
        if (
            isinstance(revocation_poll_interval, bool)
            or not isinstance(revocation_poll_interval, int | float)
            or not revocation_poll_interval >= 0
        ):
            raise StoreError(
                f"revocation_poll_interval must be >= 0 seconds, got {revocation_poll_interval!r}"
            )
        self.account_id = account_id
        self._validators: dict[str, tuple[int, ClientCertValidator]] = {}
        self._validators_lock = threading.Lock()
        self._revocation: StoreRevocationSource | None = None
        self.revocation_unknown = revocation_unknown
        self._live = LiveState(self, float(revocation_poll_interval))

    # -- managed CA -------------------------------------------------------------------

    @abstractmethod
    def managed_ca(self, *, create: bool = True, key_type: str | None = None) -> ManagedCA | None:
        """The account's managed CA, created on first use (``None`` if absent and not
        ``create``). ``key_type`` (``"ecdsa"`` default, ``"rsa"``) applies on creation."""

    # -- client certificates ----------------------------------------------------------

    def issue_certificate(
        self,
        *,
        csr: str | bytes | None = None,
        key_type: str = "ecdsa",
        subject: str | x509.Name | None = None,
        common_name: str | None = None,
        validity_days: int = issuing.DEFAULT_VALIDITY_DAYS,
        now: datetime | None = None,
        before_commit: Callable[[IssuedCertificate], None] | None = None,
    ) -> IssuedCertificate:
        """Sign ``csr`` (its subject is kept) or a freshly generated key (returned once).

        The key and signature work happens before the backend's write transaction.
        ``before_commit`` is called with the signed certificate (and generated key) before
        it is stored: the CLI writes and fsyncs its output files there, so that a crash
        never leaves an active certificate whose key was lost (issue 9.10). If it raises,
        nothing is stored."""
        days = issuing.check_validity_days(validity_days, self.max_validity_days)
        request = issuing.client_request(
            csr=csr, key_type=key_type, subject=subject, common_name=common_name
        )
        ca, ca_cert, ca_key = self._signing_ca()
        for _attempt in range(8):
            cert = issuing.issue_client_certificate(
                ca_cert,
                ca_key,
                request.public_key,
                request.subject,
                validity_days=days,
                serial=self._next_serial(),
                now=now,
            )
            record = inspect.client_certificate_record(
                self._new_certificate_id(), cert, request.csr_pem, ca, days, "active"
            )
            issued = IssuedCertificate(record, request.private_key_pem)
            if before_commit is not None:
                before_commit(issued)
            # A duplicate serial: 2**-159 per pair, practically never, but never silent.
            if self._insert_certificate(record):
                return issued
        raise PKIError("could not allocate a unique serial number")  # pragma: no cover

    @abstractmethod
    def get_certificate(self, cert_id: str) -> ClientCertificate: ...

    @abstractmethod
    def list_certificates(
        self, *, status: str = "all", page: int = 1, per_page: int = 20
    ) -> CertificatePage: ...

    @abstractmethod
    def revoke_certificate(self, cert_id: str) -> ClientCertificate: ...

    @abstractmethod
    def restore_certificate(self, cert_id: str) -> ClientCertificate: ...

    def export_pkcs12(
        self,
        cert_id: str,
        *,
        private_key: str | bytes | None = None,
        password: bytes | None = None,
        legacy: bool = False,
    ) -> bytes:
        """The certificate (+ the managed CA, + ``private_key`` when given) as PKCS#12."""
        return self.pkcs12_bundle(
            self.get_certificate(cert_id), private_key=private_key, password=password,
            legacy=legacy,
        )

    def pkcs12_bundle(
        self,
        record: ClientCertificate,
        *,
        private_key: str | bytes | None = None,
        password: bytes | None = None,
        legacy: bool = False,
    ) -> bytes:
        """:meth:`export_pkcs12` for a record in hand (one not committed yet, too)."""
        ca = self.managed_ca(create=False)
        assert ca is not None  # a certificate exists, so its CA does
        key = None
        if private_key is not None:  # the device's key: edgerules takes it unencrypted
            key = keys.key_from_pem(
                private_key,
                if_encrypted="give it unencrypted (`openssl pkey -in KEY -out PLAIN.key`)",
            )
        return export_pkcs12(
            inspect.load_certificate(record.certificate),
            inspect.load_certificate(ca.certificate),
            key,
            password=password,
            friendly_name=record.common_name or record.id,
            legacy=legacy,
        )

    # -- uploaded CAs (BYOCA) ---------------------------------------------------------

    @abstractmethod
    def upload_ca(
        self,
        pem: str | bytes,
        *,
        name: str | None = None,
        profile: str | None = None,
        allow: Iterable[str] | str = (),
        crl_stale: str = "open",
        force: bool = False,
    ) -> UploadedCA:
        """Store a customer CA. The validator's check runs on the CA itself first
        (:func:`edgerules.store.validation.prepare_ca_upload`): a certificate that is
        not a CA is refused; one through which no client could be verified under its
        ``profile`` (default ``compatible``; ``allow`` names accepted weaknesses) is
        refused unless ``force`` (see :meth:`check_ca_upload` for the warnings).
        ``crl_stale``: what an unknown CRL status means for its clients ("open"/"closed").
        """

    def check_ca_upload(
        self, pem: str | bytes, *, profile: str | None = None, allow: Iterable[str] | str = ()
    ) -> list[str]:
        """Why no client of this CA could be verified under ``profile`` (what
        ``upload_ca(force=True)`` would store it despite); ``PKIError`` for what even
        ``force`` does not accept (not a certificate, not a CA)."""
        return validation.ca_upload_problems(pem, profile, allow)

    @abstractmethod
    def set_ca_settings(
        self,
        ref: str,
        *,
        profile: str | None = None,
        allow: Iterable[str] | str | None = None,
        crl_stale: str | None = None,
    ) -> UploadedCA:
        """Change an uploaded CA's validation settings (``None`` = unchanged)."""

    @abstractmethod
    def list_uploaded_cas(self) -> list[UploadedCA]:
        """Newest first."""

    @abstractmethod
    def get_uploaded_ca(self, ref: str) -> UploadedCA:
        """By id, or by name."""

    @abstractmethod
    def delete_uploaded_ca(self, ref: str) -> UploadedCA: ...

    # -- hostname associations --------------------------------------------------------

    def set_hostname_associations(
        self, hostnames: Iterable[str], mtls_certificate_id: str | None = None
    ) -> list[str]:
        """PUT semantics: the CA's hostname list becomes exactly ``hostnames``
        (``None``/``"managed"`` = the managed CA); returns the normalised list."""
        return self._change_hostnames(
            "replace", normalize_hostnames(hostnames), mtls_certificate_id
        )

    @abstractmethod
    def get_hostname_associations(self, mtls_certificate_id: str | None = None) -> list[str]: ...

    def enable_hostnames(
        self, hostnames: Iterable[str], mtls_certificate_id: str | None = None
    ) -> list[str]:
        """Add ``hostnames`` to the CA's list; returns the whole new list."""
        return self._change_hostnames("add", normalize_hostnames(hostnames), mtls_certificate_id)

    def disable_hostnames(
        self,
        hostnames: Iterable[str],
        mtls_certificate_id: str | None = None,
        *,
        all_cas: bool = False,
    ) -> list[str]:
        """Remove ``hostnames`` from one CA's list, or from every CA with ``all_cas``;
        returns the hostnames that were actually removed."""
        names = normalize_hostnames(hostnames)
        if all_cas:
            return self._remove_hostnames_everywhere(names)
        before = set(self.get_hostname_associations(mtls_certificate_id))
        after = set(self._change_hostnames("remove", names, mtls_certificate_id))
        return sorted(before - after)

    @abstractmethod
    def hostname_table(self) -> list[tuple[str, str, str, str | None]]:
        """Every association as ``(hostname, ca_kind, ca_id, ca_name)``, sorted."""

    @abstractmethod
    def mtls_hostnames(self) -> set[str]: ...

    # -- validation settings per hostname, CRLs (issue 10) -----------------------------

    @abstractmethod
    def set_hostname_profile(
        self, hostnames: Iterable[str], profile: str | None, allow: Iterable[str] | str = ()
    ) -> list[str]:
        """Validate every CA's clients on ``hostnames`` with ``profile`` (and ``allow``),
        overriding each CA's own settings; ``profile=None`` removes the override. Returns
        the normalised hostnames."""

    @abstractmethod
    def hostname_profiles(self) -> dict[str, tuple[str, str]]:
        """Every hostname override as ``hostname -> (profile, allow)``."""

    def add_crl(
        self,
        data: bytes | str | None = None,
        *,
        ca: str | None = None,
        url: str | None = None,
        refresh_seconds: int = 0,
    ) -> CRLRecord:
        """Store a CRL (``data``: PEM or DER) or a CRL source (``url``, fetched by the
        caller — :mod:`edgerules.store.crlfetch` — and refreshed every
        ``refresh_seconds``). ``ca``: the uploaded CA it belongs to (id or name); a CRL
        naming that CA as issuer must be signed by it. Refused with the reason when the
        validator could not apply it (delta, scoped, unhandled critical extension)."""
        if (data is None) == (url is None):
            raise PKIError("give a CRL file or a URL (one of them)")
        if isinstance(refresh_seconds, bool) or not isinstance(refresh_seconds, int) or not (
            0 <= refresh_seconds <= 10 * 365 * 86400
        ):
            raise PKIError(f"refresh interval must be a number of seconds, got {refresh_seconds!r}")
        if url is not None and not url.startswith(("http://", "https://")):
            raise PKIError(f"CRL URL must be http:// or https://, got {url!r}")
        ca_record = self.get_uploaded_ca(ca) if ca is not None else None
        fields = (
            validation.prepare_crl(data, ca_record.certificates if ca_record else None)
            if data is not None
            else None
        )
        return self._insert_crl(fields, ca_record.id if ca_record else None, url or "",
                                refresh_seconds)

    def replace_crl(self, ref: str, data: bytes | str | None, *, error: str = "") -> CRLRecord:
        """Record a fetch of a URL CRL: the new CRL (checked as :meth:`add_crl` checks
        one; a CRL older than the stored one — lower cRLNumber, else earlier thisUpdate —
        is refused: no replay of old CRLs), or ``error`` (the stored CRL is kept)."""
        record = self.get_crl(ref)
        fields = None
        if data is not None:
            ca_pem = self.get_uploaded_ca(record.ca_id).certificates if record.ca_id else None
            try:
                fields = validation.prepare_crl(data, ca_pem)
                if record.this_update and _older(fields, record):
                    raise PKIError("the fetched CRL is older than the stored one (ignored)")
            except PKIError as exc:
                fields, error = None, str(exc)
        return self._replace_crl(record.id, fields, error)

    @abstractmethod
    def list_crls(self) -> list[CRLRecord]:
        """Oldest first."""

    @abstractmethod
    def get_crl(self, ref: str) -> CRLRecord: ...

    @abstractmethod
    def remove_crl(self, ref: str) -> CRLRecord: ...

    @abstractmethod
    def _insert_crl(
        self, fields: CRLFields | None, ca_id: str | None, url: str, refresh_seconds: int
    ) -> CRLRecord: ...

    @abstractmethod
    def _replace_crl(self, crl_id: str, fields: CRLFields | None, error: str) -> CRLRecord:
        """Store a fetch outcome (``fields`` None: only the error and the time); bumps
        the trust counter when the CRL changed."""

    # -- primitives the shared code below needs ---------------------------------------

    backend_name: str = "store"

    @abstractmethod
    def counters(self) -> tuple[int, int]:
        """``(trust, revocation)`` counters read from storage now (diagnostics, tests)."""

    @abstractmethod
    def _change_token(self) -> object:
        """Cheap: a value that changes whenever the enforcement state may have changed
        (checked every poll interval); also where a backend notices a replaced file."""

    @abstractmethod
    def _load_state(self, previous: RawState | None = None) -> RawState:
        """The enforcement state in one consistent read (see :class:`RawState`)."""

    @abstractmethod
    def check_integrity(self) -> None:
        """Raise :class:`StoreError` when the storage is damaged or unreachable (the
        proxy's start-up check)."""

    @abstractmethod
    def _signing_ca(self) -> tuple[ManagedCA, x509.Certificate, CertificateIssuerPrivateKeyTypes]:
        """The managed CA (created on first use), its certificate and private key."""

    @abstractmethod
    def _new_certificate_id(self) -> str: ...

    def _next_serial(self) -> int:
        """The serial of the next certificate (backends make it unique and monotonic)."""
        return issuing.random_serial()

    @abstractmethod
    def _insert_certificate(self, record: ClientCertificate) -> bool:
        """Store a newly issued certificate; ``False`` (nothing stored) when its serial or
        id is already taken."""

    @abstractmethod
    def _change_hostnames(
        self, mode: str, names: list[str], mtls_certificate_id: str | None
    ) -> list[str]:
        """One transaction on one CA's hostname list (``mode``: ``replace``, ``add`` or
        ``remove`` the normalised ``names``); returns the list afterwards."""

    @abstractmethod
    def _remove_hostnames_everywhere(self, names: list[str]) -> list[str]:
        """Remove the normalised ``names`` from every CA; returns those removed, sorted."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- shared behaviour -------------------------------------------------------------

    def revocation_source(self) -> StoreRevocationSource:
        """The ``RevocationSource`` backed by this store (one per store)."""
        if self._revocation is None:
            self._revocation = StoreRevocationSource(self)
        return self._revocation

    # -- the in-memory enforcement state ----------------------------------------------

    @property
    def revocation_poll_interval(self) -> float:
        """Seconds between checks for changes made by other processes (0: check on every
        read, synchronously). The name predates trust changes being polled too."""
        return self._live.poll_interval

    @revocation_poll_interval.setter
    def revocation_poll_interval(self, value: float) -> None:
        self._live.poll_interval = float(value)
        self._live.wake()

    def load_state(self) -> StateSnapshot:
        """Load the enforcement state now if none is loaded (and start keeping it fresh);
        raises :class:`StoreError` when it cannot be read — a proxy that never loaded
        state must not start."""
        return self._live.require()

    def health(self) -> StoreHealth:
        """Reachable?, last successful sync, state versions (for /readyz and metrics)."""
        return self._live.health()

    def versions(self) -> tuple[int, int]:
        """``(trust_version, revocation_version)`` of the state in memory: they grow
        whenever the state changes (including a replaced store); no query."""
        snap = self._live.require()
        return snap.trust_version, snap.revocation_version

    def trust_version(self) -> int:
        return self.versions()[0]

    def revocation_version(self) -> int:
        return self.versions()[1]

    def trusted_cas_for(self, hostname: str) -> list[x509.Certificate]:
        """The CA certificates associated with a normalised hostname: uploaded ones newest
        first, then the managed CA; ``[]`` when mTLS is not enabled there."""
        return list(self._live.require().hostnames.get(hostname, ()))

    def _changed(self) -> None:
        """After a committed write: this store's readers see it before the call returns."""
        if self._live.active:
            self._live.refresh(force=True)

    def close_live(self) -> None:
        self._live.stop()

    def validator_for_hostname(self, hostname: str | bytes | None) -> ClientCertValidator | None:
        """The validator for connections to ``hostname`` (the TLS SNI), or ``None`` when
        mTLS is not enabled there — then the proxy must not request a certificate and the
        request gets ``cert_presented = false``.

        SNI, not the HTTP ``Host``, selects the configuration (our choice; Cloudflare does not
        say which): the request for
        a certificate happens during the handshake. Hostnames are compared in normalised
        form (lower case, no trailing dot). Cached per hostname; a cached validator is
        reused while the store's ``trust`` counter is unchanged.
        """
        key = lookup_key(hostname)
        if key is None:
            return None
        snap = self._live.require()
        version = snap.trust_version
        with self._validators_lock:
            cached = self._validators.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        entries = snap.raw.trust_entries.get(key, ())
        if not entries:
            validator = None
        else:
            # every CA with its own profile (a hostname override replaces them), every
            # stored CRL (each applies to the issuer it names and verifies against), all
            # from the one consistent state in memory
            validator = validation.build_validator(
                entries,
                snap.raw.crl_pems,
                host_profile=snap.raw.host_profiles.get(key),
                revocation=self.revocation_source(),
                trust_version=version,
            )
        with self._validators_lock:
            if len(self._validators) > 4096:  # bounded: SNI values come from clients
                self._validators.clear()
            if validator is not None:
                self._validators[key] = (version, validator)
            else:
                self._validators.pop(key, None)
        return validator


def _older(new: CRLFields, old: CRLRecord) -> bool:
    if new.crl_number and old.crl_number:
        return int(new.crl_number) < int(old.crl_number)
    return new.this_update < old.this_update


class StoreRevocationSource:
    """Revocation state of managed-CA certificates, from the store's state in memory.

    ``version`` is :meth:`Store.revocation_version` (it moves with every revoke/restore
    and every replaced store). ``is_revoked`` matches the issuer by the managed CA's
    public key, not by the exact CA certificate (issue 9.11: an uploaded copy of the
    managed CA must not hide revocations). Never raises; fails closed: with no state ever
    loaded (or an unexpected error) the answer is the store's ``revocation_unknown``
    (default ``"revoked"``).
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    @property
    def version(self) -> int:
        snap = self._store._live.snapshot()
        return -1 if snap is None else snap.revocation_version

    def is_revoked(self, leaf: x509.Certificate, issuer: x509.Certificate) -> bool:
        """True when ``leaf`` was issued with the managed CA's key and is revoked (or
        pending revocation). Certificates of other CAs are never revoked here (Cloudflare
        has no revocation for uploaded CAs; their CRLs are the validator's)."""
        try:
            snap = self._store._live.snapshot()
            if snap is None:
                return self._unknown("no revocation state could be loaded")
            raw = snap.raw
            if raw.managed_ca is None:
                return False
            if issuer != raw.managed_ca and keys.public_key_der(issuer) != raw.managed_key:
                return False
            return leaf.serial_number in raw.revoked
        except Exception as exc:  # never raise into the validator; fail closed
            return self._unknown(f"{type(exc).__name__}: {exc}")

    def _unknown(self, why: str) -> bool:
        revoked = self._store.revocation_unknown == "revoked"
        log.error(
            "revocation status unknown (%s): treated as %s (revocation_unknown=%r)",
            why,
            "REVOKED" if revoked else "not revoked",
            self._store.revocation_unknown,
        )
        return revoked
