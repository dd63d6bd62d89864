"""The ``store=`` option of the adapters (ASGI/WSGI middleware, ``edgerules serve``).

Owns one rule: a store is given as a ``Store`` object or as the path of an **existing**
store file, opened read-only (the adapters only read: hostnames, CAs, revocations). A
path that does not exist is a ``StoreError`` (``open_store`` never creates a store
unless asked): a typo must not become an empty store in which no hostname has mTLS.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["open_store_path", "store_option"]


def open_store_path(path: str | os.PathLike[str]) -> Any:
    """Open the existing store at ``path`` for reading."""
    from edgerules.store import open_store

    return open_store(os.fspath(path), read_only=True)


def store_option(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with a ``store`` path replaced by the opened store."""
    out = dict(options)
    store = out.get("store")
    if isinstance(store, str | os.PathLike):
        out["store"] = open_store_path(store)
    return out
