"""The store's error (re-exported by :mod:`edgerules.errors`)."""

from __future__ import annotations

from edgerules.errors import RuleError

__all__ = ["StoreError"]


class StoreError(RuleError):
    """The persistent store could not be opened, migrated or written."""
