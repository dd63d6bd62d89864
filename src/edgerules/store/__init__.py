"""The persistent account store (CONTRACTS §6): ``open_store`` and the ``Store`` interface.

>>> store = open_store(":memory:")                       # doctest: +SKIP
>>> issued = store.issue_certificate(validity_days=365)  # generated ECDSA key, shown once
>>> store.enable_hostnames(["api.example.com"])          # managed CA trusts this host
>>> store.validator_for_hostname("api.example.com")      # a ClientCertValidator
"""

from __future__ import annotations

import os

from edgerules.store.base import DEFAULT_ACCOUNT, Store, StoreRevocationSource
from edgerules.store.sqlite import DEFAULT_PATH, SQLiteStore

__all__ = [
    "DEFAULT_ACCOUNT",
    "DEFAULT_PATH",
    "SQLiteStore",
    "Store",
    "StoreRevocationSource",
    "open_store",
]


def open_store(
    path: str | os.PathLike[str] | None = None,
    *,
    account_id: str | None = None,
    passphrase: str | bytes | None = None,
    **options: object,
) -> Store:
    """Open (creating and migrating as needed) the account store.

    Args:
        path: the SQLite file; default ``$EDGERULES_STORE``, else ``./edgerules.db``.
        account_id: the account whose objects to use; default ``$EDGERULES_ACCOUNT``, else
            ``"default"``.
        passphrase: encrypts the managed CA's private key at rest; default
            ``$EDGERULES_STORE_PASSPHRASE`` (unset or empty: stored unencrypted).
        options: backend options (``ca_key_type``, ``max_uploaded_cas``,
            ``max_validity_days``, ``busy_timeout``).

    Raises:
        StoreError: the file cannot be opened, is not a store, or is from a newer version.
    """
    if path is None:
        path = os.environ.get("EDGERULES_STORE") or DEFAULT_PATH
    if account_id is None:
        account_id = os.environ.get("EDGERULES_ACCOUNT") or DEFAULT_ACCOUNT
    if passphrase is None:
        passphrase = os.environ.get("EDGERULES_STORE_PASSPHRASE") or None
    return SQLiteStore(path, account_id=account_id, passphrase=passphrase, **options)  # type: ignore[arg-type]
