"""The mTLS-terminating reverse proxy (``edgerules proxy``): sockets, TLS records, HTTP.

Modules: ``config`` (limits, timeouts), ``tls`` (pyOpenSSL over asyncio memory BIOs,
SNI-driven certificate requests), ``server`` (connections, HTTP/1.1 via ``http1``, shutdown), ``upstream``
(pooled HTTP/1.1 client), ``accesslog``, ``echo`` (a test origin); the development
certificate comes from ``edgerules.pki.devcert``. What a request *means* — its rule
fields, the decision, the block page, which headers reach the origin — is
:mod:`edgerules.enforcement`, shared with the ASGI and WSGI middleware.

Nothing is imported eagerly.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ProxyConfig": "edgerules.proxy.config",
    "Limits": "edgerules.proxy.config",
    "ForwardingPolicy": "edgerules.enforcement.forwarding",
    "ProxyServer": "edgerules.proxy.server",
    "ServerThread": "edgerules.proxy.server",
    "run_proxy": "edgerules.proxy.server",
    "AccessLog": "edgerules.proxy.accesslog",
    "RulesetDecider": "edgerules.enforcement.decision",
    "Verdict": "edgerules.enforcement.decision",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edgerules.proxy' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
