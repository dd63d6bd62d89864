"""edgerules: Cloudflare's Rules language and client-certificate (mTLS) product in Python.

>>> import edgerules
>>> f = edgerules.compile('http.host in {"api.example.com"} and not cf.tls_client_auth.cert_verified')
>>> f.matches({"http.host": "api.example.com"})
True
>>> f.matches({"http.host": "api.example.com", "cf.tls_client_auth.cert_verified": True})
False

The public names are imported lazily, so ``import edgerules`` stays cheap and the core
engine never drags in the PKI, the proxy or the CLI.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> module that defines it
_EXPORTS = {
    # errors
    "RuleError": "edgerules.errors",
    "ExpressionError": "edgerules.errors",
    "ParseError": "edgerules.errors",
    "RuleTypeError": "edgerules.errors",
    "SchemeError": "edgerules.errors",
    "ContextError": "edgerules.errors",
    "RulesetError": "edgerules.errors",
    "ListError": "edgerules.errors",
    "PKIError": "edgerules.errors",
    "StoreError": "edgerules.errors",
    "ConfigError": "edgerules.errors",
    "Source": "edgerules.source",
    "Span": "edgerules.source",
    # engine
    "compile": "edgerules.engine",
    "parse": "edgerules.engine",
    "format": "edgerules.engine",
    "Filter": "edgerules.engine",
    "Scheme": "edgerules.scheme",
    "Field": "edgerules.scheme",
    "Context": "edgerules.context",
    "default_scheme": "edgerules.scheme",
    # rulesets
    "Ruleset": "edgerules.ruleset",
    "Rule": "edgerules.ruleset",
    "Decision": "edgerules.ruleset",
    "Policy": "edgerules.ruleset",
    "NamedLists": "edgerules.lists",
    # mTLS
    "ClientCertValidator": "edgerules.tls",
    "ClientAuth": "edgerules.tls",
}

__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'edgerules' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
