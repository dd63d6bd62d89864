"""The mTLS-terminating reverse proxy (``edgerules proxy``).

Modules: ``config`` (limits, forwarding policy), ``tls`` (pyOpenSSL over asyncio memory
BIOs, SNI-driven certificate requests), ``server`` (connections, h11, decisions,
forwarding, shutdown), ``upstream`` (pooled h11 client), ``forwarding`` (header rules),
``fields`` (rule fields from a request, shared with ASGI/WSGI), ``decision`` (the hook
and block pages), ``gate``/``certheaders`` (the ASGI/WSGI core), ``accesslog``; the
development certificate comes from ``edgerules.pki.devcert``.

Nothing is imported eagerly: ``edgerules.asgi`` uses ``fields``/``decision`` without
pulling in pyOpenSSL or h11.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ProxyConfig": "edgerules.proxy.config",
    "Limits": "edgerules.proxy.config",
    "ForwardingPolicy": "edgerules.proxy.config",
    "ProxyServer": "edgerules.proxy.server",
    "ServerThread": "edgerules.proxy.server",
    "run_proxy": "edgerules.proxy.server",
    "AccessLog": "edgerules.proxy.accesslog",
    "RulesetDecider": "edgerules.proxy.decision",
    "Verdict": "edgerules.proxy.decision",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edgerules.proxy' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
