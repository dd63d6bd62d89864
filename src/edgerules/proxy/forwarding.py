"""Header rules between client, proxy and origin.

Owns: hop-by-hop removal (RFC 9110 §7.6.1, including names listed in ``Connection``),
removal of every client-sent certificate header, ``X-Forwarded-*``/``Host`` handling,
and the certificate headers added for the origin (spec mtls.md §8).

Invariants:
* ``Client-Cert``, ``Client-Cert-Chain``, ``Cf-Client-Cert-Der-Base64``,
  ``Cf-Client-Cert-Sha256`` and every ``cf-cert-*`` header sent by the client are
  removed (case-insensitively) for every request, whatever the forwarding policy.
* ``Client-Cert``/``Client-Cert-Chain`` are added only when the certificate verified,
  is not revoked and is not too large (the spec's safe recipe, §8.3), so their presence
  at the origin implies a verified, non-revoked certificate. ``Cf-Client-Cert-*`` follow
  the same condition [U]. ``cf-cert-*`` mirror the rule fields whatever the verdict
  (booleans as ``true``/``false``), like the managed transform (§8.2).
* ``X-Forwarded-For`` gets the client address appended; ``X-Forwarded-Proto`` and
  ``X-Forwarded-Host`` are overwritten.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from typing import Any

from edgerules.proxy.config import ForwardingPolicy

__all__ = [
    "CERT_HEADER_NAMES",
    "HOP_BY_HOP",
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

CERT_HEADER_NAMES = frozenset(
    {b"client-cert", b"client-cert-chain", b"cf-client-cert-der-base64", b"cf-client-cert-sha256"}
)
_CERT_HEADER_PREFIX = b"cf-cert-"
# Proxy-owned headers: whatever the client sent is replaced.
_OVERWRITTEN = frozenset({b"x-forwarded-proto", b"x-forwarded-host"})

_AUTH = "cf.tls_client_auth."
# (header, field) of the managed transform "Add TLS client auth headers" (fields.md §1.2)
CF_CERT_HEADERS = (
    ("cf-cert-revoked", "cert_revoked"),
    ("cf-cert-verified", "cert_verified"),
    ("cf-cert-presented", "cert_presented"),
    ("cf-cert-issuer-dn", "cert_issuer_dn"),
    ("cf-cert-subject-dn", "cert_subject_dn"),
    ("cf-cert-issuer-dn-rfc2253", "cert_issuer_dn_rfc2253"),
    ("cf-cert-subject-dn-rfc2253", "cert_subject_dn_rfc2253"),
    ("cf-cert-issuer-dn-legacy", "cert_issuer_dn_legacy"),
    ("cf-cert-subject-dn-legacy", "cert_subject_dn_legacy"),
    ("cf-cert-serial", "cert_serial"),
    ("cf-cert-issuer-serial", "cert_issuer_serial"),
    ("cf-cert-fingerprint-sha256", "cert_fingerprint_sha256"),
    ("cf-cert-fingerprint-sha1", "cert_fingerprint_sha1"),
    ("cf-cert-not-before", "cert_not_before"),
    ("cf-cert-not-after", "cert_not_after"),
    ("cf-cert-ski", "cert_ski"),
    ("cf-cert-issuer-ski", "cert_issuer_ski"),
)


_BOOL_FIELDS = frozenset({"cert_revoked", "cert_verified", "cert_presented"})


def is_cert_header(lower_name: bytes) -> bool:
    return lower_name in CERT_HEADER_NAMES or lower_name.startswith(_CERT_HEADER_PREFIX)


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return tokens


def _header_value(value: Any) -> bytes:
    """Render a field value as a header value: booleans true/false, non-ASCII as \\uXXXX."""
    if isinstance(value, bool):
        return b"true" if value else b"false"
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    if text.isascii():
        return text.encode("ascii")
    return "".join(c if ord(c) < 128 else f"\\u{ord(c):04x}" for c in text).encode("ascii")


def certificate_headers(
    client_auth: Any, policy: ForwardingPolicy, *, first_request: bool = True
) -> list[tuple[bytes, bytes]]:
    """Headers carrying certificate data to the origin for this request."""
    if client_auth is None:
        return []
    send_access = policy.cf_client_cert and (first_request or policy.cf_client_cert_every_request)
    if hasattr(client_auth, "forwarding_headers"):
        # The validator's ClientAuth builds them (same recipe; edgerules.tls.headers).
        styles = [
            name
            for name, wanted in (
                ("rfc9440", policy.rfc9440),
                ("access", send_access),
                ("managed", policy.cf_cert),
            )
            if wanted
        ]
        return [
            (name.encode("ascii"), _header_value(value))
            for style in styles
            for name, value in client_auth.forwarding_headers(style)
        ]
    # Fallback for stand-in ClientAuth objects that only offer fields().
    out: list[tuple[bytes, bytes]] = []
    fields = None
    trusted = bool(client_auth.verified) and not bool(client_auth.revoked)
    if policy.rfc9440 and trusted:
        fields = client_auth.fields()
        leaf = fields.get(_AUTH + "cert_rfc9440", b"")
        if leaf and not fields.get(_AUTH + "cert_rfc9440_too_large", False):
            out.append((b"Client-Cert", _header_value(leaf)))
            chain = fields.get(_AUTH + "cert_chain_rfc9440", b"")
            # Client-Cert-Chain must never travel without Client-Cert (RFC 9440 §2.3).
            if chain and not fields.get(_AUTH + "cert_chain_rfc9440_too_large", False):
                out.append((b"Client-Cert-Chain", _header_value(chain)))
    if send_access and trusted and client_auth.chain_der:
        leaf_der = client_auth.chain_der[0]
        out.append((b"Cf-Client-Cert-Der-Base64", base64.b64encode(leaf_der)))
        out.append((b"Cf-Client-Cert-Sha256", hashlib.sha256(leaf_der).hexdigest().encode()))
    if policy.cf_cert:
        if fields is None:
            fields = client_auth.fields()
        for header, name in CF_CERT_HEADERS:
            value = fields.get(_AUTH + name, False if name in _BOOL_FIELDS else b"")
            out.append((header.encode(), _header_value(value)))
    return out


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
