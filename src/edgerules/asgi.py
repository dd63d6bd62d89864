"""ASGI middleware: enforce an edgerules ruleset (with client certificates) in any ASGI app.

>>> from edgerules import Ruleset
>>> from edgerules.asgi import EdgeRulesMiddleware
>>> app = EdgeRulesMiddleware(app, Ruleset.load("rules/mtls-required.json"),
...                           store="edgerules.db",                  # a path or a Store
...                           trusted_proxies=["10.0.0.0/8"], forwarded_cert="envoy")  # doctest: +SKIP

Owns the ASGI plumbing; the logic (certificate source, trusted proxies, header
stripping, fields, decision, block page) lives in ``edgerules.enforcement.gate``.

* The certificate comes from the ASGI TLS extension
  (``scope["extensions"]["tls"]["client_cert_chain"]``, PEM strings) when the server
  provides it (``edgerules serve`` does; uvicorn, hypercorn, daphne and granian do not —
  docs/deploy.md), else from the headers of the ``forwarded_cert`` convention
  (``rfc9440`` by default, ``cloudflare``, ``nginx`` with ``cert_header``, ``envoy``,
  ``traefik``, ``alb``) **only** when ``scope["client"]`` is inside ``trusted_proxies``.
  From any other peer those headers are removed from the scope the application sees.
  A server that reports no TLS layer and a peer that is not a trusted proxy get one
  warning in the log (every request would look certificate-less).
* ``store=`` takes a ``Store`` or the path of an existing store file.
* Blocked requests are answered here (the rule's custom response or the default 403
  page); allowed ones reach the app with ``scope["edgerules.decision"]`` (the ruleset's
  ``Decision``), ``scope["edgerules.verdict"]`` and ``scope["edgerules.client_auth"]``.
* ``websocket`` scopes are checked too (a block closes with code 1008 before accept);
  other scopes (``lifespan``) pass through untouched.
* Which hostname selects the store's validator: the ``Host`` header (an ASGI server
  does not expose the SNI); Cloudflare does not say which name selects it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Unpack

from edgerules.enforcement.gate import Gate, GateOptions
from edgerules.store.option import store_option

__all__ = ["EdgeRulesMiddleware"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class EdgeRulesMiddleware:
    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        ruleset: Any,
        **options: Unpack[GateOptions],
    ) -> None:
        """``options``: ``validator``/``store`` (a ``Store`` or a path),
        ``trusted_proxies``, ``forwarded_cert``, ``cert_header`` (see
        :class:`edgerules.enforcement.gate.Gate`)."""
        self.app = app
        self.gate = Gate(ruleset, **store_option(options))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        tls = (scope.get("extensions") or {}).get("tls") or {}
        raw_path = scope.get("raw_path") or scope.get("path", "/").encode("utf-8")
        query = scope.get("query_string") or b""
        target = raw_path + (b"?" + query if query else b"")
        client = scope.get("client")
        scheme = scope.get("scheme") or ("https" if kind == "http" else "wss")
        scheme = {"wss": "https", "ws": "http"}.get(scheme, scheme)
        result = self.gate.process(
            method=scope.get("method", "GET").encode("ascii") if kind == "http" else b"GET",
            target=target,
            http_version=str(scope.get("http_version", "1.1")).encode("ascii"),
            headers=list(scope.get("headers") or ()),
            peer=client[0] if client else None,
            server=tuple(scope["server"]) if scope.get("server") else None,
            scheme=scheme,
            tls_chain_pem=tls.get("client_cert_chain") or None,
            tls_version=tls.get("tls_version"),
            tls_reported="tls" in (scope.get("extensions") or {}),
        )
        if result.blocked:
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": result.status,
                    "headers": result.block_headers(),
                }
            )
            await send({"type": "http.response.body", "body": result.body})
            return
        inner = dict(scope)
        inner["headers"] = result.headers
        inner.update(result.app_items())
        await self.app(inner, receive, send)
