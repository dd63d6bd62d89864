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
  is not revoked and is not too large (the spec's safe recipe, §8.3), so their presence
  at the origin implies a verified, non-revoked certificate. ``Cf-Client-Cert-*`` follow
  the same condition [U]. ``cf-cert-*`` mirror the rule fields whatever the verdict
  (booleans as ``true``/``false``), like the managed transform (§8.2). All three are
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
    # [X]/[U] spec §8.1: first request of a connection only (the forwarding page), as the
    # spec recommends as default; True sends them on every request (the learning path).
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
    ``policy`` enables, each built by ``forwarding_headers(client_auth, style)``."""
    if client_auth is None:
        return []
    send_access = policy.cf_client_cert and (first_request or policy.cf_client_cert_every_request)
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
    return [
        (name.encode("ascii"), value.encode("ascii"))
        for style in styles
        for name, value in forwarding_headers(client_auth, style)
    ]


def origin_request_headers(
    headers: Iterable[tuple[bytes, bytes]],
    *,
    client_ip: str,
    original_host: bytes,
    upstream_netloc: str,
    preserve_host: bool,
    cert_headers: Iterable[tuple[bytes, bytes]] = (),
    chunked_body: bool = False,
) -> list[tuple[bytes, bytes]]:
    """The request headers sent to the origin, in the client's order, plus the proxy's."""
    headers = list(headers)
    drop = HOP_BY_HOP | _connection_tokens(headers) | _OVERWRITTEN
    out: list[tuple[bytes, bytes]] = []
    xff: list[bytes] = []
    for name, value in headers:
        lower = name.lower()
        if lower in drop or is_cert_header(lower):
            continue
        if lower == b"x-forwarded-for":
            xff.append(value.strip())
            continue
        if lower == b"host":
            continue  # re-added first, below
        if chunked_body and lower == b"content-length":
            continue  # never sent beside Transfer-Encoding (RFC 9112 §6.2)
        out.append((name, value))
    netloc = upstream_netloc.encode("ascii")
    out.insert(0, (b"Host", (original_host or netloc) if preserve_host else netloc))
    xff.append(client_ip.encode("ascii", "replace"))
    out.append((b"X-Forwarded-For", b", ".join(v for v in xff if v)))
    out.append((b"X-Forwarded-Proto", b"https"))
    if original_host:
        out.append((b"X-Forwarded-Host", original_host))
    if chunked_body:
        out.append((b"Transfer-Encoding", b"chunked"))
    out.extend(cert_headers)
    return out


def client_response_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Origin response headers minus hop-by-hop ones (h11 re-frames the body)."""
    headers = list(headers)
    drop = HOP_BY_HOP | _connection_tokens(headers)
    return [(n, v) for n, v in headers if n.lower() not in drop]
