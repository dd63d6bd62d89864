"""The account-store interface (``Store``) and what is shared by every backend.

``Store`` is the one interface the CLI, the proxy and the demo use. The SQLite backend
(:class:`edgerules.store.sqlite.SQLiteStore`) is the embedded default; a backend on a
shared SQL server (many proxies, one store) implements the same abstract methods. The
shared behaviour lives here:

* :meth:`Store.validator_for_hostname` — the per-SNI trust decision, cached per hostname
  and keyed by the store's ``trust`` counter, so changes made by another process (the
  CLI) are picked up by the next connection without a restart;
* :class:`StoreRevocationSource` — the validator's ``RevocationSource`` (``tls/revocation.py``):
  ``version`` is the store's ``revocation`` counter (bumped in the same transaction as a
  revoke/restore), ``is_revoked`` answers only for leaves issued by the managed CA
  (spec mtls.md §3.2 step 5: no revocation for uploaded CAs);
* :meth:`Store.revocation_version` — that counter as the validators read it on every
  ``validate()`` (it is part of their cache key), without a query each time: a
  revoke/restore made through this store object updates it at once; one made by another
  process (or store object) is seen when the counter is next read from storage, at most
  ``revocation_poll_interval`` seconds (default 0.25; 0 = read on every call) later;
* :meth:`Store.issue_certificate`, :meth:`Store.export_pkcs12` and the hostname methods
  (normalisation, "what was removed") — the certificate and hostname work
  (``edgerules.pki``), around the backend's primitives.

A store is bound to one account (``account_id``, default ``"default"``).
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from edgerules.errors import RuleError
from edgerules.pki import inspect, issuing, keys
from edgerules.pki.bundle import export_pkcs12
from edgerules.pki.errors import PKIError
from edgerules.pki.hostnames import lookup_key, normalize_hostnames
from edgerules.pki.records import (
    CertificatePage,
    ClientCertificate,
    IssuedCertificate,
    ManagedCA,
    UploadedCA,
)
from edgerules.store.errors import StoreError

if TYPE_CHECKING:  # types only: certificates are read by edgerules.pki; the validator is
    # another part, imported only when building one
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

    from edgerules.tls import ClientCertValidator

DEFAULT_ACCOUNT = "default"
DEFAULT_MAX_UPLOADED_CAS = 5  # spec §6: 5 CAs per account
DEFAULT_REVOCATION_POLL_S = 0.25  # staleness bound for revocations by other processes


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
    ) -> None:
        if (
            isinstance(revocation_poll_interval, bool)
            or not isinstance(revocation_poll_interval, int | float)
            or not revocation_poll_interval >= 0
        ):
            raise StoreError(
                f"revocation_poll_interval must be >= 0 seconds, got {revocation_poll_interval!r}"
            )
        self.account_id = account_id
        self.revocation_poll_interval = float(revocation_poll_interval)
        self._validators: dict[str, tuple[int, ClientCertValidator]] = {}
        self._validators_lock = threading.Lock()
        self._revocation: StoreRevocationSource | None = None
        # (revocation counter, time.monotonic() of the read); -1: never read
        self._revocation_seen: tuple[int, float] = (-1, 0.0)
        self._revocation_seen_lock = threading.Lock()

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
                serial=issuing.random_serial(),
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
    def upload_ca(self, pem: str | bytes, *, name: str | None = None) -> UploadedCA: ...

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

    # -- primitives the shared code below needs ---------------------------------------

    @abstractmethod
    def versions(self) -> tuple[int, int]:
        """``(trust_version, revocation_version)`` — the store's counters, read now."""

    @abstractmethod
    def trusted_cas_for(self, hostname: str) -> list[x509.Certificate]:
        """The CA certificates associated with a normalised hostname: uploaded ones newest
        first, then the managed CA; ``[]`` when mTLS is not enabled there."""

    @abstractmethod
    def revoked_serials(self) -> tuple[int, x509.Certificate | None, frozenset[int]]:
        """``(revocation_version, managed CA certificate, revoked serials)`` read in one
        snapshot."""

    @abstractmethod
    def _signing_ca(self) -> tuple[ManagedCA, x509.Certificate, CertificateIssuerPrivateKeyTypes]:
        """The managed CA (created on first use), its certificate and private key."""

    @abstractmethod
    def _new_certificate_id(self) -> str: ...

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

    def trust_version(self) -> int:
        return self.versions()[0]

    def revocation_version(self) -> int:
        """The ``revocation`` counter, read from storage at most every
        ``revocation_poll_interval`` seconds (see the module docstring)."""
        version, read_at = self._revocation_seen
        if version >= 0 and time.monotonic() - read_at < self.revocation_poll_interval:
            return version
        with self._revocation_seen_lock:
            version = self.versions()[1]
            self._revocation_seen = (max(version, self._revocation_seen[0]), time.monotonic())
            return self._revocation_seen[0]

    def _revocation_moved(self, version: int) -> None:
        """Record a counter value seen by a write or a snapshot (the counter only grows),
        so that this store's validators see the change at once."""
        with self._revocation_seen_lock:
            seen, read_at = self._revocation_seen
            if version > seen:
                self._revocation_seen = (version, read_at)

    def validator_for_hostname(self, hostname: str | bytes | None) -> ClientCertValidator | None:
        """The validator for connections to ``hostname`` (the TLS SNI), or ``None`` when
        mTLS is not enabled there — then the proxy must not request a certificate and the
        request gets ``cert_presented = false`` (spec §3.1).

        [U] SNI, not the HTTP ``Host``, selects the configuration (spec §2): the request for
        a certificate happens during the handshake. Hostnames are compared in normalised
        form (lower case, no trailing dot). Cached per hostname; a cached validator is
        reused while the store's ``trust`` counter is unchanged.
        """
        key = lookup_key(hostname)
        if key is None:
            return None
        version = self.trust_version()
        with self._validators_lock:
            cached = self._validators.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        trusted = self.trusted_cas_for(key)
        if not trusted:
            validator = None
        else:
            from edgerules.tls import ClientCertValidator

            validator = ClientCertValidator(
                trusted, revocation=self.revocation_source(), trust_version=version
            )
        with self._validators_lock:
            if len(self._validators) > 4096:  # bounded: SNI values come from clients
                self._validators.clear()
            if validator is not None:
                self._validators[key] = (version, validator)
            else:
                self._validators.pop(key, None)
        return validator


class StoreRevocationSource:
    """Revocation state of managed-CA certificates, read from the store.

    ``version`` is :meth:`Store.revocation_version`: a revoke through the same store is
    visible at the next validation, one by another process within the store's
    ``revocation_poll_interval``. The set of revoked serials is reloaded only when that
    counter moves.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._loaded_version = -1
        self._ca: x509.Certificate | None = None
        self._revoked: frozenset[int] = frozenset()

    @property
    def version(self) -> int:
        # Never raise into the validator (tls/revocation.py: a broken source answers "not
        # revoked"); if the store is unreadable for a moment, keep the last version seen.
        try:
            return self._store.revocation_version()
        except RuleError:
            return self._loaded_version

    def _refresh(self) -> tuple[x509.Certificate | None, frozenset[int]]:
        version = self.version
        with self._lock:
            if version != self._loaded_version or self._ca is None:
                self._loaded_version, self._ca, self._revoked = self._store.revoked_serials()
                self._store._revocation_moved(self._loaded_version)
            return self._ca, self._revoked

    def is_revoked(self, leaf: x509.Certificate, issuer: x509.Certificate) -> bool:
        """True when ``leaf`` was issued by the managed CA and is revoked (or pending
        revocation). Certificates of uploaded CAs are never revoked (spec §6)."""
        try:
            ca, revoked = self._refresh()
            if ca is None or issuer != ca:
                return False
            return leaf.serial_number in revoked
        except Exception:  # fail open, like every RevocationSource
            return False
