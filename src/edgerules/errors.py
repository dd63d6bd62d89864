"""The root of edgerules' one exception hierarchy.

Every error the package raises on purpose derives from ``RuleError``; nothing from a
library (Lark, cryptography, sqlite3, OpenSSL) escapes a public entry point. Errors are
built complete where they are raised (message, source, span, hint) and never patched
afterwards. Certificate *validation failures are not exceptions*: they are data
(``ClientAuth.verified = False`` with a reason).

Each part defines its own errors next to its code; this module defines the base and the
adapters' ``ConfigError``, and re-exports the rest (lazily, so importing it loads no
part)::

    RuleError                           edgerules.errors
    ├── ExpressionError                 edgerules.lang.errors — tied to rule text: has
    │   │                               ``source`` and ``span``; renders a caret
    │   ├── ParseError                  syntax, bad literals (escape, IP, CIDR, regex,
    │   │                               wildcard), limits
    │   └── RuleTypeError               unknown field/function, type mismatch, arguments
    ├── SchemeError                     edgerules.lang.errors — a scheme defined wrongly
    ├── ContextError                    edgerules.lang.errors — a field value of the wrong
    │                                   type or an unknown field name
    ├── RegexError / WildcardError      edgerules.lang.regex / .wildcard — a bad pattern
    │                                   without rule text (the checker adds the caret)
    ├── RulesetError                    edgerules.rulesets.errors — broken rulesets: wraps
    │                                   every broken rule's error at once
    ├── ListError                       edgerules.rulesets.errors — named lists
    ├── PKIError                        edgerules.pki.errors — issuing, revoking, CAs,
    │                                   hostname associations, trust material
    ├── StoreError                      edgerules.store.errors — the persistent store
    └── ConfigError                     here — adapters' configuration (proxy, middleware,
                                        CLI)
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the module of the part that defines it (re-exported on first access)
_PARTS = {
    "ExpressionError": "edgerules.lang.errors",
    "ParseError": "edgerules.lang.errors",
    "RuleTypeError": "edgerules.lang.errors",
    "SchemeError": "edgerules.lang.errors",
    "ContextError": "edgerules.lang.errors",
    "RulesetError": "edgerules.rulesets.errors",
    "ListError": "edgerules.rulesets.errors",
    "PKIError": "edgerules.pki.errors",
    "StoreError": "edgerules.store.errors",
}

__all__ = sorted(["ConfigError", "RuleError", *_PARTS])


class RuleError(Exception):
    """Base of every edgerules error. ``message`` is the text without position."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(RuleError):
    """An adapter (proxy, ASGI middleware, CLI) was configured wrongly."""


def __getattr__(name: str) -> Any:
    module = _PARTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edgerules.errors' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PARTS))
