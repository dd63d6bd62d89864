"""The transport-neutral core of the ASGI and WSGI middlewares.

Owns: where the client certificate comes from (the server's TLS layer, or a header set
by a *trusted* proxy), which headers the application sees (certificate headers from
untrusted peers are stripped), the client address behind trusted proxies, evaluation of
the ruleset on only the fields it reads, and the block response.

Invariants:
* A forwarded-certificate header (the configured convention's, see
  :mod:`edgerules.enforcement.certheaders`) is honoured **only** when the immediate peer's
  address is inside ``trusted_proxies``; from any other peer every certificate header of
  every convention (and the ``cf-cert-*`` family, also spelt with ``_`` for ``-``) is
  removed before the application sees the request.
* Careless configurations are loud: naming a convention (``forwarded_cert=``/
  ``cert_header=``) without ``trusted_proxies`` — which would silently ignore every
  forwarded certificate — and a ``trusted_proxies`` entry of ``/0`` — which would let any
  client forge one — are ``ConfigError``s.
* When certificates matter (a validator/store is given or the ruleset reads
  ``cf.tls_client_auth.*``) the gate logs, once each: a request with neither a TLS layer
  reporting on the certificate nor a trusted proxy (every request will look
  certificate-less), certificate headers from an untrusted peer (ignored), and a trusted
  proxy sending another convention's header than the configured one.
* A chain from the server's own TLS layer wins over any header.
* A certificate header sent twice is never resolved by "last line wins" (a proxy that
  appends without stripping would let the client's line count): see
  ``_forwarded_chain``.
* ``ip.src`` is the immediate peer, or — behind trusted proxies — the right-most
  ``X-Forwarded-For`` address that is not itself a trusted proxy.
* Nothing here raises for request data: bad headers mean "no certificate".
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from edgerules.enforcement.certheaders import KNOWN_CERT_HEADERS, ForwardedCert, pem_to_der
from edgerules.enforcement.decision import RulesetDecider, Verdict, block_page
from edgerules.enforcement.forwarding import is_cert_header
from edgerules.enforcement.request_fields import RequestInfo
from edgerules.errors import ConfigError
from edgerules.tls import NOT_REQUESTED

__all__ = ["Gate", "GateOptions", "GateResult"]

log = logging.getLogger("edgerules.middleware")

_CERT_FIELD_PREFIX = "cf.tls_client_auth."
_TLS_VERSIONS = {0x0301: "TLSv1", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2", 0x0304: "TLSv1.3"}


@dataclass
class GateResult:
    verdict: Verdict
    client_auth: Any
    headers: list[tuple[bytes, bytes]]  # what the application should see
    blocked: bool
    status: int = 200
    content_type: bytes = b""
    body: bytes = b""

    def block_headers(self) -> list[tuple[bytes, bytes]]:
        """Response headers of a blocked request (lower-case names)."""
        return [
            (b"content-type", self.content_type),
            (b"content-length", str(len(self.body)).encode("ascii")),
            (b"cache-control", b"no-store"),
        ]

    def app_items(self) -> dict[str, Any]:
        """What an allowed request carries to the application (ASGI scope / WSGI environ
        keys): the ruleset's ``Decision``, the ``Verdict`` and the ``ClientAuth``."""
        return {
            "edgerules.decision": self.verdict.decision,
            "edgerules.verdict": self.verdict,
            "edgerules.client_auth": self.client_auth,
        }


class GateOptions(TypedDict, total=False):
    """The keyword options of :class:`Gate`, which the ASGI/WSGI middlewares pass on."""

    validator: Any
    store: Any
    trusted_proxies: Iterable[str | ipaddress.IPv4Network | ipaddress.IPv6Network]
    forwarded_cert: str
    cert_header: str


class Gate:
    def __init__(
        self,
        ruleset: Any,
        *,
        validator: Any = None,
        store: Any = None,
        trusted_proxies: Iterable[str | ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
        forwarded_cert: str | None = None,
        cert_header: str | None = None,
    ) -> None:
        """``forwarded_cert``: the convention a trusted proxy uses (``rfc9440``,
        ``cloudflare``, ``nginx``, ``envoy``, ``traefik``, ``alb``); ``cert_header``: the
        header name for ``nginx`` (or, alone, a header name that implies the convention,
        as in 0.1). Default: RFC 9440 ``Client-Cert``."""
        if validator is not None and store is not None:
            raise ConfigError("give either validator= or store=, not both")
        self.decider = ruleset if hasattr(ruleset, "decide") else RulesetDecider(ruleset)
        self.validator = validator
        self.store = store
        if isinstance(trusted_proxies, str | bytes):
            trusted_proxies = [trusted_proxies]  # type: ignore[list-item]
        try:
            self.trusted = tuple(ipaddress.ip_network(n, strict=False) for n in trusted_proxies)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"bad trusted_proxies entry: {exc}") from None
        everyone = [str(n) for n in self.trusted if n.prefixlen == 0]
        if everyone:
            raise ConfigError(
                f"trusted_proxies {everyone[0]} trusts every address: any client could then "
                "forge a certificate header or X-Forwarded-For; list your proxies' addresses"
            )
        if forwarded_cert is not None:
            self.forwarded = ForwardedCert.create(forwarded_cert, cert_header)
        elif cert_header is not None:
            self.forwarded = ForwardedCert.for_header(cert_header)
        else:
            self.forwarded = ForwardedCert.create("rfc9440")
        if (forwarded_cert is not None or cert_header is not None) and not self.trusted:
            raise ConfigError(
                f"forwarded certificates ({self.forwarded.convention}: "
                f"{self.forwarded.header}) are read only from trusted_proxies, and "
                "trusted_proxies is empty: every request would look certificate-less. Give "
                "the addresses of the proxies that send the header (trusted_proxies=[...])"
            )
        self.cert_header = self.forwarded.header.encode("latin-1")
        # Compared "_"-insensitively like ``is_cert_header``: to CGI-style readers
        # "x_ssl_client_cert" and "x-ssl-client-cert" are one header.
        self._strip = {n.replace(b"_", b"-") for n in self.forwarded.names} | KNOWN_CERT_HEADERS
        self.certificates_matter = (
            validator is not None
            or store is not None
            or any(f.startswith(_CERT_FIELD_PREFIX) for f in getattr(self.decider, "fields", ()))
        )
        self._warned: set[str] = set()

    def is_trusted(self, address: str | None) -> bool:
        if not address or not self.trusted:
            return False
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.trusted)

    def _is_cert_header(self, lower: bytes) -> bool:
        return lower.replace(b"_", b"-") in self._strip or is_cert_header(lower)

    def _client_ip(self, peer: str | None, headers: Sequence[tuple[bytes, bytes]]) -> str:
        peer = peer or "0.0.0.0"
        if not self.is_trusted(peer):
            return peer
        hops: list[str] = []
        for name, value in headers:
            if name.lower() == b"x-forwarded-for":
                hops.extend(h.strip() for h in value.decode("latin-1").split(",") if h.strip())
        for hop in reversed(hops):
            if not self.is_trusted(hop):
                return hop
        return hops[0] if hops else peer

    def _forwarded_chain(self, headers: Sequence[tuple[bytes, bytes]]) -> list[bytes] | None:
        """The chain a trusted proxy put in the configured convention's headers, or None
        (repeated field lines: see :mod:`edgerules.enforcement.certheaders`)."""
        return self.forwarded.extract(headers)

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    def _diagnose(
        self, peer: str | None, trusted: bool, headers: Sequence[tuple[bytes, bytes]],
        tls_reported: bool,
    ) -> None:
        """One warning per kind of misconfiguration (see the module docstring)."""
        sent = {n.lower() for n, _ in headers} & KNOWN_CERT_HEADERS
        if not trusted:
            if sent:
                self._warn_once(
                    "untrusted",
                    "edgerules: ignored the certificate header %s from %s, which is not in "
                    "trusted_proxies %s; if that peer is your TLS-terminating proxy, add its "
                    "address to trusted_proxies",
                    sorted(n.decode() for n in sent)[0], peer or "an unknown peer",
                    [str(n) for n in self.trusted] or "(empty)",
                )
            elif not tls_reported:
                self._warn_once(
                    "blind",
                    "edgerules: a request from %s carried no client-certificate information: "
                    "the server did not report its TLS layer (the ASGI 'tls' extension or "
                    "SSL_CLIENT_CERT; uvicorn, hypercorn, daphne, granian and gunicorn never "
                    "do) and the peer is not a trusted proxy, so EVERY request will look "
                    "certificate-less (cf.tls_client_auth.cert_presented = false). Run the "
                    "app with `edgerules serve`, or behind a proxy that forwards the "
                    "certificate, listed in trusted_proxies (docs/deploy.md)",
                    peer or "an unknown peer",
                )
        elif sent and not (sent & self.forwarded.names):
            self._warn_once(
                "other-convention",
                "edgerules: the trusted proxy %s sent %s, but the middleware reads the "
                "%s convention (%s): set forwarded_cert= to the proxy's convention",
                peer, sorted(n.decode() for n in sent)[0], self.forwarded.convention,
                self.forwarded.header,
            )
    def _validator_for(self, host: str) -> Any:
        if self.validator is not None:
            return self.validator
        if self.store is not None:
            return self.store.validator_for_hostname(host)
        return None

    def process(
        self,
        *,
        method: bytes,
        target: bytes,
        http_version: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        peer: str | None,
        server: tuple[str, int] | None,
        scheme: str,
        tls_chain_pem: Sequence[str] | None = None,
        tls_version: int | None = None,
        tls_reported: bool | None = None,
        client_auth: Any = None,
        cert_requested: bool | None = None,
        tls_cipher: str = "",
        sni: str | None = None,
    ) -> GateResult:
        """Decide one request. ``tls_chain_pem``: the chain the server's TLS layer saw
        (PEM); ``tls_reported``: whether the server reports on client certificates at all
        (default: a chain was given). ``client_auth``/``cert_requested``: a verdict the
        caller already has (``edgerules serve`` keeps one per connection, current), used
        instead of validating here."""
        trusted = self.is_trusted(peer)
        if tls_reported is None:
            tls_reported = bool(tls_chain_pem)
        if self.certificates_matter and not tls_reported and len(self._warned) < 3:
            self._diagnose(peer, trusted, headers, tls_reported)
        # 1. headers the application may see; certificate headers only from trusted peers
        app_headers = [(n, v) for n, v in headers if trusted or not self._is_cert_header(n.lower())]
        lower = {n.lower(): v for n, v in headers}
        if trusted and b"x-forwarded-proto" in lower:
            scheme = lower[b"x-forwarded-proto"].decode("latin-1").split(",")[0].strip() or scheme
        info = RequestInfo(
            method=method,
            target=target,
            http_version=http_version,
            headers=list(app_headers),
            client_ip=self._client_ip(peer, headers),
            server_ip=server[0] if server else None,
            server_port=int(server[1])
            if server and server[1]
            else (443 if scheme == "https" else 80),
            scheme=scheme,
            tls_version=_TLS_VERSIONS.get(tls_version or 0, ""),
            tls_cipher=tls_cipher,
            sni=sni,
        )
        # 2. the client certificate chain
        host = info.hostname().decode("latin-1")
        if client_auth is not None:
            validator = self.validator if cert_requested is None else (
                True if cert_requested else None)
        else:
            chain: list[bytes] | None = None
            if tls_chain_pem:
                chain = pem_to_der("\n".join(tls_chain_pem))
            elif trusted:
                chain = self._forwarded_chain(headers)
            validator = self._validator_for(host)
            if validator is None:
                client_auth = NOT_REQUESTED
            else:
                client_auth = validator.validate(chain or [], hostname=host or None)
        # 3. decide
        verdict = self.decider.decide(info, client_auth)
        if verdict.outcome == "allow":
            return GateResult(verdict, client_auth, app_headers, blocked=False)
        status, ctype, body = block_page(
            verdict,
            client_auth,
            accept=info.header(b"accept") or b"",
            cert_requested=validator is not None,
        )
        return GateResult(verdict, client_auth, app_headers, True, status, ctype, body)
