"""Rule fields computed from one HTTP request (shared by the proxy, ASGI and WSGI).

Owns: ``RequestInfo`` (the transport-neutral facts about a request) and
``request_fields(needed, info, client_auth)``, which returns a plain dict holding
**only** the fields in ``needed`` (normally ``ruleset.fields``) — nothing else is ever
computed, so a ruleset that reads only ``cf.tls_client_auth.cert_verified`` costs no
header or cookie parsing. Values are runtime values (bytes, int, bool, IP, tuple,
dict[bytes, tuple[bytes, ...]]), ready for ``Context`` coercion.

Choices for points Cloudflare leaves unspecified (documented in docs/proxy.md):
* ``http.host`` is the Host header (or SNI when absent) lowercased, without ``:port``
  and without one trailing dot; ``full_uri`` keeps the Host header exactly as sent.
* ``raw.*`` fields equal their non-raw twins (the proxy performs no URL rewriting).
* Fields the proxy cannot know (geolocation, bot scores, bodies) are left to their
  defaults by not being set.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

__all__ = [
    "CONNECTION_FIELDS",
    "PROVIDED_FIELDS",
    "RequestInfo",
    "connection_constant",
    "connection_level",
    "field_getter",
    "request_fields",
]

_AUTH_PREFIX = "cf.tls_client_auth."
_SCAN_HEADERS = 8  # RequestInfo.header: up to this many fields, scanned instead of mapped


@dataclass
class RequestInfo:
    method: bytes
    target: bytes  # request target as received (origin-form or absolute-form)
    http_version: bytes = b"1.1"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)  # original-case names
    client_ip: str = "0.0.0.0"
    server_ip: str | None = None
    server_port: int = 443
    scheme: str = "https"
    tls_version: str = ""
    tls_cipher: str = ""
    sni: str | None = None
    received: float = field(default_factory=time.time)
    # The Host field's value when the caller parsed it already (the proxy: at most one
    # Host field, http1 enforces it); None: taken from ``headers``.
    host: bytes | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    # -- derived pieces, each computed at most once ----------------------------------
    # (inline ``cache.get`` rather than a helper taking a closure: the proxy calls
    # ``hostname`` and ``origin_target`` on every request.)
    def _memo(self, key: str, fn: Callable[[], Any]) -> Any:
        try:
            return self._cache[key]
        except KeyError:
            value = self._cache[key] = fn()
            return value

    def header(self, name: bytes) -> bytes | None:
        """Comma-joined value of a header (lowercase name), or None when absent."""
        header_map = self._cache.get("headers")
        if header_map is not None:
            values = header_map.get(name)
        elif len(self.headers) <= _SCAN_HEADERS:
            # A few fields: one scan is cheaper than building the whole map.
            size = len(name)
            found = [v for n, v in self.headers if len(n) == size and n.lower() == name]
            values = tuple(found) if found else None
        else:
            values = self.header_map().get(name)
        if values is None:
            return None
        return b", ".join(values) if name != b"cookie" else b"; ".join(values)

    def header_map(self) -> dict[bytes, tuple[bytes, ...]]:
        value = self._cache.get("headers")
        if value is None:
            out: dict[bytes, list[bytes]] = {}
            for name, item in self.headers:
                out.setdefault(name.lower(), []).append(item)
            value = self._cache["headers"] = {k: tuple(v) for k, v in out.items()}
        return value  # type: ignore[no-any-return]

    def origin_target(self) -> bytes:
        """Path + query, converting an absolute-form target to origin-form."""
        t = self.target
        if t.startswith(b"/"):
            return t
        value = self._cache.get("target")
        if value is None:
            value = self._cache["target"] = _origin_form(t)
        return value  # type: ignore[no-any-return]

    def path_query(self) -> tuple[bytes, bytes]:
        value = self._cache.get("pq")
        if value is None:
            t = self.origin_target().split(b"#", 1)[0]
            path, _, query = t.partition(b"?")
            value = self._cache["pq"] = (path, query)
        return value  # type: ignore[no-any-return]

    def host_header(self) -> bytes:
        host = self.host
        if host is None:
            host = self.header(b"host")
            if host is None:
                return (self.sni or self.server_ip or "").encode("ascii", "replace")
        return host.split(b",")[0].strip()

    def hostname(self) -> bytes:
        value = self._cache.get("hostname")
        if value is None:
            host = self.host_header().lower()
            if host.startswith(b"["):
                value = host.split(b"]", 1)[0] + b"]"
            else:
                name = host.rsplit(b":", 1)[0] if host.count(b":") == 1 else host
                # "api.example.com." is the same host (the DNS root label), and origins
                # treat it so: a rule comparing http.host must not miss it.
                value = name.removesuffix(b".")
            self._cache["hostname"] = value
        return value  # type: ignore[no-any-return]

    def args(self) -> tuple[list[bytes], list[bytes]]:
        def build() -> tuple[list[bytes], list[bytes]]:
            names: list[bytes] = []
            values: list[bytes] = []
            for part in self.path_query()[1].split(b"&"):
                if not part:
                    continue
                name, _, value = part.partition(b"=")
                names.append(name)
                values.append(value)
            return names, values

        return self._memo("args", build)


def _origin_form(t: bytes) -> bytes:
    if b"://" in t:
        rest = t.split(b"://", 1)[1]
        slash = rest.find(b"/")
        question = rest.find(b"?")
        if slash < 0 and question < 0:
            return b"/"
        cut = min(i for i in (slash, question) if i >= 0)
        rest = rest[cut:]
        return rest if rest.startswith(b"/") else b"/" + rest
    return t  # "*" (OPTIONS) or garbage: keep as is


def _ip(text: str | None) -> Any:
    if not text:
        return ipaddress.IPv4Address(0)
    try:
        addr = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return ipaddress.IPv4Address(0)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _extension(path: bytes) -> bytes:
    segment = path.rsplit(b"/", 1)[-1]
    dot = segment.rfind(b".")
    if dot <= 0:  # no dot, or the segment starts with its only dot
        return b""
    return segment[dot + 1 :].lower()


def _args_map(info: RequestInfo) -> dict[bytes, tuple[bytes, ...]]:
    out: dict[bytes, list[bytes]] = {}
    for name, value in zip(*info.args(), strict=True):
        out.setdefault(name, []).append(value)
    return {k: tuple(v) for k, v in out.items()}


def _cookies(info: RequestInfo) -> dict[bytes, tuple[bytes, ...]]:
    out: dict[bytes, list[bytes]] = {}
    for header in info.header_map().get(b"cookie", ()):
        for part in header.split(b";"):
            part = part.strip()
            if not part:
                continue
            name, _, value = part.partition(b"=")
            out.setdefault(unquote_to_bytes(name.strip()), []).append(value.strip())
    return {k: tuple(v) for k, v in out.items()}


def _accepted_languages(info: RequestInfo) -> tuple[bytes, ...]:
    header = info.header(b"accept-language")
    if not header:
        return ()
    tags: list[tuple[float, int, bytes]] = []
    for index, item in enumerate(header.split(b",")):
        tag, *params = (p.strip() for p in item.split(b";"))
        if not tag or tag == b"*":
            continue
        q = 1.0
        for p in params:
            if p.startswith(b"q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        tags.append((-q, index, tag))
    return tuple(tag for _, _, tag in sorted(tags))


def _full_uri(info: RequestInfo) -> bytes:
    return (
        info.scheme.encode() + b"://" + info.host_header() + info.origin_target().split(b"#", 1)[0]
    )


def _http_version(info: RequestInfo) -> bytes:
    return b"HTTP/" + info.http_version


_GETTERS: dict[str, Callable[[RequestInfo], Any]] = {
    "ssl": lambda r: r.scheme == "https",
    "cf.tls_version": lambda r: r.tls_version.encode(),
    "cf.tls_cipher": lambda r: r.tls_cipher.encode(),
    "cf.edge.server_port": lambda r: int(r.server_port),
    "cf.edge.server_ip": lambda r: _ip(r.server_ip),
    "cf.edge.client_tcp": lambda r: True,
    "ip.src": lambda r: _ip(r.client_ip),
    "http.host": lambda r: r.hostname(),
    "http.request.method": lambda r: r.method.upper(),
    "http.request.version": _http_version,
    "http.request.full_uri": _full_uri,
    "http.request.uri": lambda r: r.origin_target().split(b"#", 1)[0],
    "http.request.uri.path": lambda r: r.path_query()[0],
    "http.request.uri.path.extension": lambda r: _extension(r.path_query()[0]),
    "http.request.uri.query": lambda r: r.path_query()[1],
    "http.request.uri.args": _args_map,
    "http.request.uri.args.names": lambda r: tuple(r.args()[0]),
    "http.request.uri.args.values": lambda r: tuple(r.args()[1]),
    "http.request.headers": lambda r: dict(r.header_map()),
    "http.request.headers.names": lambda r: tuple(n for n, _ in r.headers),
    "http.request.headers.values": lambda r: tuple(v for _, v in r.headers),
    "http.request.headers.truncated": lambda r: False,
    "http.request.accepted_languages": _accepted_languages,
    "http.request.cookies": _cookies,
    "http.cookie": lambda r: r.header(b"cookie") or b"",
    "http.user_agent": lambda r: r.header(b"user-agent") or b"",
    "http.referer": lambda r: r.header(b"referer") or b"",
    "http.x_forwarded_for": lambda r: r.header(b"x-forwarded-for") or b"",
    "http.request.timestamp.sec": lambda r: int(r.received),
    "http.request.timestamp.msec": lambda r: int((r.received % 1) * 1000),
}
for _name in (
    "http.request.full_uri",
    "http.request.uri",
    "http.request.uri.path",
    "http.request.uri.path.extension",
    "http.request.uri.query",
    "http.request.uri.args",
    "http.request.uri.args.names",
    "http.request.uri.args.values",
):
    _GETTERS["raw." + _name] = _GETTERS[_name]

PROVIDED_FIELDS = frozenset(_GETTERS)

#: Fields whose value is the same for every request of a connection (given its
#: certificate verdict): with ``http.host`` they are all a per-connection verdict cache
#: needs as a key (``proxy/server.py``). ``cf.tls_client_auth.*`` are connection-level too.
CONNECTION_FIELDS = frozenset(
    {
        "ssl",
        "cf.tls_version",
        "cf.tls_cipher",
        "cf.edge.server_port",
        "cf.edge.server_ip",
        "cf.edge.client_tcp",
        "ip.src",
    }
)


def field_getter(name: str) -> Callable[[RequestInfo], Any] | None:
    """How ``request_fields`` computes field ``name`` from a ``RequestInfo`` (None for
    ``cf.tls_client_auth.*``, read from the ``ClientAuth``, and fields not provided)."""
    return _GETTERS.get(name)


def connection_constant(name: str) -> bool:
    """Whether field ``name`` has the same value for every request of a connection (given
    its certificate verdict): ``CONNECTION_FIELDS`` and ``cf.tls_client_auth.*``."""
    return name in CONNECTION_FIELDS or name.startswith(_AUTH_PREFIX)


def connection_level(fields: Iterable[str]) -> bool:
    """Whether ``fields`` are connection-level fields and ``http.host`` only."""
    return all(
        name in CONNECTION_FIELDS or name == "http.host" or name.startswith(_AUTH_PREFIX)
        for name in fields
    )


def request_fields(
    needed: Iterable[str], info: RequestInfo, client_auth: Any = None
) -> dict[str, Any]:
    """The values of ``needed`` fields that this request provides (others are omitted)."""
    out: dict[str, Any] = {}
    auth_fields: Mapping[str, Any] | None = None
    for name in needed:
        getter = _GETTERS.get(name)
        if getter is not None:
            out[name] = getter(info)
        elif name.startswith(_AUTH_PREFIX) and client_auth is not None:
            if auth_fields is None:
                auth_fields = client_auth.fields()
            try:
                out[name] = auth_fields[name]
            except KeyError:
                pass
    return out
