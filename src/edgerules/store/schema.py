"""The schema and its migrations, for both backends (one runner: :func:`apply_migrations`).

``MIGRATIONS[i]`` upgrades a store from schema version ``i`` to ``i + 1``; a new store runs
them all. Statements are written for SQLite; :func:`for_dialect` rewrites the few types
PostgreSQL spells differently (``INTEGER PRIMARY KEY AUTOINCREMENT`` -> ``BIGSERIAL``,
64-bit counters -> ``BIGINT``), so both backends run the same versions. The current version lives in the one-row table ``schema_version`` and is
changed in the same transaction as the migration, so a crash mid-migration leaves the old
version and the old tables. A store written by a newer edgerules (higher version) is
refused rather than guessed at.

Design notes:

* Everything is scoped by ``account_id`` (at Cloudflare, CAs and certificates are
  account objects). Hostname associations are scoped by account too (one account serves a
  proxy; Cloudflare scopes them by zone, and zones belong to an account).
* Client certificates are never deleted (Cloudflare keeps revoked ones listed); status changes are also appended to
  ``client_certificate_events`` for auditing.
* ``counters`` holds per-account version numbers: ``revocation`` (bumped with every
  revoke/restore) and ``trust`` (bumped with every change to which CA is trusted where).
  They are bumped in the same transaction as the change they describe, so a reader never
  sees new state under an old version.
* Serials are unique per issuing CA; fingerprints are unique overall.
"""

from __future__ import annotations

from typing import Any

from edgerules.store.errors import StoreError

SCHEMA_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
)
"""

_V1 = (
    """
    CREATE TABLE counters (
        account_id TEXT NOT NULL,
        name TEXT NOT NULL,
        value INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (account_id, name)
    )
    """,
    """
    CREATE TABLE managed_cas (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        certificate TEXT NOT NULL,
        private_key TEXT NOT NULL,          -- PKCS#8 PEM, encrypted when key_encrypted
        key_encrypted INTEGER NOT NULL CHECK (key_encrypted IN (0, 1)),
        key_type TEXT NOT NULL,
        created_on TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE client_certificates (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        account_id TEXT NOT NULL,
        ca_id TEXT NOT NULL REFERENCES managed_cas(id),
        certificate TEXT NOT NULL,
        csr TEXT NOT NULL,
        subject TEXT NOT NULL,
        common_name TEXT NOT NULL,
        organization TEXT NOT NULL,
        organizational_unit TEXT NOT NULL,
        country TEXT NOT NULL,
        state TEXT NOT NULL,
        location TEXT NOT NULL,
        serial_number TEXT NOT NULL,        -- decimal
        ski TEXT NOT NULL,
        fingerprint_sha256 TEXT NOT NULL UNIQUE,
        signature TEXT NOT NULL,
        issued_on TEXT NOT NULL,
        expires_on TEXT NOT NULL,
        validity_days INTEGER NOT NULL CHECK (validity_days > 0),
        status TEXT NOT NULL CHECK (status IN
            ('active', 'pending_revocation', 'revoked', 'pending_reactivation')),
        status_changed_on TEXT NOT NULL,
        UNIQUE (ca_id, serial_number)
    )
    """,
    "CREATE INDEX client_certificates_by_status ON client_certificates (account_id, status, seq)",
    """
    CREATE TABLE client_certificate_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        certificate_id TEXT NOT NULL REFERENCES client_certificates(id),
        event TEXT NOT NULL,                -- issued | revoked | restored
        status TEXT NOT NULL,
        at TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE uploaded_cas (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        account_id TEXT NOT NULL,
        name TEXT,
        certificates TEXT NOT NULL,
        issuer TEXT NOT NULL,
        subject TEXT NOT NULL,
        serial_number TEXT NOT NULL,
        signature TEXT NOT NULL,
        ski TEXT NOT NULL,
        fingerprint_sha256 TEXT NOT NULL,
        expires_on TEXT NOT NULL,
        uploaded_on TEXT NOT NULL,
        type TEXT NOT NULL DEFAULT 'custom',
        UNIQUE (account_id, name),
        UNIQUE (account_id, fingerprint_sha256)
    )
    """,
    """
    CREATE TABLE hostname_associations (
        account_id TEXT NOT NULL,
        hostname TEXT NOT NULL,             -- normalised: lower case, no trailing dot
        ca_kind TEXT NOT NULL CHECK (ca_kind IN ('managed', 'uploaded')),
        ca_id TEXT NOT NULL,
        created_on TEXT NOT NULL,
        PRIMARY KEY (account_id, hostname, ca_id)
    )
    """,
    "CREATE INDEX hostname_associations_by_ca ON hostname_associations (account_id, ca_id)",
)

# Version 2 (issue 10): validation settings per uploaded CA and per hostname, and CRLs.
# Plain tables and ADD COLUMN with constant defaults (portable to PostgreSQL as is).
_V2 = (
    # the profile the CA's clients are validated with, the weaknesses it allows
    # (comma-separated names), and what an unknown CRL status means ('open'/'closed')
    "ALTER TABLE uploaded_cas ADD COLUMN profile TEXT NOT NULL DEFAULT 'compatible'",
    "ALTER TABLE uploaded_cas ADD COLUMN allow TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE uploaded_cas ADD COLUMN crl_stale TEXT NOT NULL DEFAULT 'open'",
    """
    CREATE TABLE hostname_settings (
        account_id TEXT NOT NULL,
        hostname TEXT NOT NULL,             -- normalised: lower case, no trailing dot
        profile TEXT NOT NULL,              -- overrides each CA's profile on this host
        allow TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (account_id, hostname)
    )
    """,
    """
    CREATE TABLE crls (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        account_id TEXT NOT NULL,
        ca_id TEXT,                         -- the uploaded CA it belongs to, if given
        crl TEXT NOT NULL,                  -- PEM; '' until a URL was first fetched
        issuer TEXT NOT NULL,               -- RFC 2253, for display
        crl_number TEXT NOT NULL,           -- decimal, '' when absent
        this_update TEXT NOT NULL,          -- RFC 3339, '' until fetched
        next_update TEXT NOT NULL,          -- RFC 3339, '' when absent
        revoked_count INTEGER NOT NULL,
        url TEXT NOT NULL,                  -- fetched from here on a schedule, '' = never
        refresh_seconds INTEGER NOT NULL,   -- 0 = no schedule
        fetched_on TEXT NOT NULL,           -- RFC 3339 of the last fetch attempt, ''
        last_error TEXT NOT NULL,           -- '' when the last fetch succeeded
        added_on TEXT NOT NULL
    )
    """,
    "CREATE INDEX crls_by_account ON crls (account_id, seq)",
)

# v3: the revocation counter value of each certificate's last status change, so a
# process holding the revoked set applies only the changes since the version it has
# (O(changes) per revocation instead of reloading every revoked serial).
_V3 = (
    "ALTER TABLE client_certificates ADD COLUMN status_version BIGINT NOT NULL DEFAULT 0",
    "CREATE INDEX client_certificates_by_status_version "
    "ON client_certificates (account_id, status_version)",
)

#: Each entry: the statements that move the schema one version up.
MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3)

#: The version this code writes.
CURRENT_VERSION = len(MIGRATIONS)

#: Every table any version of the schema has: a SQLite file without the application id
#: is taken for an (old) edgerules store only when it has ``schema_version`` and no other
#: tables than these, so a foreign database is never migrated in place.
KNOWN_TABLES = frozenset(
    {
        "schema_version",
        "counters",
        "managed_cas",
        "client_certificates",
        "client_certificate_events",
        "uploaded_cas",
        "hostname_settings",
        "crls",
        "hostname_associations",
    }
)


_POSTGRES_TYPES = (
    ("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY"),
    ("value INTEGER NOT NULL", "value BIGINT NOT NULL"),
)


def for_dialect(sql: str, dialect: str) -> str:
    if dialect == "postgres":
        for sqlite_type, pg_type in _POSTGRES_TYPES:
            sql = sql.replace(sqlite_type, pg_type)
    return sql


def apply_migrations(c: Any, dialect: str, where: str) -> int:
    """Bring the schema to :data:`CURRENT_VERSION` inside the caller's write transaction
    (which holds the backend's write lock, so concurrent openers migrate once). Refuses a
    store written by a newer edgerules. Returns the version found."""
    c.execute(SCHEMA_VERSION_TABLE)
    row = c.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
    version = int(row[0]) if row else 0
    if version > CURRENT_VERSION:
        raise StoreError(
            f"store {where} has schema version {version}, newer than this edgerules "
            f"understands ({CURRENT_VERSION}); upgrade edgerules"
        )
    for statements in MIGRATIONS[version:]:
        for sql in statements:
            c.execute(for_dialect(sql, dialect))
    if row is None:
        c.execute("INSERT INTO schema_version (id, version) VALUES (1, ?)", (CURRENT_VERSION,))
    elif version != CURRENT_VERSION:
        c.execute("UPDATE schema_version SET version = ? WHERE id = 1", (CURRENT_VERSION,))
    return version
