"""The transport-neutral core of the ASGI and WSGI middlewares.

Owns: where the client certificate comes from (the server's TLS layer, or a header set
by a *trusted* proxy), which headers the application sees (certificate headers from
untrusted peers are stripped), the client address behind trusted proxies, evaluation of
the ruleset on only the fields it reads, and the block response.

Invariants:
* A forwarded-certificate header (``cert_header``, ``Client-Cert``, ``Client-Cert-Chain``,
  ``X-Forwarded-Client-Cert`` and the ``cf-cert-*`` family) is honoured **only** when the
  immediate peer's address is inside ``trusted_proxies``; otherwise every such header
  (also spelt with ``_`` for ``-``) is removed before the application sees the request.
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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from edgerules.enforcement.certheaders import der_chain_from_header, header_format, pem_to_der
from edgerules.enforcement.decision import RulesetDecider, Verdict, block_page
from edgerules.enforcement.forwarding import is_cert_header
from edgerules.enforcement.request_fields import RequestInfo
from edgerules.errors import ConfigError
from edgerules.tls import NOT_REQUESTED

__all__ = ["Gate", "GateOptions", "GateResult"]

_ALWAYS_CERT_HEADERS = frozenset(
    {b"x-forwarded-client-cert", b"x-ssl-client-cert", b"ssl-client-cert"}
)
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
    cert_header: str


class Gate:
    def __init__(
        self,
        ruleset: Any,
        *,
        validator: Any = None,
        store: Any = None,
        trusted_proxies: Iterable[str | ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
        cert_header: str = "client-cert",
    ) -> None:
        if validator is not None and store is not None:
            raise ConfigError("give either validator= or store=, not both")
        self.decider = ruleset if hasattr(ruleset, "decide") else RulesetDecider(ruleset)
        self.validator = validator
        self.store = store
        try:
            self.trusted = tuple(ipaddress.ip_network(n, strict=False) for n in trusted_proxies)
        except ValueError as exc:
            raise ConfigError(f"bad trusted_proxies entry: {exc}") from None
        self.cert_header = cert_header.lower().encode("latin-1")
        # Compared "_"-insensitively like ``is_cert_header``: to CGI-style readers
        # "x_ssl_client_cert" and "x-ssl-client-cert" are one header.
        self._strip = {self.cert_header.replace(b"_", b"-")} | _ALWAYS_CERT_HEADERS

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
        """The chain a trusted proxy put in ``cert_header``, or None.

        Field lines of one name are one value joined by ", " (RFC 9110 §5.3), never "the
        last line wins": a proxy that appends its line without removing the client's
        must not let the client's count. So two lines of an RFC 9440 ``Client-Cert`` (an
        Item) or of a PEM header mean no certificate; XFCC lines form one list whose
        last element (the immediate peer's) is used; ``Client-Cert-Chain`` lines form
        one list."""
        values = [v for n, v in headers if n.lower() == self.cert_header]
        if not values:
            return None
        name = self.cert_header.decode("latin-1")
        if len(values) > 1 and header_format(name) != "xfcc":
            return None
        chain_lines = [v for n, v in headers if n.lower() == b"client-cert-chain"]
        return der_chain_from_header(name, b", ".join(values), b", ".join(chain_lines) or None)

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
    ) -> GateResult:
        trusted = self.is_trusted(peer)
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
        )
        # 2. the client certificate chain
        chain: list[bytes] | None = None
        if tls_chain_pem:
            chain = pem_to_der("\n".join(tls_chain_pem))
        elif trusted:
            chain = self._forwarded_chain(headers)
        host = info.hostname().decode("latin-1")
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
