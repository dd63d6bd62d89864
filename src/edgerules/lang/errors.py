"""Errors of the Rules language: rule text (with a caret), schemes and contexts.

All derive from :class:`edgerules.errors.RuleError` and are re-exported there and at
``edgerules``.
"""

from __future__ import annotations

from edgerules.errors import RuleError
from edgerules.lang.source import Source, Span, render_error

__all__ = ["ContextError", "ExpressionError", "ParseError", "RuleTypeError", "SchemeError"]


class ExpressionError(RuleError):
    """An error located in rule text; ``str()`` renders line, column and a caret."""

    def __init__(
        self,
        message: str,
        source: Source | str,
        span: Span,
        *,
        hint: str | None = None,
        suggestion: str | None = None,
    ) -> None:
        super().__init__(message)
        self.source = source if isinstance(source, Source) else Source(source)
        self.span = span
        self.suggestion = suggestion
        if hint is None and suggestion is not None:
            hint = f'did you mean "{suggestion}"?'
        self.hint = hint

    @property
    def line(self) -> int:
        return self.source.line_col(self.span.start)[0]

    @property
    def column(self) -> int:
        return self.source.line_col(self.span.start)[1]

    def render(self) -> str:
        return render_error(self.message, self.source, self.span, self.hint)

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, span={self.span.start}..{self.span.end})"
        )


class ParseError(ExpressionError):
    """Syntax errors, malformed literals and exceeded limits."""


class RuleTypeError(ExpressionError):
    """Name, type and argument errors found by the checker."""


class SchemeError(RuleError):
    """A scheme was defined wrongly (duplicate field, bad default)."""


class ContextError(RuleError):
    """A context was given an unknown field or a value of the wrong type."""
