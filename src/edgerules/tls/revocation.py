"""Revocation sources: the ``RevocationSource`` protocol and a serial set (CRLs are in
:mod:`edgerules.tls.crl`).

Owns: how "is this verified leaf revoked?" is answered by a source outside the chain
(the PKI store). Revocation is only asked about a *verified* leaf; as Cloudflare
documents (https://developers.cloudflare.com/ssl/client-certificates/revoke-client-certificate/),
a revoked certificate keeps ``verified = True`` and gets ``revoked = True``.

Invariants:

* ``version`` changes whenever the answer for some certificate may change; the
  validator's cache key includes it, so a revocation is seen on the next ``validate``.
* ``is_revoked`` never raises (a broken source answers "not revoked").
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from cryptography import x509

__all__ = ["RevocationSource", "SerialRevocation"]



@runtime_checkable
class RevocationSource(Protocol):
    """Anything that says whether a verified leaf is revoked."""

    version: int

    def is_revoked(self, leaf: x509.Certificate, issuer: x509.Certificate) -> bool: ...


class SerialRevocation:
    """A mutable set of revoked serial numbers (tests, simple deployments).

    ``issuer`` optionally restricts the set to leaves issued by one CA subject."""

    def __init__(self, serials: Iterable[int] = (), *, issuer: x509.Name | None = None) -> None:
        self._serials = set(serials)
        self._issuer = issuer
        self._lock = threading.Lock()
        self.version = 0

    def add(self, serial: int) -> None:
        with self._lock:
            self._serials.add(serial)
            self.version += 1

    def discard(self, serial: int) -> None:
        with self._lock:
            self._serials.discard(serial)
            self.version += 1

    def is_revoked(self, leaf: x509.Certificate, issuer: x509.Certificate) -> bool:
        try:
            if self._issuer is not None and leaf.issuer != self._issuer:
                return False
            return leaf.serial_number in self._serials
        except Exception:
            return False
