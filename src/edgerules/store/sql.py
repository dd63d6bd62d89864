"""The account store over SQL: everything SQLite and PostgreSQL share.

Owns the SQL of every operation (managed CA, client certificates, uploaded CAs, hostname
associations, counters, the enforcement state's read); the backends
(:mod:`edgerules.store.sqlite`, :mod:`edgerules.store.postgres`) own connections,
transactions and their storage's quirks. Statements use ``?`` placeholders and the SQL
both databases accept (``ON CONFLICT``, ``RETURNING``, ``coalesce``); a backend whose
driver wants ``%s`` translates in its connection wrapper.

Invariants (both backends):

* Every change is one transaction, including the counter bump that announces it (so a
  reader never sees new state under an old version), taken with the write lock up front
  (SQLite ``BEGIN IMMEDIATE``; PostgreSQL row locks on the counters row).
* Crypto work (key generation, signing) happens *outside* write transactions.
* No driver or cryptography exception escapes: they become ``StoreError``/``PKIError``.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from edgerules.pki import inspect, issuing, keys
from edgerules.pki.errors import PKIError
from edgerules.pki.records import (
    REVOKED_STATUSES,
    STATUSES,
    CertificatePage,
    ClientCertificate,
    ManagedCA,
    UploadedCA,
)
from edgerules.store.base import Store
from edgerules.store.errors import StoreError
from edgerules.store.live import RawState
from edgerules.store.sql_validation import ValidationSQL
from edgerules.store.state import build_raw_state
from edgerules.store.validation import prepare_ca_upload

if TYPE_CHECKING:  # certificates are parsed and read by edgerules.pki only
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

log = logging.getLogger("edgerules.store")

MAX_PER_PAGE = 1000
# Pages past this are refused: the row offset must fit a 64-bit INTEGER.
MAX_PAGE = 1_000_000_000
_CERT_COLUMNS = (
    "id, certificate, csr, ca_id, common_name, organization, organizational_unit, country, "
    "state, location, serial_number, ski, fingerprint_sha256, signature, issued_on, "
    "expires_on, validity_days, status, subject"
)
_UPLOADED_COLUMNS = (
    "id, name, certificates, issuer, subject, serial_number, signature, ski, "
    "fingerprint_sha256, expires_on, uploaded_on, type, profile, allow, crl_stale"
)


def _new_id() -> str:
    """32 lower-case hex characters (Cloudflare's API: a "32-char identifier")."""
    return uuid.uuid4().hex


def _normalize_id(ref: str, what: str) -> str:
    """Accept the 32-hex form, the dashed UUID form and any case."""
    ident = ref.strip().lower().replace("-", "")
    if len(ident) != 32 or any(c not in "0123456789abcdef" for c in ident):
        raise PKIError(f"invalid {what} id {ref!r}: expected 32 hex characters")
    return ident


def _short(value: object) -> str:
    """``repr(value)`` for a message, cut to 40 characters (a 5000-digit int cannot even
    be converted to text)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"a {value.bit_length()}-bit number" if value > 0 else "a huge negative number"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class SQLStore(ValidationSQL, Store):
    """The shared SQL implementation; a backend provides ``_read()``/``_write()`` (context
    managers yielding a connection with ``execute``/``executemany``), ``close()``,
    ``check_integrity()`` and its attributes (``_passphrase``, ``ca_key_type``,
    ``max_uploaded_cas``, ``read_only``, ``_generation``, ``_pem_cache``, ``_ca_key``,
    ``_ca_cert``)."""

    read_only: bool = False
    _generation: int = 0

    def _secure_files(self) -> None:
        """Backend hook before a CA private key is written (SQLite: file modes)."""

    def schema_version(self) -> int:
        with self._read() as c:
            return int(c.execute("SELECT version FROM schema_version").fetchone()[0])

    def _bump(self, c: Any, name: str) -> int:
        """Increment counter ``name`` in the current transaction; returns its new value.
        The row lock this takes also orders concurrent writers (serials, versions)."""
        (value,) = c.execute(
            "INSERT INTO counters (account_id, name, value) VALUES (?, ?, 1) "
            "ON CONFLICT (account_id, name) DO UPDATE SET value = counters.value + 1 "
            "RETURNING value",
            (self.account_id, name),
        ).fetchone()
        if name in ("trust", "revocation"):
            self._announce(c, name)
        return int(value)

    def _announce(self, c: Any, name: str) -> None:
        """Backend hook: tell other processes the state changed, delivered at commit
        (PostgreSQL: ``NOTIFY``); SQLite has no push, others poll the counters."""

    def _next_serial(self) -> int:
        """A serial for a new certificate: unique per CA and monotonic across every
        writer of the store (a counter row, bumped in its own short transaction), with
        96 random bits below it (:func:`edgerules.pki.issuing.sequenced_serial`)."""
        with self._write() as c:
            n = self._bump(c, "serial")
        return issuing.sequenced_serial(n)

    def _read_counters(self, c: Any) -> tuple[int, int]:
        values = dict(
            c.execute(
                "SELECT name, value FROM counters WHERE account_id = ?", (self.account_id,)
            ).fetchall()
        )
        return int(values.get("trust", 0)), int(values.get("revocation", 0))

    def counters(self) -> tuple[int, int]:
        with self._read() as c:
            return self._read_counters(c)

    def _change_token(self) -> object:
        self._before_state_read()
        with self._read() as c:
            return (self._generation, *self._read_counters(c))

    def _before_state_read(self) -> None:
        """Backend hook run before every state read (SQLite: notice a replaced file)."""

    def _load_state(self, previous: RawState | None = None) -> RawState:
        """One consistent read. With ``previous`` (the state this process holds, from the
        same storage and not newer), only what changed is read: the hostname map when
        the trust counter moved, and the certificates whose status changed after the
        revocation counter ``previous`` saw (``status_version``) — O(changes), not
        O(revoked serials). Revocation bumps are serialised by the counters row lock, so
        a snapshot that sees counter N sees every change numbered <= N."""
        self._before_state_read()
        with self._read() as c:
            trust, revocation = self._read_counters(c)
            incremental = (
                previous is not None
                and previous.generation == (self.backend_name, self._generation)
                and trust >= previous.trust_counter
                and revocation >= previous.revocation_counter
            )
            if incremental and previous is not None:
                return self._load_changes(c, previous, trust, revocation)
            small = self._read_small_state(c)
            serials = c.execute(
                "SELECT serial_number FROM client_certificates WHERE account_id = ? "
                f"AND status IN ({', '.join('?' * len(REVOKED_STATUSES))})",
                [self.account_id, *sorted(REVOKED_STATUSES)],
            ).fetchall()
        return build_raw_state(
            token=(self._generation, trust, revocation),
            generation=(self.backend_name, self._generation),
            trust=trust,
            revocation=revocation,
            revoked=serials,
            cache=self._pem_cache,
            **small,
        )

    def _read_small_state(self, c: Any) -> dict[str, Any]:
        """Everything but the revoked serials: trusted CAs per hostname (with their
        validation settings), the managed CA, hostname profiles, CRLs — small, read whole
        on every change."""
        rows = c.execute(
            "SELECT h.hostname, coalesce(u.certificates, m.certificate), "
            "u.profile, u.allow, u.crl_stale "
            "FROM hostname_associations h "
            "LEFT JOIN uploaded_cas u ON h.ca_kind = 'uploaded' AND u.id = h.ca_id "
            "LEFT JOIN managed_cas m ON h.ca_kind = 'managed' AND m.id = h.ca_id "
            "WHERE h.account_id = ? "
            "ORDER BY h.hostname, h.ca_kind DESC, u.seq DESC",
            (self.account_id,),
        ).fetchall()
        managed = c.execute(
            "SELECT certificate FROM managed_cas WHERE account_id = ?", (self.account_id,)
        ).fetchone()
        host_profiles = c.execute(
            "SELECT hostname, profile, allow FROM hostname_settings WHERE account_id = ?",
            (self.account_id,),
        ).fetchall()
        crls = c.execute(
            "SELECT crl FROM crls WHERE account_id = ? AND crl != '' ORDER BY seq",
            (self.account_id,),
        ).fetchall()
        return {
            "host_rows": rows,
            "managed_pem": None if managed is None else managed[0],
            "host_profiles": host_profiles,
            "crl_rows": crls,
        }

    def _load_changes(self, c: Any, previous: RawState, trust: int, revocation: int) -> RawState:
        """The small parts whole, the revoked serials as a delta (see :meth:`_load_state`)."""
        revoked = previous.revoked
        if revocation != previous.revocation_counter:
            changed = c.execute(
                "SELECT serial_number, status FROM client_certificates "
                "WHERE account_id = ? AND status_version > ?",
                (self.account_id, previous.revocation_counter),
            ).fetchall()
            now_revoked = {int(s) for s, st in changed if st in REVOKED_STATUSES}
            now_active = {int(s) for s, st in changed if st not in REVOKED_STATUSES}
            revoked = frozenset((revoked - now_active) | now_revoked)
        fresh = build_raw_state(
            token=(self._generation, trust, revocation),
            generation=(self.backend_name, self._generation),
            trust=trust,
            revocation=revocation,
            revoked=(),
            cache=self._pem_cache,
            **self._read_small_state(c),
        )
        return dataclasses.replace(fresh, revoked=revoked)

    # -- managed CA -------------------------------------------------------------------

    def managed_ca(self, *, create: bool = True, key_type: str | None = None) -> ManagedCA | None:
        row = self._managed_row()
        if row is None and create:
            row = self._create_managed_ca(key_type or self.ca_key_type)
        return None if row is None else self._managed_from_row(row)

    def _managed_row(self) -> tuple[Any, ...] | None:
        with self._read() as c:
            return c.execute(
                "SELECT id, name, certificate, key_type, key_encrypted FROM managed_cas "
                "WHERE account_id = ?",
                (self.account_id,),
            ).fetchone()

    def _create_managed_ca(self, key_type: str) -> tuple[Any, ...]:
        self._secure_files()
        key = keys.generate_key(key_type)
        cert = issuing.create_managed_ca(key)
        key_pem = keys.key_to_pem(key, self._passphrase)
        ca_id = _new_id()
        with self._write() as c:
            # Another process may have created it meanwhile: the first one wins and ours
            # is discarded (its key was never stored).
            c.execute(
                "INSERT INTO managed_cas (id, account_id, name, certificate, private_key, "
                "key_encrypted, key_type, created_on) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (account_id) DO NOTHING",
                (
                    ca_id,
                    self.account_id,
                    issuing.managed_ca_name(self.account_id),
                    inspect.cert_pem(cert),
                    key_pem,
                    int(self._passphrase is not None),
                    key_type,
                    inspect.rfc3339(issuing.utcnow()),
                ),
            )
            self._bump(c, "trust")
            row = c.execute(
                "SELECT id, name, certificate, key_type, key_encrypted FROM managed_cas "
                "WHERE account_id = ?",
                (self.account_id,),
            ).fetchone()
        self._changed()  # committed: this store's readers see it now
        return row

    def _managed_from_row(self, row: tuple[Any, ...]) -> ManagedCA:
        ca_id, name, pem, key_type, encrypted = row
        return inspect.managed_ca_record(
            self._managed_cert(ca_id, pem),
            ca_id=ca_id,
            account_id=self.account_id,
            name=name,
            pem=pem,
            key_type=key_type,
            key_encrypted=bool(encrypted),
        )

    def _managed_cert(self, ca_id: str, pem: str) -> x509.Certificate:
        if self._ca_cert is None or self._ca_cert[0] != ca_id:
            self._ca_cert = (ca_id, inspect.load_certificate(pem))
        return self._ca_cert[1]

    def _signing_ca(self) -> tuple[ManagedCA, x509.Certificate, CertificateIssuerPrivateKeyTypes]:
        ca = self.managed_ca(create=True)
        assert ca is not None
        cert = self._managed_cert(ca.id, ca.certificate)
        if self._ca_key is None or self._ca_key[0] != ca.id:
            with self._read() as c:
                (key_pem, encrypted) = c.execute(
                    "SELECT private_key, key_encrypted FROM managed_cas WHERE id = ?", (ca.id,)
                ).fetchone()
            key = keys.key_from_pem(
                key_pem,
                self._passphrase,
                if_encrypted="set EDGERULES_STORE_PASSPHRASE (or pass the passphrase)",
            )
            if self._passphrase is not None and (
                not encrypted or (keys.kdf_iterations(key_pem) or 0) < keys.KDF_ITERATIONS
            ):
                self._encrypt_ca_key(ca.id, key, key_pem)
            self._ca_key = (ca.id, key)  # type: ignore[assignment]
        return ca, cert, self._ca_key[1]  # type: ignore[index]

    def _encrypt_ca_key(
        self, ca_id: str, key: CertificateIssuerPrivateKeyTypes, old_pem: str
    ) -> None:
        """A key stored in clear before a passphrase was configured, or encrypted with an
        older, weaker KDF (2,048 PBKDF2 rounds): with a passphrase the key is re-encrypted
        on first use (secure_delete overwrites the old copy's page content). Only if it is
        still the key that was read (another process may have re-encrypted it)."""
        if self.read_only:
            log.warning(
                "the managed CA key in %s is %s; open the store read-write once with the "
                "passphrase (e.g. `edgerules ca rekey`) to re-encrypt it",
                self.path,
                "stored in clear" if "ENCRYPTED" not in old_pem else "encrypted with a weak KDF",
            )
            return
        self._secure_files()
        key_pem = keys.key_to_pem(key, self._passphrase)
        with self._write() as c:
            c.execute(
                "UPDATE managed_cas SET private_key = ?, key_encrypted = 1 "
                "WHERE id = ? AND private_key = ?",
                (key_pem, ca_id, old_pem),
            )

    def rekey_ca(self, new_passphrase: str | bytes) -> ManagedCA:
        """``edgerules ca rekey``: re-encrypt the managed CA's key under ``new_passphrase``
        (the current one — or none for a key in clear — is needed to read it). The key
        itself does not change, so issued certificates stay valid."""
        if isinstance(new_passphrase, str):
            new_passphrase = new_passphrase.encode("utf-8")
        if not new_passphrase:
            raise StoreError("the new passphrase is empty")
        if self.managed_ca(create=False) is None:
            raise PKIError(f"no managed CA for account {self.account_id!r}: nothing to rekey")
        ca, _cert, key = self._signing_ca()
        self._secure_files()
        key_pem = keys.key_to_pem(key, new_passphrase)
        with self._write() as c:
            c.execute(
                "UPDATE managed_cas SET private_key = ?, key_encrypted = 1 WHERE id = ?",
                (key_pem, ca.id),
            )
        self._passphrase = new_passphrase
        self._ca_key = (ca.id, key)
        found = self.managed_ca(create=False)
        assert found is not None
        return found

    # -- client certificates ----------------------------------------------------------

    def _new_certificate_id(self) -> str:
        return _new_id()

    def _insert_certificate(self, r: ClientCertificate) -> bool:
        now = inspect.rfc3339(issuing.utcnow())
        with self._write() as c:
            # Checked inside the write transaction (nobody can insert meanwhile) rather
            # than by reading the UNIQUE-constraint error text (anti-pattern 17).
            if c.execute(
                "SELECT 1 FROM client_certificates WHERE (ca_id = ? AND serial_number = ?) "
                "OR id = ?",
                (r.ca_id, r.serial_number, r.id),
            ).fetchone():
                return False
            c.execute(
                f"INSERT INTO client_certificates ({_CERT_COLUMNS}, account_id, "
                "status_changed_on) VALUES (" + ", ".join("?" * 21) + ")",
                (
                    r.id,
                    r.certificate,
                    r.csr,
                    r.ca_id,
                    r.common_name,
                    r.organization,
                    r.organizational_unit,
                    r.country,
                    r.state,
                    r.location,
                    r.serial_number,
                    r.ski,
                    r.fingerprint_sha256,
                    r.signature,
                    r.issued_on,
                    r.expires_on,
                    r.validity_days,
                    r.status,
                    r.subject,
                    self.account_id,
                    now,
                ),
            )
            c.execute(
                "INSERT INTO client_certificate_events (certificate_id, event, status, at) "
                "VALUES (?, 'issued', ?, ?)",
                (r.id, r.status, now),
            )
        return True

    def _cert_from_row(self, row: tuple[Any, ...], ca_names: dict[str, str]) -> ClientCertificate:
        (
            cid,
            cert,
            csr,
            ca_id,
            cn,
            o,
            ou,
            c,
            st,
            loc,
            serial,
            ski,
            fp,
            sig,
            issued,
            expires,
            days,
            status,
            subject,
        ) = row
        return ClientCertificate(
            id=cid,
            certificate=cert,
            csr=csr,
            ca_id=ca_id,
            ca_name=ca_names.get(ca_id, ""),
            common_name=cn,
            organization=o,
            organizational_unit=ou,
            country=c,
            state=st,
            location=loc,
            serial_number=serial,
            ski=ski,
            fingerprint_sha256=fp,
            signature=sig,
            issued_on=issued,
            expires_on=expires,
            validity_days=int(days),
            status=status,
            subject=subject,
        )

    def _ca_names(self, c: Any) -> dict[str, str]:
        return dict(
            c.execute("SELECT id, name FROM managed_cas WHERE account_id = ?", (self.account_id,))
        )

    def _fetch_cert(self, c: Any, cert_id: str) -> ClientCertificate:
        row = c.execute(
            f"SELECT {_CERT_COLUMNS} FROM client_certificates WHERE id = ? AND account_id = ?",
            (cert_id, self.account_id),
        ).fetchone()
        if row is None:
            raise PKIError(f"client certificate {cert_id} not found")
        return self._cert_from_row(row, self._ca_names(c))

    def get_certificate(self, cert_id: str) -> ClientCertificate:
        ident = _normalize_id(cert_id, "certificate")
        with self._read() as c:
            return self._fetch_cert(c, ident)

    def list_certificates(
        self, *, status: str = "all", page: int = 1, per_page: int = 20
    ) -> CertificatePage:
        """Newest first. ``status`` is ``all`` or one of the four statuses."""
        if status != "all" and status not in STATUSES:
            raise PKIError(f"unknown status {status!r}: all, {', '.join(STATUSES)}")
        if isinstance(page, bool) or not isinstance(page, int) or page < 1:
            raise PKIError(f"page must be a positive integer, got {_short(page)}")
        if page > MAX_PAGE:
            raise PKIError(f"page must be between 1 and {MAX_PAGE}, got {_short(page)}")
        if (
            isinstance(per_page, bool)
            or not isinstance(per_page, int)
            or not 1 <= per_page <= MAX_PER_PAGE
        ):
            raise PKIError(
                f"per_page must be between 1 and {MAX_PER_PAGE}, got {_short(per_page)}"
            )
        where = "account_id = ?"
        params: list[Any] = [self.account_id]
        if status != "all":
            where += " AND status = ?"
            params.append(status)
        with self._read() as c:
            (total,) = c.execute(
                f"SELECT count(*) FROM client_certificates WHERE {where}", params
            ).fetchone()
            rows = c.execute(
                f"SELECT {_CERT_COLUMNS} FROM client_certificates WHERE {where} "
                "ORDER BY seq DESC LIMIT ? OFFSET ?",
                [*params, per_page, (page - 1) * per_page],
            ).fetchall()
            names = self._ca_names(c)
        items = tuple(self._cert_from_row(r, names) for r in rows)
        return CertificatePage(items, page, per_page, int(total))

    def _transition(
        self, cert_id: str, event: str, target: str, allowed: set[str]
    ) -> ClientCertificate:
        ident = _normalize_id(cert_id, "certificate")
        now = inspect.rfc3339(issuing.utcnow())
        with self._write() as c:
            current = self._fetch_cert(c, ident)
            if current.status not in allowed:
                raise PKIError(
                    f"client certificate {ident} is {current.status}: cannot "
                    f"{'revoke' if event == 'revoked' else 'restore'} it"
                )
            version = self._bump(c, "revocation")
            c.execute(
                "UPDATE client_certificates SET status = ?, status_changed_on = ?, "
                "status_version = ? WHERE id = ?",
                (target, now, version, ident),
            )
            c.execute(
                "INSERT INTO client_certificate_events (certificate_id, event, status, at) "
                "VALUES (?, ?, ?, ?)",
                (ident, event, target, now),
            )
            record = self._fetch_cert(c, ident)
        self._changed()  # committed: this store's validators see it now
        return record

    def revoke_certificate(self, cert_id: str) -> ClientCertificate:
        """Synchronous: ``active`` → ``revoked`` at once (Cloudflare passes through
        ``pending_revocation`` asynchronously; its pages disagree on the details); visible to
        validators immediately."""
        return self._transition(cert_id, "revoked", "revoked", {"active", "pending_reactivation"})

    def restore_certificate(self, cert_id: str) -> ClientCertificate:
        """Synchronous: ``revoked`` (or ``pending_revocation``) → ``active`` at once (Cloudflare
        passes through ``pending_reactivation``)."""
        return self._transition(cert_id, "restored", "active", {"revoked", "pending_revocation"})

    def certificate_events(self, cert_id: str) -> list[tuple[str, str, str]]:
        """The audit trail ``(event, status, at)`` of one certificate, oldest first."""
        ident = _normalize_id(cert_id, "certificate")
        with self._read() as c:
            return [
                tuple(r)  # type: ignore[misc]
                for r in c.execute(
                    "SELECT event, status, at FROM client_certificate_events "
                    "WHERE certificate_id = ? ORDER BY seq",
                    (ident,),
                )
            ]

    # -- uploaded CAs -----------------------------------------------------------------

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
        if name is not None:
            name = name.strip()
            if not name or len(name) > 255:
                raise PKIError("CA name must be 1 to 255 characters")
        record = prepare_ca_upload(
            pem,
            ca_id=_new_id(),
            name=name,
            uploaded_on=inspect.rfc3339(issuing.utcnow()),
            profile=profile,
            allow=allow,
            crl_stale=crl_stale,
            force=force,
        )
        with self._write() as c:
            (count,) = c.execute(
                "SELECT count(*) FROM uploaded_cas WHERE account_id = ?", (self.account_id,)
            ).fetchone()
            if count >= self.max_uploaded_cas:
                raise PKIError("Hit maximum CA cert allocation.", code=1489)
            if (
                name is not None
                and c.execute(
                    "SELECT 1 FROM uploaded_cas WHERE account_id = ? AND name = ?",
                    (self.account_id, name),
                ).fetchone()
            ):
                raise PKIError(f"a CA named {name!r} already exists: names are unique")
            dup = c.execute(
                "SELECT id FROM uploaded_cas WHERE account_id = ? AND fingerprint_sha256 = ?",
                (self.account_id, record.fingerprint_sha256),
            ).fetchone()
            if dup:
                raise PKIError(f"this CA certificate is already uploaded as {dup[0]}")
            c.execute(
                f"INSERT INTO uploaded_cas ({_UPLOADED_COLUMNS}, account_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.name,
                    record.certificates,
                    record.issuer,
                    record.subject,
                    record.serial_number,
                    record.signature,
                    record.ski,
                    record.fingerprint_sha256,
                    record.expires_on,
                    record.uploaded_on,
                    record.type,
                    record.profile,
                    record.allow,
                    record.crl_stale,
                    self.account_id,
                ),
            )
            self._bump(c, "trust")
        self._changed()  # committed: this store's readers see it now
        return record

    def list_uploaded_cas(self) -> list[UploadedCA]:
        with self._read() as c:
            rows = c.execute(
                f"SELECT {_UPLOADED_COLUMNS} FROM uploaded_cas WHERE account_id = ? "
                "ORDER BY seq DESC",
                (self.account_id,),
            ).fetchall()
        return [UploadedCA(*r) for r in rows]

    def _find_uploaded(self, c: Any, ref: str) -> UploadedCA:
        row = None
        ident = ref.strip().lower().replace("-", "")
        if len(ident) == 32:
            row = c.execute(
                f"SELECT {_UPLOADED_COLUMNS} FROM uploaded_cas WHERE account_id = ? AND id = ?",
                (self.account_id, ident),
            ).fetchone()
        if row is None:
            row = c.execute(
                f"SELECT {_UPLOADED_COLUMNS} FROM uploaded_cas WHERE account_id = ? AND name = ?",
                (self.account_id, ref.strip()),
            ).fetchone()
        if row is None:
            raise PKIError(f"uploaded CA {ref!r} not found")
        return UploadedCA(*row)

    def get_uploaded_ca(self, ref: str) -> UploadedCA:
        with self._read() as c:
            return self._find_uploaded(c, ref)

    def delete_uploaded_ca(self, ref: str) -> UploadedCA:
        """As at Cloudflare: deletion fails while any hostname is associated with the CA."""
        if ref.strip().lower() == "managed":
            raise PKIError("the managed CA cannot be deleted")
        with self._write() as c:
            ca = self._find_uploaded(c, ref)
            hosts = [
                h
                for (h,) in c.execute(
                    "SELECT hostname FROM hostname_associations WHERE account_id = ? AND ca_id = ? "
                    "ORDER BY hostname",
                    (self.account_id, ca.id),
                )
            ]
            if hosts:
                raise PKIError(
                    f"CA {ca.id} is still associated with {', '.join(hosts)}: remove the "
                    "hostname associations first"
                )
            c.execute("DELETE FROM uploaded_cas WHERE id = ?", (ca.id,))
            self._bump(c, "trust")
        self._changed()  # committed: this store's readers see it now
        return ca

    # -- hostname associations --------------------------------------------------------

    def _resolve_ca(self, ref: str | None) -> tuple[str, str]:
        """``(ca_kind, ca_id)`` for ``None``/``"managed"`` or an uploaded CA id/name."""
        if ref is None or ref.strip().lower() == "managed":
            ca = self.managed_ca(create=True)
            assert ca is not None
            return "managed", ca.id
        with self._read() as c:
            row = c.execute(
                "SELECT id FROM managed_cas WHERE account_id = ? AND id = ?",
                (self.account_id, ref.strip().lower().replace("-", "")),
            ).fetchone()
            if row:
                return "managed", row[0]
            return "uploaded", self._find_uploaded(c, ref).id

    def _hosts_of(self, c: Any, ca_id: str) -> list[str]:
        return [
            h
            for (h,) in c.execute(
                "SELECT hostname FROM hostname_associations WHERE account_id = ? AND ca_id = ? "
                "ORDER BY hostname",
                (self.account_id, ca_id),
            )
        ]

    def _change_hostnames(
        self, mode: str, names: list[str], mtls_certificate_id: str | None
    ) -> list[str]:
        kind, ca_id = self._resolve_ca(mtls_certificate_id)
        now = inspect.rfc3339(issuing.utcnow())
        with self._write() as c:
            if (
                kind == "uploaded"
                and not c.execute("SELECT 1 FROM uploaded_cas WHERE id = ?", (ca_id,)).fetchone()
            ):
                raise PKIError(f"uploaded CA {ca_id} not found")  # deleted meanwhile
            before = self._hosts_of(c, ca_id)
            if mode == "replace":
                c.execute(
                    "DELETE FROM hostname_associations WHERE account_id = ? AND ca_id = ?",
                    (self.account_id, ca_id),
                )
            if mode in ("replace", "add"):
                c.executemany(
                    "INSERT INTO hostname_associations "
                    "(account_id, hostname, ca_kind, ca_id, created_on) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    [(self.account_id, h, kind, ca_id, now) for h in names],
                )
            else:  # remove
                c.executemany(
                    "DELETE FROM hostname_associations WHERE account_id = ? AND ca_id = ? "
                    "AND hostname = ?",
                    [(self.account_id, ca_id, h) for h in names],
                )
            after = self._hosts_of(c, ca_id)
            if after != before:
                self._bump(c, "trust")
        self._changed()  # committed: this store's readers see it now
        return after

    def get_hostname_associations(self, mtls_certificate_id: str | None = None) -> list[str]:
        if mtls_certificate_id is None or mtls_certificate_id.strip().lower() == "managed":
            ca = self.managed_ca(create=False)
            if ca is None:
                return []
            ca_id = ca.id
        else:
            ca_id = self._resolve_ca(mtls_certificate_id)[1]
        with self._read() as c:
            return self._hosts_of(c, ca_id)

    def _remove_hostnames_everywhere(self, names: list[str]) -> list[str]:
        with self._write() as c:
            removed = (
                sorted(
                    {
                        h
                        for (h,) in c.execute(
                            "SELECT hostname FROM hostname_associations WHERE account_id = ? "
                            f"AND hostname IN ({', '.join('?' * len(names))})",
                            [self.account_id, *names],
                        )
                    }
                )
                if names
                else []
            )
            if removed:
                c.executemany(
                    "DELETE FROM hostname_associations WHERE account_id = ? AND hostname = ?",
                    [(self.account_id, h) for h in removed],
                )
                self._bump(c, "trust")
        self._changed()  # committed: this store's readers see it now
        return removed

    def hostname_table(self) -> list[tuple[str, str, str, str | None]]:
        with self._read() as c:
            rows = c.execute(
                "SELECT h.hostname, h.ca_kind, h.ca_id, coalesce(m.name, u.name) "
                "FROM hostname_associations h "
                "LEFT JOIN managed_cas m ON h.ca_kind = 'managed' AND m.id = h.ca_id "
                "LEFT JOIN uploaded_cas u ON h.ca_kind = 'uploaded' AND u.id = h.ca_id "
                "WHERE h.account_id = ? ORDER BY h.hostname, h.ca_kind DESC, u.seq DESC",
                (self.account_id,),
            ).fetchall()
        return [tuple(r) for r in rows]  # type: ignore[misc]

    def mtls_hostnames(self) -> set[str]:
        with self._read() as c:
            return {
                h
                for (h,) in c.execute(
                    "SELECT DISTINCT hostname FROM hostname_associations WHERE account_id = ?",
                    (self.account_id,),
                )
            }
