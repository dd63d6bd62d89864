"""The PKI's error (re-exported by :mod:`edgerules.errors`): issuing, revoking,
uploading CAs, hostname associations, and trust material handed to the validator."""

from __future__ import annotations

from edgerules.errors import RuleError

__all__ = ["PKIError"]


class PKIError(RuleError):
    """Issuing, revoking, uploading or associating failed; ``code`` mirrors the
    Cloudflare API error code where one exists (e.g. 1489 for the BYOCA quota)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
