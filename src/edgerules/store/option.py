"""The ``store=`` option of the adapters (ASGI/WSGI middleware, ``edgerules serve``).

Owns one rule: a store is given as a ``Store`` object or as the path of an **existing**
store file. A path that does not exist is a ``ConfigError`` rather than a new, empty
store: a typo would otherwise create a store without any mTLS hostname, and every
request would silently look certificate-less.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from edgerules.errors import ConfigError

__all__ = ["open_store_path", "store_option"]


def open_store_path(path: str | os.PathLike[str]) -> Any:
    """Open the store at ``path``, which must exist."""
    text = os.fspath(path)
    if text != ":memory:" and not os.path.exists(text):
        raise ConfigError(
            f"store {text} does not exist (create it with `edgerules host enable ...` or "
            "`edgerules cert issue ...`, or give the path of your store)"
        )
    from edgerules.store import open_store

    return open_store(text)


def store_option(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with a ``store`` path replaced by the opened store."""
    out = dict(options)
    store = out.get("store")
    if isinstance(store, str | os.PathLike):
        out["store"] = open_store_path(store)
    return out
