"""The persistent account store: ``open_store`` and the ``Store`` interface.

>>> store = open_store(":memory:")                       # doctest: +SKIP
>>> issued = store.issue_certificate(validity_days=365)  # generated ECDSA key, shown once
>>> store.enable_hostnames(["api.example.com"])          # managed CA trusts this host
>>> store.validator_for_hostname("api.example.com")      # a ClientCertValidator
"""

from __future__ import annotations

import os

from edgerules.store.base import DEFAULT_ACCOUNT, Store, StoreRevocationSource
from edgerules.store.errors import StoreError
from edgerules.store.postgres import is_postgres_url
from edgerules.store.sqlite import DEFAULT_PATH, SQLiteStore

__all__ = [
    "DEFAULT_ACCOUNT",
    "DEFAULT_PATH",
    "SQLiteStore",
    "Store",
    "StoreRevocationSource",
    "open_store",
    "passphrase_from_environment",
]


def open_store(
    path: str | os.PathLike[str] | None = None,
    *,
    create: bool = False,
    read_only: bool = False,
    account_id: str | None = None,
    passphrase: str | bytes | None = None,
    **options: object,
) -> Store:
    """Open an existing account store (or create one with ``create=True``).

    Args:
        path: the SQLite file, or a ``postgresql://`` URL (a store shared by a fleet of
            proxies; needs the ``postgres`` extra); default ``$EDGERULES_STORE``, else
            ``./edgerules.db``.
        create: create the store if it does not exist. Without it a missing file is a
            ``StoreError``: a mistyped path must never become a new, empty store.
        read_only: open without write access (what the proxy does; works on a read-only
            file or volume); nothing is migrated.
        account_id: the account whose objects to use; default ``$EDGERULES_ACCOUNT``, else
            ``"default"``.
        passphrase: encrypts the managed CA's private key at rest; default
            ``$EDGERULES_STORE_PASSPHRASE`` (unset: the key is stored unencrypted; set but
            empty: an error).
        options: backend options (``ca_key_type``, ``max_uploaded_cas``,
            ``max_validity_days``, ``busy_timeout``, ``revocation_poll_interval``).

    Raises:
        StoreError: no store there (and not ``create``), not an edgerules store, from a
            newer version, or an empty passphrase.
    """
    if path is None:
        path = os.environ.get("EDGERULES_STORE") or DEFAULT_PATH
    if account_id is None:
        account_id = os.environ.get("EDGERULES_ACCOUNT") or DEFAULT_ACCOUNT
    if passphrase is None:
        passphrase = passphrase_from_environment()
    if is_postgres_url(path):
        from edgerules.store.postgres import PostgresStore

        return PostgresStore(
            str(path),
            create=create,
            read_only=read_only,
            account_id=account_id,
            passphrase=passphrase,
            **options,  # type: ignore[arg-type]
        )
    return SQLiteStore(
        path,
        create=create,
        read_only=read_only,
        account_id=account_id,
        passphrase=passphrase,
        **options,  # type: ignore[arg-type]
    )


def passphrase_from_environment() -> str | None:
    """``$EDGERULES_STORE_PASSPHRASE``: ``None`` when unset; set but empty is an error."""
    value = os.environ.get("EDGERULES_STORE_PASSPHRASE")
    if value is None:
        return None
    if not value:
        raise StoreError(
            "EDGERULES_STORE_PASSPHRASE is set but empty: give a non-empty passphrase, or "
            "unset the variable (an empty passphrase never means 'unencrypted')"
        )
    return value
