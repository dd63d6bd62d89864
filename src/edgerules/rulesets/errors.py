"""Errors of rulesets and named lists (re-exported by :mod:`edgerules.errors`)."""

from __future__ import annotations

from edgerules.errors import RuleError

__all__ = ["ListError", "RulesetError"]


class RulesetError(RuleError):
    """A ruleset failed to load. ``errors`` holds ``(rule ref, error)`` for every broken
    rule, so all of them are reported at once."""

    def __init__(self, message: str, errors: list[tuple[str, RuleError]] | None = None) -> None:
        self.errors = list(errors or [])
        if self.errors:
            parts = [message]
            for ref, err in self.errors:
                parts.append(f"rule {ref!r}:\n{err}")
            message = "\n".join(parts)
        super().__init__(message)


class ListError(RuleError):
    """A named list is malformed or used with the wrong field type."""
