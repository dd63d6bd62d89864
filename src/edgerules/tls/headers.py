"""Forwarding headers: certificate data sent on to the origin
(https://developers.cloudflare.com/ssl/client-certificates/forward-a-client-certificate/).

Choices marked "ours" are points Cloudflare does not specify.

Owns three header families built from a ``ClientAuth``:

* ``rfc9440``: ``Client-Cert`` and ``Client-Cert-Chain`` following the safe recipe of
  Cloudflare's forwarding page: only when the certificate is verified, not revoked and the encoding
  is not too large; the chain only when non-empty and not too large.
* ``access``: ``Cf-Client-Cert-Der-Base64`` (leaf DER, standard Base64 with padding,
  ours) and ``Cf-Client-Cert-Sha256`` (lowercase hex like ``cert_fingerprint_sha256``, ours),
  sent (ours) only for a verified, non-revoked certificate (Access forwards certificates it
  authenticated), so their presence at the origin means what ``Client-Cert`` means.
* ``managed``: the 17 ``cf-cert-*`` headers of the "Add TLS client auth headers" Managed
  Transform (https://developers.cloudflare.com/rules/transform/managed-transforms/reference/),
  always all of them; Booleans ``true``/``false`` (ours); non-ASCII
  characters and control characters as ``\\uXXXX`` escapes of their code points
  (lowercase hex, UTF-16 surrogate pairs above U+FFFF), as Cloudflare does for location
  headers.

Proxies must remove every client-supplied header named in :data:`STRIP_HEADERS` before
adding these (clients can inject them; ours: overwrite, never keep a client's value).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from edgerules.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from edgerules.tls.auth import ClientAuth

__all__ = [
    "MANAGED_HEADERS",
    "STRIP_HEADERS",
    "STYLES",
    "escape_header_value",
    "forwarding_headers",
]

# header -> ClientAuth field suffix (the managed transform's table, in its order)
MANAGED_HEADERS: tuple[tuple[str, str], ...] = (
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

STRIP_HEADERS: frozenset[str] = frozenset(
    {"client-cert", "client-cert-chain", "cf-client-cert-der-base64", "cf-client-cert-sha256"}
    | {name for name, _ in MANAGED_HEADERS}
)

STYLES = ("rfc9440", "access", "managed", "all")


def escape_header_value(text: str) -> str:
    """Non-ASCII and control characters as ``\\uXXXX`` (lowercase hex)."""
    if text.isascii() and text.isprintable():
        return text
    out: list[str] = []
    for ch in text:
        cp = ord(ch)
        if 0x20 <= cp < 0x7F:
            out.append(ch)
        elif cp <= 0xFFFF:
            out.append(f"\\u{cp:04x}")
        else:
            cp -= 0x10000
            out.append(f"\\u{0xD800 + (cp >> 10):04x}\\u{0xDC00 + (cp & 0x3FF):04x}")
    return "".join(out)


def _rfc9440(auth: ClientAuth) -> list[tuple[str, str]]:
    if not (auth.verified and not auth.revoked and not auth.rfc9440_too_large and auth.rfc9440):
        return []
    out = [("Client-Cert", auth.rfc9440)]
    chain = auth.chain_rfc9440
    if chain and not auth.chain_rfc9440_too_large:
        out.append(("Client-Cert-Chain", chain))
    return out


def _access(auth: ClientAuth) -> list[tuple[str, str]]:
    if not (auth.verified and not auth.revoked and auth.chain_der):
        return []
    leaf = auth.chain_der[0]
    return [
        ("Cf-Client-Cert-Der-Base64", base64.b64encode(leaf).decode("ascii")),
        ("Cf-Client-Cert-Sha256", auth.fingerprint_sha256),
    ]


def _managed(auth: ClientAuth) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for header, suffix in MANAGED_HEADERS:
        value = auth.value("cf.tls_client_auth." + suffix)
        if isinstance(value, bool):
            out.append((header, "true" if value else "false"))
        else:
            out.append((header, escape_header_value(value.decode("utf-8", "replace"))))
    return out


def forwarding_headers(auth: ClientAuth, style: str = "all") -> list[tuple[str, str]]:
    """Headers for the origin. ``style`` is one of ``rfc9440``, ``access``, ``managed``
    or ``all`` (the three families in that order); ``ConfigError`` otherwise."""
    if style == "rfc9440":
        return _rfc9440(auth)
    if style == "access":
        return _access(auth)
    if style == "managed":
        return _managed(auth)
    if style == "all":
        return _rfc9440(auth) + _access(auth) + _managed(auth)
    raise ConfigError(f"unknown forwarding header style {style!r}; expected one of {STYLES}")
