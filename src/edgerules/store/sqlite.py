"""The embedded SQLite account store.

Invariants:

* Every change is one ``BEGIN IMMEDIATE`` … ``COMMIT`` transaction, including the counter
  bump that announces it; a process killed at any point leaves either the whole change or
  none of it (SQLite's WAL journal with ``synchronous=FULL``).
* Several processes may use one file: WAL lets readers run beside a writer, and the busy
  timeout (default 10 s) makes writers wait for each other instead of failing.
* Crypto work (key generation, signing) happens *outside* write transactions, so a slow
  RSA key never holds the write lock; only the insert is inside.
* No sqlite3 or cryptography exception escapes: they become ``StoreError``/``PKIError``.
  X.509 parsing and reading happen in :mod:`edgerules.pki` (``inspect``, ``issuing``).
* Secrets at rest: a new store file is created with mode 0600 (it holds the managed CA's
  key); with a passphrase the key is stored encrypted, and a key found in clear is
  re-encrypted on first use.
* One connection per store object, shared by threads under a lock (queries take
  microseconds; the proxy reads the trust counter per connection, while the revocation
  counter is cached by :meth:`Store.revocation_version`).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from edgerules.pki import inspect, issuing, keys
from edgerules.pki.byoca import parse_ca_upload
from edgerules.pki.errors import PKIError
from edgerules.pki.records import (
    REVOKED_STATUSES,
    STATUSES,
    CertificatePage,
    ClientCertificate,
    ManagedCA,
    UploadedCA,
)
from edgerules.store.base import (
    DEFAULT_ACCOUNT,
    DEFAULT_MAX_UPLOADED_CAS,
    DEFAULT_REVOCATION_POLL_S,
    Store,
)
from edgerules.store.errors import StoreError
from edgerules.store.live import RawState
from edgerules.store.schema import (
    CURRENT_VERSION,
    KNOWN_TABLES,
    MIGRATIONS,
    SCHEMA_VERSION_TABLE,
)
from edgerules.store.state import build_raw_state

if TYPE_CHECKING:  # certificates are parsed and read by edgerules.pki only
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

log = logging.getLogger("edgerules.store")

DEFAULT_PATH = "edgerules.db"
# PRAGMA application_id of every edgerules store: "ERst" (a foreign file is refused).
APPLICATION_ID = 0x45527374
BUSY_TIMEOUT_S = 10.0
MAX_PER_PAGE = 1000
# Pages past this are refused: the row offset must fit SQLite's 64-bit INTEGER.
MAX_PAGE = 1_000_000_000
_CERT_COLUMNS = (
    "id, certificate, csr, ca_id, common_name, organization, organizational_unit, country, "
    "state, location, serial_number, ski, fingerprint_sha256, signature, issued_on, "
    "expires_on, validity_days, status, subject"
)
_UPLOADED_COLUMNS = (
    "id, name, certificates, issuer, subject, serial_number, signature, ski, "
    "fingerprint_sha256, expires_on, uploaded_on, type"
)


def _new_id() -> str:
    """32 lower-case hex characters (spec §5.3: "32-char identifier")."""
    return uuid.uuid4().hex


def _normalize_id(ref: str, what: str) -> str:
    """Accept the 32-hex form, the dashed UUID form and any case."""
    ident = ref.strip().lower().replace("-", "")
    if len(ident) != 32 or any(c not in "0123456789abcdef" for c in ident):
        raise PKIError(f"invalid {what} id {ref!r}: expected 32 hex characters")
    return ident


def _create_private(path: str) -> None:
    """Create a new, empty store file readable by its owner only: it will hold the managed
    CA's private key, and SQLite gives the WAL and shared-memory files the database file's
    mode. Refuses a file that appeared meanwhile (O_EXCL)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        raise StoreError(f"cannot create store {path}: the file appeared meanwhile") from None


def _short(value: object) -> str:
    """``repr(value)`` for a message, cut to 40 characters (a 5000-digit int cannot even
    be converted to text)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"a {value.bit_length()}-bit number" if value > 0 else "a huge negative number"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class SQLiteStore(Store):
    """An account store in one SQLite file (or ``":memory:"``).

    Change detection for the in-memory state: every poll the file's identity is checked
    (a replaced file is reopened, issue 9.12) and the two counters are read (one indexed
    query, a few µs).

    ``create``: make a new store if ``path`` does not exist (otherwise a missing file is
    an error: a mistyped path never becomes a new, empty store). ``read_only``: open with
    ``mode=ro`` (the proxy; a read-only file or volume works); nothing is migrated then.
    A SQLite file that is not an edgerules store is refused and never touched.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = False,
        read_only: bool = False,
        account_id: str = DEFAULT_ACCOUNT,
        passphrase: str | bytes | None = None,
        ca_key_type: str = "ecdsa",
        max_uploaded_cas: int = DEFAULT_MAX_UPLOADED_CAS,
        max_validity_days: int = issuing.MAX_VALIDITY_DAYS,
        busy_timeout: float = BUSY_TIMEOUT_S,
        revocation_poll_interval: float = DEFAULT_REVOCATION_POLL_S,
        revocation_unknown: str = "revoked",
    ) -> None:
        super().__init__(
            account_id,
            revocation_poll_interval=revocation_poll_interval,
            revocation_unknown=revocation_unknown,
        )
        if not account_id or not isinstance(account_id, str):
            raise StoreError("account id must be a non-empty string")
        self.path = os.fspath(path)
        self.backend_name = f"sqlite:{self.path}"
        if create and read_only:
            raise StoreError("a store cannot be created read-only")
        self.read_only = read_only
        if isinstance(passphrase, str):
            passphrase = passphrase.encode("utf-8")
        if passphrase is not None and not passphrase:
            raise StoreError(
                "the CA key passphrase is empty: give a non-empty passphrase (an empty one "
                "never means 'store the key unencrypted')"
            )
        self._passphrase = passphrase
        if ca_key_type not in keys.KEY_TYPES:
            raise PKIError(f"unsupported CA key type {ca_key_type!r}: ecdsa or rsa")
        self.ca_key_type = ca_key_type
        self.max_uploaded_cas = max_uploaded_cas
        self.max_validity_days = max_validity_days
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._ca_key: tuple[str, CertificateIssuerPrivateKeyTypes] | None = None
        self._ca_cert: tuple[str, x509.Certificate] | None = None
        self._immutable = False
        self._generation = 0  # bumped when the file is replaced (issue 9.12)
        self._pem_cache: dict[str, x509.Certificate] = {}
        self._conn = self._connect(create=create)
        try:
            try:
                self._identity = self._file_identity()
            except OSError as exc:
                raise StoreError(f"cannot open store {self.path}: {exc.strerror}") from None
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            self._check_identity(create=create)
            self._configure(busy_timeout)
            if not read_only:
                self._migrate()
            else:
                self._check_version_read_only()
        except sqlite3.Error as exc:
            self._conn.close()
            raise StoreError(f"cannot open store {self.path}: {exc}") from None
        except BaseException:
            self._conn.close()
            raise

    # -- connection and transactions --------------------------------------------------

    def _connect(self, *, create: bool) -> sqlite3.Connection:
        """Open the file: an existing one (any mode), or a new private one (``create``)."""
        memory = self.path in ("", ":memory:")
        self._created = False
        try:
            if not memory and not os.path.exists(self.path):
                if not create:
                    raise StoreError(
                        f"cannot open store {self.path}: no such file (check --store / "
                        "$EDGERULES_STORE; a new store is made only by `edgerules ca "
                        "create` or open_store(..., create=True))"
                    )
                parent = os.path.dirname(os.path.abspath(self.path))
                if not os.path.isdir(parent):
                    raise StoreError(
                        f"cannot open store {self.path}: directory {parent} does not exist"
                    )
                _create_private(self.path)
                self._created = True
            elif not memory and not os.path.isfile(self.path):
                raise StoreError(f"cannot open store {self.path}: not a regular file")
            if self.read_only and not memory:
                return self._connect_read_only()
            return sqlite3.connect(
                self.path, timeout=self._busy_timeout, isolation_level=None,
                check_same_thread=False,
            )
        except OSError as exc:
            raise StoreError(f"cannot open store {self.path}: {exc.strerror or exc}") from None
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from None

    def _connect_read_only(self) -> sqlite3.Connection:
        """``mode=ro``. A WAL database on a read-only volume with no ``-shm`` file (no
        writer has it open) cannot be opened that way; then ``immutable=1`` is used and
        changes are picked up by reopening when the file changes (``_file_changed``)."""
        uri = "file:" + urllib.parse.quote(os.path.abspath(self.path)) + "?mode=ro"
        conn = sqlite3.connect(
            uri, uri=True, timeout=self._busy_timeout, isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            self._immutable = False
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            if "readonly" not in str(exc) and "unable to open" not in str(exc):
                raise
        conn = sqlite3.connect(
            uri + "&immutable=1", uri=True, isolation_level=None, check_same_thread=False
        )
        self._immutable = True
        return conn

    def _configure(self, busy_timeout: float) -> None:
        """Connection settings; runs after ``_check_identity`` (WAL mode writes the file
        header, which must never happen to a foreign file)."""
        c = self._conn
        if self.read_only:
            return  # nothing to set: the file is not written
        if self.path != ":memory:":
            c.execute("PRAGMA journal_mode = WAL")
        # FULL: a committed certificate survives power loss too, not just a killed process.
        c.execute("PRAGMA synchronous = FULL")
        c.execute("PRAGMA foreign_keys = ON")
        # Deleted or rewritten content (a CA key re-encrypted in place) is zeroed on disk.
        c.execute("PRAGMA secure_delete = ON")

    def _check_identity(self, *, create: bool) -> None:
        """Refuse anything that is not an edgerules store before a single byte is
        written: a foreign SQLite database is never migrated in place."""
        c = self._conn
        app_id = int(c.execute("PRAGMA application_id").fetchone()[0])
        tables = {
            r[0]
            for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not str(r[0]).startswith("sqlite_")
        }
        if app_id == APPLICATION_ID:
            return
        if app_id == 0 and "schema_version" in tables and tables <= KNOWN_TABLES:
            return  # written by edgerules before the application id was set
        if app_id == 0 and not tables:
            if create or self._created:
                return  # a new store (or an empty file the user asked to make one)
            raise StoreError(
                f"{self.path} is an empty file, not an edgerules store; to create a store "
                "there run `edgerules ca create` (or open_store(..., create=True))"
            )
        what = (
            f"application id {app_id:#x}"
            if app_id
            else f"tables {', '.join(sorted(tables)[:5])}{' ...' if len(tables) > 5 else ''}"
        )
        raise StoreError(
            f"{self.path} is not an edgerules store (a SQLite database with {what}); "
            "refusing to use or modify it"
        )

    def _check_version_read_only(self) -> None:
        row = self._conn.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
        version = int(row[0]) if row else 0
        if version > CURRENT_VERSION:
            raise StoreError(
                f"store {self.path} has schema version {version}, newer than this "
                f"edgerules understands ({CURRENT_VERSION}); upgrade edgerules"
            )
        if version < CURRENT_VERSION:
            raise StoreError(
                f"store {self.path} has schema version {version} and needs an upgrade to "
                f"{CURRENT_VERSION}, which a read-only open cannot do: run "
                "`edgerules store migrate` once with write access"
            )

    def _migrate(self) -> None:
        # Fast path without the write lock: an up-to-date store needs nothing, so proxies
        # opening it concurrently (or read-only) never queue behind each other here.
        try:
            row = self._conn.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
        except sqlite3.OperationalError:
            row = None  # no such table: a new store
        app_id = int(self._conn.execute("PRAGMA application_id").fetchone()[0])
        if row is not None and row[0] == CURRENT_VERSION and app_id == APPLICATION_ID:
            return
        with self._write() as c:
            c.execute(SCHEMA_VERSION_TABLE)
            row = c.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
            version = row[0] if row else 0
            if version > CURRENT_VERSION:
                raise StoreError(
                    f"store {self.path} has schema version {version}, newer than this "
                    f"edgerules understands ({CURRENT_VERSION}); upgrade edgerules"
                )
            for statements in MIGRATIONS[version:]:
                for sql in statements:
                    c.execute(sql)
            if row is None:
                c.execute(
                    "INSERT INTO schema_version (id, version) VALUES (1, ?)", (CURRENT_VERSION,)
                )
            elif version != CURRENT_VERSION:
                c.execute("UPDATE schema_version SET version = ? WHERE id = 1", (CURRENT_VERSION,))
            # Marks the file as an edgerules store (written with the transaction).
            c.execute(f"PRAGMA application_id = {APPLICATION_ID}")

    def schema_version(self) -> int:
        with self._read() as c:
            return int(c.execute("SELECT version FROM schema_version").fetchone()[0])

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; takes the database write lock up front so checks and
        writes inside it see a state nobody else can change."""
        if self.read_only:
            raise StoreError(f"store {self.path} is opened read-only: this needs write access")
        with self._lock:
            c = self._conn
            try:
                c.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"store {self.path} is not writable: {exc}") from None
            try:
                yield c
            except BaseException as exc:
                try:
                    c.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"store write failed: {exc}") from None
                raise
            else:
                try:
                    c.execute("COMMIT")
                except sqlite3.Error as exc:
                    try:
                        c.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                    raise StoreError(f"store commit failed: {exc}") from None

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several SELECTs."""
        with self._lock:
            c = self._conn
            try:
                c.execute("BEGIN")
                yield c
            except sqlite3.Error as exc:
                raise StoreError(f"store read failed: {exc}") from None
            finally:
                try:
                    c.execute("COMMIT")
                except sqlite3.Error:
                    pass

    def _bump(self, c: sqlite3.Connection, name: str) -> int:
        """Increment counter ``name``; returns its new value."""
        (value,) = c.execute(
            "INSERT INTO counters (account_id, name, value) VALUES (?, ?, 1) "
            "ON CONFLICT (account_id, name) DO UPDATE SET value = value + 1 RETURNING value",
            (self.account_id, name),
        ).fetchone()
        return int(value)

    def close(self) -> None:
        self.close_live()
        with self._lock:
            try:
                if not self.read_only and self.path not in ("", ":memory:"):
                    # Leave no committed frames in the -wal: a file copied or moved into
                    # place later is never paired with a stale WAL (issue 9.12).
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            try:
                self._conn.close()
            except sqlite3.Error:
                pass

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check`` (``"ok"`` for a healthy store)."""
        with self._read() as c:
            return "\n".join(str(r[0]) for r in c.execute("PRAGMA integrity_check"))

    def check_integrity(self) -> None:
        """``PRAGMA quick_check`` (the proxy runs it at start): a damaged store is refused
        rather than served with holes in it."""
        try:
            with self._lock:
                rows = [str(r[0]) for r in self._conn.execute("PRAGMA quick_check")]
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path} is damaged: {exc}") from None
        if rows != ["ok"]:
            raise StoreError(
                f"store {self.path} is damaged (PRAGMA quick_check: {'; '.join(rows[:3])}); "
                "restore it from a backup"
            )

    # -- the enforcement state (edgerules.store.live) ---------------------------------

    def _file_identity(self) -> tuple[int, ...] | None:
        if self.path in ("", ":memory:"):
            return None
        st = os.stat(self.path)
        if self._immutable:  # no locking: notice any change to the file itself
            return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        return (st.st_dev, st.st_ino)

    def _reopen_if_replaced(self) -> None:
        """Issue 9.12: a store restored from a backup or moved into place (a new inode)
        is noticed on the next poll and opened afresh; the old connection is closed."""
        try:
            identity = self._file_identity()
        except OSError as exc:
            raise StoreError(f"store {self.path} cannot be read: {exc.strerror}") from None
        if identity == self._identity:
            return
        log.warning("store %s was replaced (new file): reopening it", self.path)
        with self._lock:
            old = self._conn
            self._conn = self._connect(create=False)
            try:
                self._conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
                self._check_identity(create=False)
                self._configure(self._busy_timeout)
                if self.read_only:
                    self._check_version_read_only()
                else:
                    self._migrate()
            except BaseException:
                self._conn.close()
                self._conn = old
                raise
            self._identity = identity
            self._generation += 1
            self._ca_cert = None
            self._ca_key = None
            try:
                old.close()
            except sqlite3.Error:
                pass

    def _read_counters(self, c: sqlite3.Connection) -> tuple[int, int]:
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
        try:
            self._reopen_if_replaced()
            with self._read() as c:
                return (self._generation, *self._read_counters(c))
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path} cannot be read: {exc}") from None

    def _load_state(self) -> RawState:
        self._reopen_if_replaced()
        with self._read() as c:
            trust, revocation = self._read_counters(c)
            rows = c.execute(
                "SELECT h.hostname, coalesce(u.certificates, m.certificate) "
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
            serials = c.execute(
                "SELECT serial_number FROM client_certificates WHERE account_id = ? "
                f"AND status IN ({', '.join('?' * len(REVOKED_STATUSES))})",
                [self.account_id, *sorted(REVOKED_STATUSES)],
            ).fetchall()
        return build_raw_state(
            token=(self._generation, trust, revocation),
            generation=(self.path, self._generation),
            trust=trust,
            revocation=revocation,
            host_rows=rows,
            managed_pem=None if managed is None else managed[0],
            revoked=serials,
            cache=self._pem_cache,
        )

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

    def _secure_files(self) -> None:
        """Before a CA private key is written (issue 9.9): the store file and its -wal/-shm
        files become owner-only (0600, said on the log when a mode is changed), and a
        directory that others can write to is refused — they could replace the file or
        plant -wal/-shm files next to it."""
        if self.path in ("", ":memory:"):
            return
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            dir_mode = stat.S_IMODE(os.stat(directory).st_mode)
        except OSError as exc:
            raise StoreError(f"cannot check directory {directory}: {exc.strerror}") from None
        if dir_mode & 0o022:
            raise StoreError(
                f"refusing to write the CA private key: the store's directory {directory} is "
                f"writable by others (mode {dir_mode:04o}); keep the store in a directory only "
                f"its owner can write to (chmod go-w {directory})"
            )
        for suffix in ("", "-wal", "-shm"):
            name = self.path + suffix
            try:
                mode = stat.S_IMODE(os.stat(name).st_mode)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StoreError(f"cannot check {name}: {exc.strerror}") from None
            if mode & 0o077:
                try:
                    os.chmod(name, 0o600)
                except OSError as exc:
                    raise StoreError(
                        f"refusing to write the CA private key: {name} is readable or writable "
                        f"by others (mode {mode:04o}) and cannot be changed: {exc.strerror}"
                    ) from None
                log.warning(
                    "%s was accessible to others (mode %04o): changed to 0600 before writing "
                    "the CA private key",
                    name,
                    mode,
                )

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

    def _ca_names(self, c: sqlite3.Connection) -> dict[str, str]:
        return dict(
            c.execute("SELECT id, name FROM managed_cas WHERE account_id = ?", (self.account_id,))
        )

    def _fetch_cert(self, c: sqlite3.Connection, cert_id: str) -> ClientCertificate:
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
            c.execute(
                "UPDATE client_certificates SET status = ?, status_changed_on = ? WHERE id = ?",
                (target, now, ident),
            )
            c.execute(
                "INSERT INTO client_certificate_events (certificate_id, event, status, at) "
                "VALUES (?, ?, ?, ?)",
                (ident, event, target, now),
            )
            self._bump(c, "revocation")
            record = self._fetch_cert(c, ident)
        self._changed()  # committed: this store's validators see it now
        return record

    def revoke_certificate(self, cert_id: str) -> ClientCertificate:
        """[X] Synchronous: ``active`` → ``revoked`` at once (Cloudflare passes through
        ``pending_revocation`` asynchronously); visible to validators immediately."""
        return self._transition(cert_id, "revoked", "revoked", {"active", "pending_reactivation"})

    def restore_certificate(self, cert_id: str) -> ClientCertificate:
        """[X] Synchronous: ``revoked`` (or ``pending_revocation``) → ``active`` at once."""
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

    def upload_ca(self, pem: str | bytes, *, name: str | None = None) -> UploadedCA:
        cert = parse_ca_upload(pem)
        if name is not None:
            name = name.strip()
            if not name or len(name) > 255:
                raise PKIError("CA name must be 1 to 255 characters")
        record = inspect.uploaded_ca_record(
            cert, ca_id=_new_id(), name=name, uploaded_on=inspect.rfc3339(issuing.utcnow())
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
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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

    def _find_uploaded(self, c: sqlite3.Connection, ref: str) -> UploadedCA:
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
        """Spec §6: deletion fails while any hostname is associated with the CA."""
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

    def _hosts_of(self, c: sqlite3.Connection, ca_id: str) -> list[str]:
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
                    "INSERT OR IGNORE INTO hostname_associations "
                    "(account_id, hostname, ca_kind, ca_id, created_on) VALUES (?, ?, ?, ?, ?)",
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

    # -- what validators need ---------------------------------------------------------
