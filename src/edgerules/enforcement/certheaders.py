"""Client certificates forwarded by a TLS-terminating proxy in HTTP headers.

Owns the header conventions of the proxies users run, by name (docs/deploy.md gives each
proxy's configuration and the exact header format it sends):

==============  =====================================  =====================================
convention      header(s)                              value
==============  =====================================  =====================================
``rfc9440``     ``Client-Cert``, ``Client-Cert-Chain``  RFC 8941 Byte Sequence(s)
                                                       ``:<base64 DER>:`` (parsed with
                                                       ``http-sfv``)
``cloudflare``  ``Cf-Client-Cert-Der-Base64``          standard Base64 of the leaf's DER
``nginx``       any name (``X-SSL-Client-Cert``)       ``$ssl_client_escaped_cert``: the
                                                       URL-encoded PEM; the deprecated
                                                       ``$ssl_client_cert`` (PEM, TAB after
                                                       each newline) works too
``envoy``       ``X-Forwarded-Client-Cert`` (XFCC)     elements ``By=…;Hash=…;Cert="…";
                                                       Chain="…";Subject="…";URI=…;DNS=…``;
                                                       ``Cert``/``Chain`` URL-encoded PEM
``traefik``     ``X-Forwarded-Tls-Client-Cert``        PEM bodies without delimiters and
                                                       newlines, comma-separated, leaf first
                                                       (older Traefik versions URL-escaped
                                                       it — both are read)
``alb``         ``X-Amzn-Mtls-Clientcert`` (mTLS       URL-encoded PEM, ``+=/`` left as
                passthrough, whole chain) or           they are
                ``X-Amzn-Mtls-Clientcert-Leaf``
                (verify mode)
==============  =====================================  =====================================

Invariants:

* Parsing never raises and never guesses: a value that does not follow its convention
  exactly is "no certificate" (``None``), and so is one over ``MAX_VALUE`` bytes (a
  certificate chain is a few KiB; a megabyte of XFCC is an attack, refused before any
  splitting).
* Several field lines of a header that holds **one** value (``Client-Cert``, the PEM and
  Base64 headers, Traefik's list, ALB's chain) are no certificate, never "the first or the
  last line wins": a proxy that appends its line without removing the client's would let
  the client's count. Lines of a *list* header whose meaning survives joining
  (``Client-Cert-Chain``; XFCC, whose last element is the immediate peer's) are joined by
  ``", "`` (RFC 9110 §5.3).
* XFCC: the **last** element is used — the one the immediate (trusted) peer appended
  (Envoy's ``APPEND_FORWARD``); with ``SANITIZE_SET`` there is only one. Inside an element a
  key may appear once (``URI``/``DNS`` excepted); two ``Cert`` keys are no certificate.
* No X.509 parsing happens here: the validator decodes and judges the DER.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote

__all__ = [
    "CONVENTIONS",
    "KNOWN_CERT_HEADERS",
    "MAX_VALUE",
    "ForwardedCert",
    "der_chain_from_header",
    "header_format",
    "parse_xfcc",
    "pem_to_der",
]

MAX_VALUE = 64 * 1024  # bytes of one (joined) header value; larger values are ignored
_MAX_CERTS = 20  # certificates taken from one header (the validator caps at 20 too)

_PEM_RE = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)
_B64_BODY = re.compile(r"[A-Za-z0-9+/]+={0,2}")

# convention -> (leaf header, chain header or None); nginx's header name is configurable.
CONVENTIONS: dict[str, tuple[str, str | None]] = {
    "rfc9440": ("client-cert", "client-cert-chain"),
    "cloudflare": ("cf-client-cert-der-base64", None),
    "nginx": ("x-ssl-client-cert", None),
    "envoy": ("x-forwarded-client-cert", None),
    "traefik": ("x-forwarded-tls-client-cert", None),
    "alb": ("x-amzn-mtls-clientcert", "x-amzn-mtls-clientcert-leaf"),
}

# Every header any convention reads: removed from requests of untrusted peers, and a
# trusted peer sending one the configuration does not read is worth a warning.
KNOWN_CERT_HEADERS: frozenset[bytes] = frozenset(
    {n.encode() for pair in CONVENTIONS.values() for n in pair if n}
    | {b"ssl-client-cert", b"x-client-cert", b"cf-client-cert-sha256"}
)


def pem_to_der(text: str) -> list[bytes]:
    """The DER of every PEM certificate block in ``text``; ``[]`` if one is malformed."""
    out = []
    for body in _PEM_RE.findall(text):
        try:
            out.append(base64.b64decode("".join(body.split()), validate=True))
        except (binascii.Error, ValueError):
            return []
    return out


def _b64(text: str) -> bytes | None:
    text = text.strip()
    if not text or not _B64_BODY.fullmatch(text):
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _sf_bytes(value: str, *, as_list: bool) -> list[bytes] | None:
    """RFC 8941 Byte Sequence (an Item) or a List of them, parsed with ``http-sfv``."""
    import http_sfv

    container: http_sfv.Item | http_sfv.List = http_sfv.List() if as_list else http_sfv.Item()
    try:
        container.parse(value.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None
    items = list(container) if as_list else [container]
    out = []
    for item in items:
        raw = getattr(item, "value", None)
        if not isinstance(raw, bytes) or not raw:
            return None  # a Token, String or Inner List is not a certificate
        out.append(raw)
    return out


# -- Envoy XFCC ---------------------------------------------------------------------
def _split_unquoted(text: str, sep: str) -> list[str] | None:
    """Split at ``sep`` outside double quotes (a backslash escapes the next character
    inside quotes); None when a quote is left open."""
    parts: list[str] = []
    buf: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append("".join(buf))
            buf = []
            continue
        buf.append(ch)
    if quoted or escaped:
        return None
    parts.append("".join(buf))
    return parts


def _unquote_value(raw: str) -> str | None:
    raw = raw.strip()
    if not raw.startswith('"'):
        return None if '"' in raw else raw
    if len(raw) < 2 or not raw.endswith('"'):
        return None
    out: list[str] = []
    it = iter(raw[1:-1])
    for ch in it:
        if ch == "\\":
            ch = next(it, "")
        elif ch == '"':
            return None  # a quote in the middle: not one quoted-string
        out.append(ch)
    return "".join(out)


def parse_xfcc(value: str) -> list[dict[str, list[str]]] | None:
    """The elements of an ``X-Forwarded-Client-Cert`` value, each a mapping of lower-case
    key to its values (URI and DNS may repeat), or None when the value is malformed.

    Grammar (Envoy's documentation): elements separated by ``,``; ``key=value`` pairs by
    ``;``; keys case-insensitive; a value holding ``,``, ``;`` or ``=`` is double-quoted,
    with ``\\"`` for a quote inside."""
    elements = _split_unquoted(value, ",")
    if elements is None:
        return None
    out = []
    for element in elements:
        if not element.strip():
            return None
        pairs = _split_unquoted(element, ";")
        if pairs is None:
            return None
        fields: dict[str, list[str]] = {}
        for pair in pairs:
            key, sep, raw = pair.partition("=")
            key = key.strip().lower()
            if not sep or not key or not key.isascii() or not key.replace("_", "").isalnum():
                return None
            val = _unquote_value(raw)
            if val is None:
                return None
            fields.setdefault(key, []).append(val)
        out.append(fields)
    return out


def _xfcc_chain(value: str) -> list[bytes] | None:
    elements = parse_xfcc(value)
    if not elements:
        return None
    last = elements[-1]
    certs = last.get("cert", [])
    if len(certs) != 1 or len(last.get("chain", [])) > 1:
        return None
    leaf = pem_to_der(unquote(certs[0]))
    if len(leaf) != 1:
        return None
    chain = pem_to_der(unquote(last["chain"][0])) if "chain" in last else []
    if "chain" in last and not chain:
        return None
    if chain and chain[0] == leaf[0]:  # Envoy's Chain starts with the leaf
        chain = chain[1:]
    return leaf + chain


# -- one convention -----------------------------------------------------------------
def _pem_header(value: str) -> list[bytes] | None:
    # unquote, not unquote_plus: ALB leaves '+' unescaped and it is Base64, not a space
    text = unquote(value) if "%" in value else value
    ders = pem_to_der(text)
    return ders or None


def _traefik(value: str) -> list[bytes] | None:
    text = unquote(value) if "%" in value else value
    out = []
    for item in text.split(","):
        der = _b64(item)
        if der is None:
            return None
        out.append(der)
    return out or None


@dataclass(frozen=True)
class ForwardedCert:
    """One convention, configured: which headers hold the certificate and how to read
    them. ``header`` overrides the leaf header's name (nginx has no fixed name)."""

    convention: str
    header: str
    chain_header: str | None

    @classmethod
    def create(cls, convention: str, header: str | None = None) -> ForwardedCert:
        from edgerules.errors import ConfigError

        if convention not in CONVENTIONS:
            raise ConfigError(
                f"unknown forwarded-certificate convention {convention!r}; expected one of "
                f"{', '.join(CONVENTIONS)}"
            )
        leaf, chain = CONVENTIONS[convention]
        if header is not None:
            name = header.strip().lower()
            if not name or not name.isascii() or any(c in name for c in " \t:\r\n"):
                raise ConfigError(f"bad certificate header name {header!r}")
            if convention != "nginx" and name != leaf:
                raise ConfigError(
                    f"the {convention} convention sends the certificate in {leaf!r}, not "
                    f"{name!r}; only nginx's header name is configurable"
                )
            leaf = name
        return cls(convention, leaf, chain)

    @classmethod
    def for_header(cls, header: str) -> ForwardedCert:
        """The convention a header name implies (the older ``cert_header=`` option)."""
        name = header.strip().lower()
        for convention, (leaf, _chain) in CONVENTIONS.items():
            if name == leaf and convention != "nginx":
                return cls.create(convention)
        return cls.create("nginx", name)

    @property
    def names(self) -> frozenset[bytes]:
        """The header names this convention reads (lower case)."""
        return frozenset(n.encode("latin-1") for n in (self.header, self.chain_header) if n)

    def extract(self, headers: Sequence[tuple[bytes, bytes]]) -> list[bytes] | None:
        """DER chain (leaf first) from the request's headers, or None (no certificate)."""
        leaf_name = self.header.encode("latin-1")
        chain_name = self.chain_header.encode("latin-1") if self.chain_header else None
        leaf_lines = [v for n, v in headers if n.lower() == leaf_name]
        chain_lines = (
            [v for n, v in headers if n.lower() == chain_name] if chain_name else []
        )
        try:
            return self._extract(leaf_lines, chain_lines)
        except Exception:  # header parsing must never break a request
            return None

    def _extract(self, leaf_lines: list[bytes], chain_lines: list[bytes]) -> list[bytes] | None:
        conv = self.convention
        if conv == "alb":
            # CONVENTIONS["alb"] is (passthrough chain header, verify-mode leaf header).
            # Passthrough mode sends the chain, verify mode the leaf: one of them, once.
            if len(leaf_lines) + len(chain_lines) != 1:
                return None
            value = _text((leaf_lines or chain_lines)[0])
            return None if value is None else _limit(_pem_header(value))
        if not leaf_lines:
            return None
        if conv == "envoy":
            value = _text(b", ".join(leaf_lines))
            return None if value is None else _limit(_xfcc_chain(value))
        if len(leaf_lines) != 1:
            return None
        value = _text(leaf_lines[0])
        if value is None:
            return None
        if conv == "rfc9440":
            leaf = _sf_bytes(value, as_list=False)
            if leaf is None:
                return None
            if not chain_lines:
                return leaf
            chain_value = _text(b", ".join(chain_lines))
            chain = _sf_bytes(chain_value, as_list=True) if chain_value is not None else None
            return None if chain is None else _limit(leaf + chain)
        if conv == "cloudflare":
            der = _b64(value)
            return None if der is None else [der]
        if conv == "traefik":
            return _limit(_traefik(value))
        return _limit(_pem_header(value))  # nginx


def _text(raw: bytes) -> str | None:
    if len(raw) > MAX_VALUE:
        return None
    text = raw.decode("latin-1").strip()
    return text or None


def _limit(chain: list[bytes] | None) -> list[bytes] | None:
    if not chain or len(chain) > _MAX_CERTS:
        return None
    return chain


# -- the older single-function interface (kept for callers of 0.1) -------------------
def header_format(name: str) -> str:
    """``rfc9440``, ``xfcc`` or ``pem``: the format a header name implies."""
    convention = ForwardedCert.for_header(name).convention
    return {"rfc9440": "rfc9440", "envoy": "xfcc"}.get(convention, "pem")


def der_chain_from_header(
    name: str, value: str | bytes, chain_value: str | bytes | None = None
) -> list[bytes] | None:
    """DER chain (leaf first) from one forwarded-certificate header value, or None."""
    fc = ForwardedCert.for_header(name)
    raw = value.encode("latin-1") if isinstance(value, str) else value
    headers = [(fc.header.encode(), raw)]
    if chain_value is not None and fc.chain_header:
        chain = chain_value.encode("latin-1") if isinstance(chain_value, str) else chain_value
        headers.append((fc.chain_header.encode(), chain))
    return fc.extract(headers)
