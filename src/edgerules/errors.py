"""The one exception hierarchy of edgerules.

Every error the package raises on purpose derives from ``RuleError``; nothing from a
library (Lark, cryptography, sqlite3, OpenSSL) escapes a public entry point. Errors are
built complete where they are raised (message, source, span, hint) and never patched
afterwards. Certificate *validation failures are not exceptions*: they are data
(``ClientAuth.verified = False`` with a reason).

    RuleError
    ├── ExpressionError      tied to rule text: has ``source`` and ``span``; renders a caret
    │   ├── ParseError       syntax, bad literals (escape, IP, CIDR, regex, wildcard), limits
    │   └── RuleTypeError    unknown field/function, type mismatch, argument mistakes
    ├── SchemeError          defining a scheme wrongly (a programmer error, at start-up)
    ├── ContextError         a field value of the wrong type or an unknown field name
    ├── RulesetError         broken rulesets: wraps every broken rule's error at once
    ├── ListError            named lists: bad name, bad item, wrong type
    ├── PKIError             issuing, revoking, uploading CAs, hostname associations
    ├── StoreError           the persistent store (schema, locking, corruption)
    ├── ConfigError          adapters' configuration (proxy, ASGI)
    ├── RegexError           (regex.py) a bad pattern, without rule text: the checker
    └── WildcardError        (wildcard.py) raises an ExpressionError at the pattern instead
"""

from __future__ import annotations

from edgerules.source import Source, Span, render_error

__all__ = [
    "ConfigError",
    "ContextError",
    "ExpressionError",
    "ListError",
    "PKIError",
    "ParseError",
    "RuleError",
    "RuleTypeError",
    "RulesetError",
    "SchemeError",
    "StoreError",
]


class RuleError(Exception):
    """Base of every edgerules error. ``message`` is the text without position."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


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


class PKIError(RuleError):
    """Issuing, revoking, uploading or associating failed; ``code`` mirrors the
    Cloudflare API error code where one exists (e.g. 1489 for the BYOCA quota)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class StoreError(RuleError):
    """The persistent store could not be opened, migrated or written."""


class ConfigError(RuleError):
    """An adapter (proxy, ASGI middleware, CLI) was configured wrongly."""
