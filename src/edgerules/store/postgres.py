"""The account store on PostgreSQL: one store for a fleet of proxies (issue 13).

``EDGERULES_STORE=postgresql://user@host/db`` (or ``--store URL``). The SQL is the SQLite
backend's (:mod:`edgerules.store.sql`); this module owns connections, transactions,
migrations on a shared server and change notifications.

Invariants:

* **Transactions.** Every change is one transaction that first takes a per-account
  advisory lock (``pg_advisory_xact_lock``): writers of one account are serialised as
  SQLite's ``BEGIN IMMEDIATE`` serialises them, so the check-then-write logic (quotas,
  duplicate names, status transitions, serial allocation) is the same on both backends,
  across processes on different machines. Reads run ``REPEATABLE READ, READ ONLY``: the
  enforcement state is one consistent snapshot.
* **Migrations.** The shared runner (:func:`edgerules.store.schema.apply_migrations`)
  under a global advisory lock, so proxies starting together migrate once; a newer
  schema is refused; ``read_only`` (the proxy) never migrates.
* **Live propagation.** A change that bumps the ``trust`` or ``revocation`` counter also
  sends ``NOTIFY edgerules_state, '<account>:<counter>'`` in its transaction (delivered
  at commit). A listener thread per store (its own connection, ``LISTEN``) wakes the
  in-memory state's sync thread, which re-reads the counters and reloads the state:
  milliseconds on loopback. Polling the counters every ``revocation_poll_interval`` stays
  as the fallback (a missed notification, a listener reconnecting).
* **Fail static.** When the server goes away the state in memory stays in force
  (:mod:`edgerules.store.live`), the listener reconnects with backoff (up to 5 s) and,
  once connected again, triggers a reload; the outage is logged once per interval and
  shown by :meth:`Store.health`.
* No psycopg exception escapes: they become ``StoreError``.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from edgerules.pki import issuing, keys
from edgerules.pki.errors import PKIError
from edgerules.store.base import DEFAULT_ACCOUNT, DEFAULT_MAX_UPLOADED_CAS
from edgerules.store.errors import StoreError
from edgerules.store.schema import CURRENT_VERSION, apply_migrations
from edgerules.store.sql import SQLStore

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

log = logging.getLogger("edgerules.store")

CHANNEL = "edgerules_state"
DEFAULT_POLL_S = 0.25  # fallback poll of the counters (NOTIFY is the fast path)
CONNECT_TIMEOUT_S = 5.0
_SCHEMA_LOCK = 0x45527374  # pg_advisory_xact_lock key of migrations ("ERst")


def is_postgres_url(target: object) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class _Conn:
    """A psycopg connection speaking the shared SQL's ``?`` placeholders."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Any = ()) -> Any:
        return self._conn.execute(sql.replace("?", "%s"), tuple(params))

    def executemany(self, sql: str, rows: Any) -> None:
        with self._conn.cursor() as cur:
            cur.executemany(sql.replace("?", "%s"), [tuple(r) for r in rows])


class PostgresStore(SQLStore):
    """An account store in a PostgreSQL database (tables in the connection's default
    schema; several accounts and several edgerules processes may share it)."""

    def __init__(
        self,
        url: str,
        *,
        create: bool = False,
        read_only: bool = False,
        account_id: str = DEFAULT_ACCOUNT,
        passphrase: str | bytes | None = None,
        ca_key_type: str = "ecdsa",
        max_uploaded_cas: int = DEFAULT_MAX_UPLOADED_CAS,
        max_validity_days: int = issuing.MAX_VALIDITY_DAYS,
        revocation_poll_interval: float = DEFAULT_POLL_S,
        revocation_unknown: str = "revoked",
        connect_timeout: float = CONNECT_TIMEOUT_S,
        pool_size: int = 4,
        listen: bool = True,
    ) -> None:
        super().__init__(
            account_id,
            revocation_poll_interval=revocation_poll_interval,
            revocation_unknown=revocation_unknown,
        )
        if not account_id or not isinstance(account_id, str):
            raise StoreError("account id must be a non-empty string")
        try:
            import psycopg
            import psycopg_pool
        except ImportError:
            raise StoreError(
                "a postgresql:// store needs the 'postgres' extra: "
                "pip install 'edgerules[postgres]'"
            ) from None
        self._psycopg = psycopg
        self._pool_errors: tuple[type[BaseException], ...] = (
            psycopg.Error,
            psycopg_pool.PoolTimeout,
            psycopg_pool.PoolClosed,
            OSError,
        )
        if create and read_only:
            raise StoreError("a store cannot be created read-only")
        self._url = url
        self.path = redact(url)
        self.backend_name = self.path
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
        self._timeout = connect_timeout
        self._listen_enabled = listen
        self._ca_key: tuple[str, CertificateIssuerPrivateKeyTypes] | None = None
        self._ca_cert: tuple[str, x509.Certificate] | None = None
        self._generation = 0
        self._pem_cache: dict[str, x509.Certificate] = {}
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()
        options = "-c default_transaction_read_only=on" if read_only else ""
        self._pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, pool_size),
            kwargs={
                "autocommit": True,
                "connect_timeout": max(1, int(connect_timeout)),
                "options": options,
                "application_name": "edgerules",
            },
            # No check round trip per checkout (it would sit on the propagation path): a
            # connection broken by a server restart fails one read, is discarded by the
            # pool, and the state's retry gets a fresh one.
            timeout=connect_timeout,
            reconnect_timeout=0,  # keep trying for ever (fail static), never give up
            open=False,
            name="edgerules-store",
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
        except self._pool_errors as exc:
            self._pool.close()
            raise StoreError(f"cannot open store {self.path}: {exc or type(exc).__name__}") from None
        try:
            self._open_schema(create=create)
        except BaseException:
            self._pool.close()
            raise

    # -- connection and transactions --------------------------------------------------

    def _open_schema(self, *, create: bool) -> None:
        with self._read() as c:
            exists = c.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()[0]
            version = (
                int(c.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()[0])
                if exists
                else 0
            )
        if not exists and not create:
            raise StoreError(
                f"cannot open store {self.path}: the database holds no edgerules store "
                "(a new store is made only by `edgerules ca create` or "
                "open_store(..., create=True))"
            )
        if version > CURRENT_VERSION:
            raise StoreError(
                f"store {self.path} has schema version {version}, newer than this "
                f"edgerules understands ({CURRENT_VERSION}); upgrade edgerules"
            )
        if version == CURRENT_VERSION:
            return
        if self.read_only:
            raise StoreError(
                f"store {self.path} has schema version {version} and needs an upgrade to "
                f"{CURRENT_VERSION}, which a read-only open cannot do: run "
                "`edgerules store migrate` once with write access"
            )
        with self._write(lock=False) as c:
            c.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
            apply_migrations(c, "postgres", self.path)

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        try:
            with self._pool.connection(timeout=self._timeout) as conn:
                yield conn
        except self._pool_errors as exc:
            raise StoreError(f"store {self.path}: {exc or type(exc).__name__}") from None

    @contextmanager
    def _write(self, *, lock: bool = True) -> Iterator[_Conn]:
        """One write transaction, serialised per account (see the module docstring)."""
        if self.read_only:
            raise StoreError(f"store {self.path} is opened read-only: this needs write access")
        with self._connection() as conn:
            try:
                with conn.transaction():
                    c = _Conn(conn)
                    if lock:
                        c.execute(
                            "SELECT pg_advisory_xact_lock(hashtext(?))",
                            (f"edgerules:{self.account_id}",),
                        )
                    yield c
            except self._pool_errors as exc:
                raise StoreError(f"store write failed: {exc}") from None

    @contextmanager
    def _read(self) -> Iterator[_Conn]:
        """A consistent snapshot for several SELECTs."""
        with self._connection() as conn:
            try:
                with conn.transaction():
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    yield _Conn(conn)
            except self._pool_errors as exc:
                raise StoreError(f"store read failed: {exc}") from None

    def _announce(self, c: Any, name: str) -> None:
        c.execute("SELECT pg_notify(?, ?)", (CHANNEL, f"{self.account_id}:{name}"))

    def schema_version(self) -> int:
        with self._read() as c:
            return int(c.execute("SELECT version FROM schema_version").fetchone()[0])

    def check_integrity(self) -> None:
        """Reachable and at this version (page-level integrity is the server's job)."""
        version = self.schema_version()
        if version != CURRENT_VERSION:
            raise StoreError(f"store {self.path} is at schema version {version}")

    def integrity_check(self) -> str:
        self.check_integrity()
        return "ok"

    def close(self) -> None:
        self._stop.set()
        self.close_live()
        listener = self._listener
        if listener is not None:
            listener.join(3.0)
        self._pool.close()

    # -- change notifications -----------------------------------------------------------

    def _before_state_read(self) -> None:
        if self._listener is None and self._listen_enabled and not self._stop.is_set():
            self._listener = threading.Thread(
                target=self._listen, name="edgerules-store-listen", daemon=True
            )
            self._listener.start()

    def _listen(self) -> None:
        """LISTEN on its own connection; every notification for this account wakes the
        state's sync thread. Reconnects with backoff; a (re)connection also wakes it, as
        changes may have been missed meanwhile."""
        psycopg = self._psycopg
        backoff = 0.1
        logged = 0.0
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self._url,
                    autocommit=True,
                    connect_timeout=max(1, int(self._timeout)),
                    application_name="edgerules-listen",
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    backoff = 0.1
                    self._live.wake()
                    prefix = f"{self.account_id}:"
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            if note.payload.startswith(prefix):
                                self._live.wake()
            except Exception as exc:  # the server went away: reconnect, with backoff
                if self._stop.is_set():
                    return
                now = time.monotonic()
                if now - logged >= 10.0:
                    logged = now
                    log.error(
                        "store %s: change notifications lost (%s); reconnecting",
                        self.path,
                        exc,
                    )
                self._stop.wait(backoff)
                backoff = min(5.0, backoff * 2)
