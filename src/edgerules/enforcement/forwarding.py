"""Header rules between client, proxy and origin.

Owns: hop-by-hop removal (RFC 9110 §7.6.1, including names listed in ``Connection``),
removal of every client-sent certificate header, ``X-Forwarded-*``/``Host`` handling,
and *which* certificate header families go to the origin for a request (the
:class:`ForwardingPolicy`). The header formats themselves, and
the list of certificate header names, belong to :mod:`edgerules.tls.headers`.

Invariants:
* ``Client-Cert``, ``Client-Cert-Chain``, ``Cf-Client-Cert-Der-Base64``,
  ``Cf-Client-Cert-Sha256`` and every ``cf-cert-*`` header sent by the client are
  removed (case-insensitively, and in any ``_`` for ``-`` spelling) for every request,
  whatever the forwarding policy.
* ``Client-Cert``/``Client-Cert-Chain`` are added only when the certificate verified,
  is not revoked and is not too large (the safe recipe of Cloudflare's forwarding page,
  https://developers.cloudflare.com/ssl/client-certificates/forward-a-client-certificate/),
  so their presence
  at the origin implies a verified, non-revoked certificate. ``Cf-Client-Cert-*`` follow
  the same condition (our choice; Cloudflare does not say). ``cf-cert-*`` mirror the rule fields whatever the verdict
  (booleans as ``true``/``false``), like the managed transform "Add TLS client auth headers"
  (https://developers.cloudflare.com/rules/transform/managed-transforms/reference/). All three are
  built by :func:`edgerules.tls.headers.forwarding_headers`.
* Names listed in ``Connection`` are removed as hop-by-hop, except the framing headers
  (``Content-Length``, ``Transfer-Encoding``) and ``Host``: a ``Connection`` token never
  changes how a message is framed (issue 9 item 6).
* ``X-Forwarded-For`` gets the client address appended; ``X-Forwarded-Proto`` and
  ``X-Forwarded-Host`` are overwritten.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from edgerules.errors import ConfigError
from edgerules.tls.headers import STRIP_HEADERS, forwarding_headers

__all__ = [
    "CERT_HEADER_NAMES",
    "FORWARDING_STYLES",
    "HOP_BY_HOP",
    "ForwardingPolicy",
    "certificate_headers",
    "client_response_headers",
    "is_cert_header",
    "origin_request_head",
    "origin_request_headers",
]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"expect",  # the proxy answers 100-continue itself
    }
)

#: Lower-case certificate header names (``edgerules.tls.headers.STRIP_HEADERS``) as bytes.
CERT_HEADER_NAMES = frozenset(name.encode("ascii") for name in STRIP_HEADERS)
_CERT_HEADER_PREFIX = b"cf-cert-"  # and any other cf-cert-* a client may invent
# Never removed because a ``Connection`` header names them (issue 9 item 6): dropping
# Content-Length would forward a body-less request whose body then follows as garbage
# (or a 502 after the origin already acted on it). RFC 9110 §7.6.1 forbids a sender to
# list end-to-end fields there; a client that does anyway gets its token ignored.
# (Transfer-Encoding is hop-by-hop and re-framed by the proxy; Host is always re-added.)
_NEVER_CONNECTION_OPTIONS = frozenset({b"content-length", b"transfer-encoding", b"host"})
# Proxy-owned headers: whatever the client sent is replaced.
_OVERWRITTEN = frozenset({b"x-forwarded-proto", b"x-forwarded-host"})

# Style names accepted by --forward / ForwardingPolicy.from_styles.
FORWARDING_STYLES = ("rfc9440", "cf-client-cert", "cf-cert", "none")


@dataclass(frozen=True)
class ForwardingPolicy:
    """Which certificate data is forwarded to the origin for one hostname.

    Client-sent copies of *every* certificate header are removed whatever the policy
    says (``forwarding.CERT_HEADER_NAMES`` / ``cf-cert-*``).
    """

    rfc9440: bool = True  # Client-Cert / Client-Cert-Chain (verified, not revoked, not too large)
    cf_client_cert: bool = False  # Cf-Client-Cert-Der-Base64 / Cf-Client-Cert-Sha256
    # Cloudflare's pages disagree: first request of a connection only (the forwarding page,
    # our default) or every request (the mTLS learning path); True sends them on every request.
    cf_client_cert_every_request: bool = False
    cf_cert: bool = False  # the 17 cf-cert-* headers of the managed transform

    @classmethod
    def from_styles(cls, styles: Iterable[str], *, every_request: bool = False) -> ForwardingPolicy:
        names = [s.strip().lower() for s in styles if s.strip()]
        for name in names:
            if name not in FORWARDING_STYLES:
                raise ConfigError(
                    f"unknown forwarding style {name!r}; expected one of {', '.join(FORWARDING_STYLES)}"
                )
        return cls(
            rfc9440="rfc9440" in names,
            cf_client_cert="cf-client-cert" in names,
            cf_client_cert_every_request=every_request,
            cf_cert="cf-cert" in names,
        )


def is_cert_header(lower_name: bytes) -> bool:
    # CGI-style origins (WSGI, PHP, Rack) map "_" and "-" to the same variable
    # (HTTP_CLIENT_CERT): an underscore spelling is the same header to them.
    name = lower_name.replace(b"_", b"-")
    return name in CERT_HEADER_NAMES or name.startswith(_CERT_HEADER_PREFIX)


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return tokens - _NEVER_CONNECTION_OPTIONS


def certificate_headers(
    client_auth: Any, policy: ForwardingPolicy, *, first_request: bool = True
) -> list[tuple[bytes, bytes]]:
    """Headers carrying certificate data to the origin for this request: the families
    ``policy`` enables, each built by ``forwarding_headers(client_auth, style)``.
    The list is shared (cached per certificate verdict and policy): do not modify it."""
    if client_auth is None:
        return []
    send_access = policy.cf_client_cert and (first_request or policy.cf_client_cert_every_request)
    key = (id(client_auth), policy, send_access)
    cached = _CERT_HEADERS.get(key)
    if cached is not None and cached[0] is client_auth:
        return cached[1]
    styles = [
        name
        for name, wanted in (
            ("rfc9440", policy.rfc9440),
            ("access", send_access),
            ("managed", policy.cf_cert),
        )
        if wanted
    ]
    # The values are ASCII: Base64, hex, true/false or \uXXXX-escaped text.
    headers = [
        (name.encode("ascii"), value.encode("ascii"))
        for style in styles
        for name, value in forwarding_headers(client_auth, style)
    ]
    if len(_CERT_HEADERS) >= 4096:
        _CERT_HEADERS.clear()
    # the ClientAuth is kept in the entry, so its id cannot be reused while cached
    _CERT_HEADERS[key] = (client_auth, headers)
    return headers


# (id(ClientAuth), policy, with Cf-Client-Cert-*) -> (ClientAuth, headers): one copy of a
# certificate's Base64 headers for every connection presenting it (they were ~0.7 KB of
# every idle connection's memory).
_CERT_HEADERS: dict[tuple[int, ForwardingPolicy, bool], tuple[Any, list[tuple[bytes, bytes]]]] = {}


# Lower-case name -> how a client header is treated on its way to the origin: _KEEP,
# _DROP (hop-by-hop, proxy-owned or a certificate header), or special handling. Filled
# as names are met (bounded): the per-header test ran on every header of every request.
_KEEP, _DROP, _XFF, _HOST, _LENGTH, _CONNECTION = range(6)
_NAME_KINDS: dict[bytes, int] = {}


def _name_kind(lower: bytes) -> int:
    kind = _NAME_KINDS.get(lower)
    if kind is None:
        if lower == b"x-forwarded-for":
            kind = _XFF
        elif lower == b"host":
            kind = _HOST
        elif lower == b"content-length":
            kind = _LENGTH
        elif lower == b"connection":
            kind = _CONNECTION
        elif lower in HOP_BY_HOP or lower in _OVERWRITTEN or is_cert_header(lower):
            kind = _DROP
        else:
            kind = _KEEP
        if len(_NAME_KINDS) < 4096:
            _NAME_KINDS[lower] = kind
    return kind


def origin_request_headers(
    headers: Iterable[tuple[bytes, bytes]],
    *,
    client_ip: str | bytes,
    original_host: bytes,
    upstream_netloc: str | bytes,
    preserve_host: bool,
    cert_headers: Iterable[tuple[bytes, bytes]] = (),
    chunked_body: bool = False,
) -> list[tuple[bytes, bytes]]:
    """The request headers sent to the origin, in the client's order, plus the proxy's:
    ``Host`` first, then the client's headers (hop-by-hop, names listed in
    ``Connection``, proxy-owned and certificate headers removed), ``X-Forwarded-For``
    (appended), ``X-Forwarded-Proto``, ``X-Forwarded-Host``, ``Transfer-Encoding`` for a
    chunked body, the certificate headers."""
    netloc = upstream_netloc if isinstance(upstream_netloc, bytes) else upstream_netloc.encode("ascii")
    out: list[tuple[bytes, bytes]] = [
        (b"Host", (original_host or netloc) if preserve_host else netloc)
    ]
    xff: list[bytes] = []
    tokens: set[bytes] = set()
    kinds = _NAME_KINDS
    for item in headers:
        name = item[0]
        kind = kinds.get(name)  # exact spelling first: most names arrive one way
        if kind is None:
            kind = _name_kind(name.lower())
            if len(kinds) < 4096:
                kinds[name] = kind
        if kind == _KEEP:
            out.append(item)
        elif kind == _XFF:
            value = item[1].strip()
            if value:
                xff.append(value)
        elif kind == _LENGTH:
            if not chunked_body:  # never sent beside Transfer-Encoding (RFC 9112 §6.2)
                out.append(item)
        elif kind == _CONNECTION:
            tokens.update(t.strip().lower() for t in item[1].split(b",") if t.strip())
    tokens -= _NEVER_CONNECTION_OPTIONS
    if tokens:
        # names listed in Connection are hop-by-hop too (framing headers excepted)
        out[1:] = [item for item in out[1:] if item[0].lower() not in tokens]
        if b"x-forwarded-for" in tokens:
            xff.clear()
    xff.append(client_ip if isinstance(client_ip, bytes) else client_ip.encode("ascii", "replace"))
    out.append((b"X-Forwarded-For", b", ".join(xff)))
    out.append((b"X-Forwarded-Proto", b"https"))
    if original_host:
        out.append((b"X-Forwarded-Host", original_host))
    if chunked_body:
        out.append((b"Transfer-Encoding", b"chunked"))
    out.extend(cert_headers)
    return out


def origin_request_head(
    method: bytes,
    target: bytes,
    headers: Iterable[tuple[bytes, bytes]],
    **options: Any,
) -> bytes:
    """The whole request head for the origin (HTTP/1.1, ``origin_request_headers``)."""
    lines = [method + b" " + target + b" HTTP/1.1"]
    for name, value in origin_request_headers(headers, **options):
        lines.append(name + b": " + value)
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


def client_response_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Origin response headers minus hop-by-hop ones (the proxy re-frames the body)."""
    out: list[tuple[bytes, bytes]] = []
    tokens: set[bytes] | None = None
    kinds = _RESPONSE_KINDS
    for item in headers:
        name = item[0]
        drop = kinds.get(name)
        if drop is None:
            drop = name.lower() in HOP_BY_HOP
            if len(kinds) < 4096:
                kinds[name] = drop
        if not drop:
            out.append(item)
        elif len(name) == 10 and name.lower() == b"connection":
            if tokens is None:
                tokens = set()
            tokens.update(t.strip().lower() for t in item[1].split(b",") if t.strip())
    if tokens:
        tokens -= _NEVER_CONNECTION_OPTIONS
        if tokens:
            out = [item for item in out if item[0].lower() not in tokens]
    return out


# name as sent -> whether it is hop-by-hop (bounded; the per-header test ran on every
# header of every response)
_RESPONSE_KINDS: dict[bytes, bool] = {}
