"""WSGI middleware: the thin synchronous twin of ``edgerules.asgi``.

>>> app.wsgi_app = EdgeRulesWSGIMiddleware(app.wsgi_app, ruleset, store=store,
...                                        trusted_proxies=["127.0.0.1/32"],
...                                        cert_header="x-ssl-client-cert")  # doctest: +SKIP

The certificate comes from ``environ["SSL_CLIENT_CERT"]`` (+ ``SSL_CLIENT_CERT_CHAIN_n``,
mod_ssl/mod_wsgi style PEM; mod_wsgi's ``environ["mod_ssl.var_lookup"]`` is asked when
the variables were not exported; werkzeug's development server sets
``SSL_CLIENT_CERT``) when the server provides it, else from the ``forwarded_cert``
convention's headers only when ``REMOTE_ADDR`` is a trusted proxy; from other peers the
certificate headers are deleted from ``environ``. ``store=`` takes a ``Store`` or a path. Allowed requests get ``environ["edgerules.decision"]``,
``environ["edgerules.verdict"]`` and ``environ["edgerules.client_auth"]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any, Unpack

from edgerules.enforcement.gate import Gate, GateOptions
from edgerules.store.option import store_option

__all__ = ["EdgeRulesWSGIMiddleware"]


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Blocked"


def _environ_headers(environ: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    out = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").lower()
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            name = key.replace("_", "-").lower()
        else:
            continue
        out.append((name.encode("latin-1"), str(value).encode("latin-1")))
    return out


_MAX_CHAIN = 20  # SSL_CLIENT_CERT_CHAIN_n read at most (the validator caps at 20 too)


def _tls_chain(environ: dict[str, Any]) -> tuple[list[str], bool]:
    """(PEM chain from the server's TLS layer, whether the server reports TLS at all)."""
    lookup = environ.get("mod_ssl.var_lookup")

    def var(name: str) -> str:
        value = environ.get(name)
        if not value and callable(lookup):
            try:
                value = lookup(name)
            except Exception:  # outside a request, or mod_ssl absent
                value = None
        return value if isinstance(value, str) else ""

    chain = [var("SSL_CLIENT_CERT")] if var("SSL_CLIENT_CERT") else []
    for i in range(_MAX_CHAIN):
        pem = var(f"SSL_CLIENT_CERT_CHAIN_{i}")
        if not pem:
            break
        chain.append(pem)
    # mod_ssl's StdEnvVars export SSL_PROTOCOL etc.; a server that exports none of them
    # and has no var_lookup says nothing about client certificates.
    reported = bool(chain) or callable(lookup) or any(
        k.startswith("SSL_") for k in environ)
    return chain, reported


class EdgeRulesWSGIMiddleware:
    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        ruleset: Any,
        **options: Unpack[GateOptions],
    ) -> None:
        """``options``: ``validator``/``store`` (a ``Store`` or a path),
        ``trusted_proxies``, ``forwarded_cert``, ``cert_header`` (see
        :class:`edgerules.enforcement.gate.Gate`)."""
        self.app = app
        self.gate = Gate(ruleset, **store_option(options))

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        script = environ.get("SCRIPT_NAME", "")
        raw = (script + path).encode("latin-1")
        query = environ.get("QUERY_STRING", "")
        target = raw + (b"?" + query.encode("latin-1") if query else b"")
        chain, reported = _tls_chain(environ)
        protocol = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
        result = self.gate.process(
            method=environ.get("REQUEST_METHOD", "GET").encode("latin-1"),
            target=target,
            http_version=protocol.split("/", 1)[-1].encode("latin-1"),
            headers=_environ_headers(environ),
            peer=environ.get("REMOTE_ADDR"),
            server=(environ.get("SERVER_NAME", ""), int(environ.get("SERVER_PORT") or 0)),
            scheme=environ.get("wsgi.url_scheme", "http"),
            tls_chain_pem=chain or None,
            tls_reported=reported,
        )
        if result.blocked:
            start_response(
                f"{result.status} {_phrase(result.status)}",
                [
                    (n.decode("latin-1").title(), v.decode("latin-1"))
                    for n, v in result.block_headers()
                ],
            )
            return [result.body]
        kept = {name for name, _ in result.headers}
        for key in [k for k in environ if k.startswith("HTTP_")]:
            if key[5:].replace("_", "-").lower().encode("latin-1") not in kept:
                del environ[key]
        environ.update(result.app_items())
        return self.app(environ, start_response)
