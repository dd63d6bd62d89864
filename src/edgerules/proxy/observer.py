"""What the proxy server reports about its work, for metrics: one small, stable interface.

Owns: ``ProxyObserver`` (the three events the server reports) and ``NullObserver`` (the
default: does nothing). The metrics (``proxy.metrics``) implement it; the server only
calls it, so a rewrite of the request path keeps metrics working as long as it keeps
these three calls.

Invariants (what the server promises and what an observer must do):

* The server calls the observer on its event-loop thread, synchronously, after the fact
  (the work is done; nothing waits on the observer's answer).
* ``handshake(seconds)``: once per *completed* TLS handshake, with the time from the
  accepted connection to the finished handshake. Failed handshakes are counted by the
  server (``stats["tls_failures"]``), not reported here.
* ``validated(validator, client_auth)``: after each validation of a client's certificate
  chain (the validator that ran and its ``ClientAuth``); connections to hosts without
  mTLS are not reported.
* ``request(record)``: once per access-log record (one per answered request, including
  the 4xx the server answers itself), with the very dict handed to the access log. The
  access log formats it on another thread: an observer reads it and never modifies it.
* An observer never raises, never blocks and keeps no reference to per-request objects
  (a request costs it a few counter increments).
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["NullObserver", "ProxyObserver"]


class ProxyObserver(Protocol):
    def handshake(self, seconds: float) -> None: ...

    def validated(self, validator: Any, client_auth: Any) -> None: ...

    def request(self, record: dict[str, Any]) -> None: ...


class NullObserver:
    """Observes nothing (no ``--admin-listen``): three empty calls."""

    __slots__ = ()

    def handshake(self, seconds: float) -> None:
        pass

    def validated(self, validator: Any, client_auth: Any) -> None:
        pass

    def request(self, record: dict[str, Any]) -> None:
        pass
