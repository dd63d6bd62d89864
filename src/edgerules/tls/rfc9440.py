"""RFC 9440 ``Client-Cert`` / ``Client-Cert-Chain`` values (Cloudflare's
``cf.tls_client_auth.cert_rfc9440`` fields:
https://developers.cloudflare.com/ssl/client-certificates/client-certificate-variables/).

Owns the Structured-Field encodings and their size caps. Pure functions of DER bytes.

* ``Client-Cert``: one RFC 8941 Byte Sequence, ``:`` + standard Base64 with padding + ``:``.
* ``Client-Cert-Chain``: an RFC 8941 List of Byte Sequences joined by ``", "``, in the
  order the client sent them, leaf excluded.
* Caps: the encoded leaf may be at most 10 KiB (10240 bytes), the encoded chain at most
  16 KiB (16384 bytes); over the cap the value is ``""`` and ``too_large`` is true. "Exceeds"
  is read as strictly greater than the cap, so a value of exactly 10240 bytes is kept.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

__all__ = ["CERT_LIMIT", "CHAIN_LIMIT", "byte_sequence", "encode_cert", "encode_chain"]

CERT_LIMIT = 10 * 1024
CHAIN_LIMIT = 16 * 1024


def byte_sequence(der: bytes) -> str:
    """An RFC 8941 Byte Sequence."""
    return ":" + base64.b64encode(der).decode("ascii") + ":"


def encode_cert(der: bytes | None) -> tuple[str, bool]:
    """``(value, too_large)`` for the leaf; ``("", False)`` when there is no leaf."""
    if not der:
        return "", False
    # Base64 length is known without encoding: skip the work for oversized leaves.
    if 4 * ((len(der) + 2) // 3) + 2 > CERT_LIMIT:
        return "", True
    return byte_sequence(der), False


def encode_chain(ders: Sequence[bytes]) -> tuple[str, bool]:
    """``(value, too_large)`` for the intermediates as sent (leaf excluded by the caller)."""
    if not ders:
        return "", False
    size = sum(4 * ((len(d) + 2) // 3) + 2 for d in ders) + 2 * (len(ders) - 1)
    if size > CHAIN_LIMIT:
        return "", True
    return ", ".join(byte_sequence(d) for d in ders), False
