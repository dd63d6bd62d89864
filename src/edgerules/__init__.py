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

from edgerules import _moved

# name -> module that defines it
_EXPORTS = {
    # errors
    "RuleError": "edgerules.errors",
    "ExpressionError": "edgerules.lang.errors",
    "ParseError": "edgerules.lang.errors",
    "RuleTypeError": "edgerules.lang.errors",
    "SchemeError": "edgerules.lang.errors",
    "ContextError": "edgerules.lang.errors",
    "RulesetError": "edgerules.rulesets.errors",
    "ListError": "edgerules.rulesets.errors",
    "PKIError": "edgerules.pki.errors",
    "StoreError": "edgerules.store.errors",
    "ConfigError": "edgerules.errors",
    "Source": "edgerules.lang.source",
    "Span": "edgerules.lang.source",
    # engine
    "compile": "edgerules.lang.engine",
    "parse": "edgerules.lang.engine",
    "format": "edgerules.lang.engine",
    "Filter": "edgerules.lang.engine",
    "Scheme": "edgerules.lang.scheme",
    "Field": "edgerules.lang.scheme",
    "Context": "edgerules.lang.context",
    "default_scheme": "edgerules.lang.scheme",
    # rulesets
    "Ruleset": "edgerules.rulesets",
    "Rule": "edgerules.rulesets",
    "Decision": "edgerules.rulesets",
    "Policy": "edgerules.rulesets",
    "NamedLists": "edgerules.rulesets",
    # mTLS
    "ClientCertValidator": "edgerules.tls",
    "ClientAuth": "edgerules.tls",
}

__all__ = sorted(_EXPORTS)

_moved.install()  # old module paths (edgerules.engine, edgerules.ruleset, …) still import
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
