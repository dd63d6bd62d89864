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
from edgerules.pki.errors import PKIError
from edgerules.store.live import RawState
from edgerules.store.validation import TrustEntry

if TYPE_CHECKING:
    from cryptography import x509

_CACHE_LIMIT = 4096  # parsed CA certificates kept per store


def _parse(pem: str, cache: dict[str, x509.Certificate]) -> x509.Certificate:
    cert = cache.get(pem)
    if cert is None:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        try:
            cert = inspect.load_certificate(pem)
        except PKIError:
            # an uploaded CA whose names cryptography cannot decode (PrintableString
            # outside its alphabet, …): the validator's decoder reads it from its DER
            from edgerules.tls.validator import trusted_views

            cert = trusted_views(pem)[0].x509
        cache[pem] = cert
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
    host_profiles: Iterable[Sequence[Any]] = (),
    crl_rows: Iterable[Sequence[Any]] = (),
) -> RawState:
    """``host_rows``: ``(hostname, ca_pem[, profile, allow, crl_stale])`` already in trust
    order (the settings are NULL for the managed CA); ``revoked``: one-column rows of
    decimal serials; ``host_profiles``: ``(hostname, profile, allow)``; ``crl_rows``:
    one-column rows of CRL PEMs."""
    hostnames: dict[str, list[x509.Certificate]] = {}
    entries: dict[str, list[TrustEntry]] = {}
    for hostname, pem, *settings in host_rows:
        if pem is None:  # an association whose CA vanished: nothing to trust
            continue
        hostnames.setdefault(str(hostname), []).append(_parse(str(pem), cache))
        profile, allow, stale = [*settings, None, None, None][:3]
        entries.setdefault(str(hostname), []).append(
            TrustEntry(str(pem), profile or "compatible", allow or "", stale or "open")
        )
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
        trust_entries={h: tuple(e) for h, e in entries.items()},
        host_profiles={str(h): (str(p), str(a or "")) for h, p, a in host_profiles},
        crl_pems=tuple(str(row[0]) for row in crl_rows if row[0]),
    )
