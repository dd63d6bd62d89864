"""Client certificates forwarded by a TLS-terminating proxy in an HTTP header.

Owns parsing of the three common encodings into DER chains (leaf first):

* RFC 9440 ``Client-Cert: :<base64 DER>:`` (+ ``Client-Cert-Chain: :<b64>:, :<b64>:``);
* nginx ``$ssl_client_escaped_cert``: the URL-encoded PEM (any header name, commonly
  ``X-SSL-Client-Cert``); an unescaped PEM with tabs/spaces for newlines also works;
* Envoy ``x-forwarded-client-cert`` (XFCC): ``By=…;Hash=…;Cert="<url-encoded PEM>";
  Chain="<url-encoded PEM chain>"``; with several elements (one per hop) the **last** one
  is used, as it was appended by the immediate, trusted peer.

Never raises: unparseable input gives ``None`` (treated as "no certificate"). No X.509
parsing happens here — the validator decodes (and judges) the DER.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote

__all__ = ["der_chain_from_header", "header_format", "pem_to_der"]

_PEM_RE = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)
_MAX_HEADER = 64 * 1024  # ignore absurdly large values outright


def pem_to_der(text: str) -> list[bytes]:
    out = []
    for body in _PEM_RE.findall(text):
        try:
            out.append(base64.b64decode("".join(body.split()), validate=True))
        except (binascii.Error, ValueError):
            return []
    return out


def header_format(name: str) -> str:
    lower = name.lower()
    if lower == "client-cert":
        return "rfc9440"
    if lower == "x-forwarded-client-cert":
        return "xfcc"
    return "pem"


def _sf_binary(item: str) -> bytes | None:
    item = item.strip()
    if len(item) < 2 or item[0] != ":" or item[-1] != ":":
        return None
    try:
        return base64.b64decode(item[1:-1], validate=True)
    except (binascii.Error, ValueError):
        return None


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts, buf, quoted, escaped = [], [], False, False
    for ch in text:
        if escaped:
            buf.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            buf.append(ch)
            escaped = True
        elif ch == '"':
            buf.append(ch)
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return parts


def _xfcc(value: str) -> list[bytes] | None:
    elements = [e for e in _split_outside_quotes(value, ",") if e.strip()]
    if not elements:
        return None
    pairs: dict[str, str] = {}
    for pair in _split_outside_quotes(elements[-1], ";"):
        key, sep, val = pair.partition("=")
        if not sep:
            continue
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] == '"':
            val = val[1:-1].replace('\\"', '"')
        pairs[key.strip().lower()] = val
    if "cert" not in pairs:
        return None
    leaf = pem_to_der(unquote(pairs["cert"]))
    if len(leaf) != 1:
        return None
    chain = pem_to_der(unquote(pairs.get("chain", "")))
    # Envoy's Chain includes the leaf first; drop it when it repeats.
    if chain and chain[0] == leaf[0]:
        chain = chain[1:]
    return leaf + chain


def der_chain_from_header(
    name: str, value: str | bytes, chain_value: str | bytes | None = None
) -> list[bytes] | None:
    """DER chain (leaf first) from a forwarded-certificate header, or None."""
    try:
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if isinstance(chain_value, bytes):
            chain_value = chain_value.decode("latin-1")
        if not value.strip() or len(value) > _MAX_HEADER:
            return None
        fmt = header_format(name)
        if fmt == "rfc9440":
            leaf = _sf_binary(value)
            if leaf is None:
                return None
            out = [leaf]
            if chain_value and len(chain_value) <= _MAX_HEADER:
                for item in chain_value.split(","):
                    der = _sf_binary(item)
                    if der is None:
                        return None
                    out.append(der)
            return out
        if fmt == "xfcc":
            return _xfcc(value)
        ders = pem_to_der(unquote(value) if "%" in value else value)
        return ders or None
    except Exception:  # header parsing must never break a request
        return None
