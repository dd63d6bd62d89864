"""Configuration of the mTLS-terminating proxy: limits, timeouts and forwarding policy.

Owns: ``ProxyConfig`` (everything the server needs besides the decision hook) and
``Limits`` (robustness defaults); ``ForwardingPolicy`` (which certificate headers go to
the origin, per hostname) belongs to :mod:`edgerules.enforcement.forwarding`. Invariants: every value is validated here, once, and a
wrong value raises ``ConfigError``; the rest of the proxy trusts these objects.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from edgerules.enforcement.forwarding import FORWARDING_STYLES, ForwardingPolicy
from edgerules.errors import ConfigError

__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "FORWARDING_STYLES",
    "ForwardingPolicy",
    "Limits",
    "ProxyConfig",
    "check_poll_interval",
    "parse_hostport",
    "parse_upstream",
]

#: Seconds: how old the store state (revocations, mTLS hostnames, CAs) used for a request
#: may be (``--poll-interval`` of ``edgerules proxy`` and ``edgerules serve``).
DEFAULT_POLL_INTERVAL = 0.25


def check_poll_interval(value: object) -> None:
    """``ConfigError`` unless ``value`` is a finite number >= 0."""
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ConfigError(f"poll_interval must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class Limits:
    """Robustness limits. Defaults are conservative values for an internet-facing proxy."""

    # concurrent client connections; at the limit the oldest connection that is not in a
    # request is closed for the new one, and when every one is in a request the new
    # connection is answered 503 (up to max_connections // 16 + 8 more, then refused)
    max_connections: int = 1024
    handshake_timeout: float = 10.0  # whole TLS handshake
    first_request_timeout: float = 5.0  # handshake done -> first request head complete
    header_timeout: float = 10.0  # whole request head (line + headers) once its first byte came
    idle_timeout: float = 30.0  # keep-alive wait for the next request
    max_connection_requests: int = 1000  # requests per connection; the last says "close"
    max_connection_age: float = 600.0  # seconds a connection may be used for new requests
    validation_budget: float = 1.0  # seconds for a client certificate chain's validation
    body_timeout: float = 30.0  # max silence while reading a request body
    max_header_bytes: int = 32 * 1024  # request line + headers; over → 431
    max_header_count: int = 100  # header fields; over → 431
    connect_timeout: float = 5.0  # upstream TCP connect; over → 504
    upstream_timeout: float = 30.0  # upstream silence (response head, body chunks); over → 504
    upstream_max_idle: int = 32  # pooled idle keep-alive connections to the upstream
    upstream_idle_ttl: float = 20.0  # drop pooled connections idle for longer than this
    shutdown_grace: float = 10.0  # SIGTERM: time left to in-flight requests

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            # NaN passes "value <= 0" and infinity is no limit at all: refuse both.
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or (isinstance(value, float) and not math.isfinite(value))
                or value <= 0
            ):
                raise ConfigError(
                    f"limit {f.name} must be a positive finite number, got {value!r}"
                )


def parse_hostport(text: str, *, default_port: int | None = None) -> tuple[str, int]:
    """``HOST:PORT`` / ``[v6]:PORT`` / ``:PORT`` → (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        if default_port is None:
            raise ConfigError(f"expected HOST:PORT, got {text!r}")
        host, port_text = text, str(default_port)
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"bad port in {text!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"port out of range in {text!r}")
    return host, port


@dataclass(frozen=True)
class Upstream:
    scheme: str  # "http" | "https"
    host: str
    port: int
    base_path: str  # prefix prepended to every request path ("" for none)

    @property
    def netloc(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def parse_upstream(url: str) -> Upstream:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"upstream must be an http:// or https:// URL, got {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ConfigError(f"bad port in upstream URL {url!r}") from None
    path = parts.path.rstrip("/")
    if any(not 0x21 <= ord(c) <= 0x7E for c in path) or parts.query or parts.fragment:
        # the prefix goes into every request target as it is (server.py builds those
        # heads without re-validation): visible ASCII only, no query or fragment
        raise ConfigError(
            f"upstream URL {url!r}: the path prefix must be visible ASCII (percent-encode "
            "the rest), without a query or fragment"
        )
    return Upstream(parts.scheme, parts.hostname, port, path)


@dataclass
class ProxyConfig:
    """Everything the proxy server needs except the decision hook and the store."""

    upstream: str
    listen_host: str = "127.0.0.1"
    listen_port: int = 8443
    cert_file: str | None = None  # PEM certificate (chain) for the server; None → dev cert
    key_file: str | None = None
    dev_cert_hostnames: tuple[str, ...] = ("localhost", "*.localhost")
    limits: Limits = field(default_factory=Limits)
    forwarding: ForwardingPolicy = field(default_factory=ForwardingPolicy)
    forwarding_by_host: Mapping[str, ForwardingPolicy] = field(default_factory=dict)
    preserve_host: bool = True  # send the client's Host to the origin (X-Forwarded-Host always set)
    server_name: str = "edgerules"
    # Seconds a store read (a hostname's mTLS validator) is reused: the bound within which
    # a trust change committed by another process reaches open connections (issue 9
    # item 1). The CLI opens the store with the same revocation_poll_interval.
    poll_interval: float = DEFAULT_POLL_INTERVAL

    def __post_init__(self) -> None:
        self.upstream_parsed = parse_upstream(self.upstream)
        check_poll_interval(self.poll_interval)
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError("--cert and --key must be given together")
        self.forwarding_by_host = {
            k.lower().rstrip("."): v for k, v in self.forwarding_by_host.items()
        }

    def forwarding_for(self, host: str | None) -> ForwardingPolicy:
        if host:
            policy = self.forwarding_by_host.get(host.lower().rstrip("."))
            if policy is not None:
                return policy
        return self.forwarding
