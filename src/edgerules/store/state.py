"""Building the in-memory enforcement state from rows (shared by every backend).

Owns: turning the rows a backend read in one snapshot into a :class:`RawState` —
certificate PEMs parsed once (a cache per store, bounded), the hostname → trusted-CAs
map in the documented order (uploaded CAs newest first, then the managed CA), the managed
CA's public key for key-based revocation matching, and the revoked serials as a frozenset.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from edgerules.pki import inspect, keys
from edgerules.store.live import RawState

if TYPE_CHECKING:
    from cryptography import x509

_CACHE_LIMIT = 4096  # parsed CA certificates kept per store


def _parse(pem: str, cache: dict[str, x509.Certificate]) -> x509.Certificate:
    cert = cache.get(pem)
    if cert is None:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cert = cache[pem] = inspect.load_certificate(pem)
    return cert


def build_raw_state(
    *,
    token: Any,
    generation: Any,
    trust: int,
    revocation: int,
    host_rows: Iterable[Sequence[Any]],
    managed_pem: str | None,
    revoked: Iterable[Sequence[Any]],
    cache: dict[str, x509.Certificate],
) -> RawState:
    """``host_rows``: ``(hostname, ca_pem)`` already in trust order; ``revoked``: one-column
    rows of decimal serials."""
    hostnames: dict[str, list[x509.Certificate]] = {}
    for hostname, pem in host_rows:
        if pem is None:  # an association whose CA vanished: nothing to trust
            continue
        hostnames.setdefault(str(hostname), []).append(_parse(str(pem), cache))
    managed = None if managed_pem is None else _parse(managed_pem, cache)
    return RawState(
        token=token,
        generation=generation,
        trust_counter=int(trust),
        revocation_counter=int(revocation),
        hostnames={h: tuple(cas) for h, cas in hostnames.items()},
        managed_ca=managed,
        managed_key=b"" if managed is None else keys.public_key_der(managed),
        revoked=frozenset(int(row[0]) for row in revoked),
    )
