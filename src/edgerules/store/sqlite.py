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
  microseconds; the enforcement path reads only the state in memory,
  :mod:`edgerules.store.live`, refreshed by a sync thread).

The SQL of every operation is shared with PostgreSQL (:mod:`edgerules.store.sql`); this
module owns the file: creating it privately, recognising it, read-only and immutable
opens, migrations, transactions, a replaced file (issue 9.12) and file modes before a key
is written (issue 9.9).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from edgerules.pki import issuing, keys
from edgerules.pki.errors import PKIError
from edgerules.store.base import (
    DEFAULT_ACCOUNT,
    DEFAULT_MAX_UPLOADED_CAS,
    DEFAULT_REVOCATION_POLL_S,
)
from edgerules.store.errors import StoreError
from edgerules.store.schema import CURRENT_VERSION, KNOWN_TABLES, apply_migrations
from edgerules.store.sql import MAX_PAGE, MAX_PER_PAGE, SQLStore  # noqa: F401 (re-exported)

if TYPE_CHECKING:  # certificates are parsed and read by edgerules.pki only
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

log = logging.getLogger("edgerules.store")

DEFAULT_PATH = "edgerules.db"
# PRAGMA application_id of every edgerules store: "ERst" (a foreign file is refused).
APPLICATION_ID = 0x45527374
BUSY_TIMEOUT_S = 10.0


def _create_private(path: str) -> None:
    """Create a new, empty store file readable by its owner only: it will hold the managed
    CA's private key, and SQLite gives the WAL and shared-memory files the database file's
    mode. Refuses a file that appeared meanwhile (O_EXCL)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        raise StoreError(f"cannot create store {path}: the file appeared meanwhile") from None


class SQLiteStore(SQLStore):
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
            apply_migrations(c, "sqlite", self.path)
            # Marks the file as an edgerules store (written with the transaction).
            c.execute(f"PRAGMA application_id = {APPLICATION_ID}")

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

    def _before_state_read(self) -> None:
        try:
            self._reopen_if_replaced()
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path} cannot be read: {exc}") from None

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

    # -- what validators need ---------------------------------------------------------

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
