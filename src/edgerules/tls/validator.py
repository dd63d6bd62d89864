"""``ClientCertValidator``: from the DER chain a client presented to a ``ClientAuth``.

Owns: input limits (the DoS guard), decoding, de-duplication, calling the path validator
(``tls/verify.py``), revocation, the direct-issuer lookup, and result caching.

Invariants:

* Sans-IO: no files, sockets or clock reads except ``datetime.now`` when the caller
  passes no ``now``.
* ``validate`` never raises for any chain content: bad input is a ``ClientAuth`` with
  ``presented=True, verified=False`` and a reason, in bounded time and memory.
* DoS guard (issue 3 point 6c; cryptography's path builder is exponential in the number
  of intermediates sharing one subject and key): at most :data:`MAX_PRESENTED` raw
  certificates, at most :data:`MAX_DISTINCT` after dropping byte-identical duplicates,
  at most :data:`MAX_CERT_BYTES` per certificate and :data:`MAX_CHAIN_BYTES` in total;
  intermediates with the same subject and public key as an earlier one are dropped
  (keeping the first that is valid at ``now``, else the first), so each issuer name/key
  pair has one candidate and path building is linear; path depth is bounded by
  ``verify.MAX_CHAIN_DEPTH``.
* Cache: per (presented chain, trust version, revocation version), bounded LRU (entries
  and bytes); an entry is used only inside the time window where no certificate's
  validity (and no CRL's freshness) changes.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from edgerules.pki.errors import PKIError
from edgerules.tls.auth import NO_CERTIFICATE, ClientAuth
from edgerules.tls.cache import ResultCache
from edgerules.tls.revocation import CRLRevocation, RevocationSource
from edgerules.tls.verify import Reason, TrustAnchors, find_issuer, valid_at, verify_path

__all__ = [
    "MAX_CERT_BYTES",
    "MAX_CHAIN_BYTES",
    "MAX_DISTINCT",
    "MAX_PRESENTED",
    "ClientCertValidator",
    "load_certificates",
]

MAX_PRESENTED = 20  # raw certificates in the presented list
MAX_DISTINCT = 10  # after removing byte-identical duplicates
MAX_CERT_BYTES = 64 * 1024  # one certificate (real ones are 0.5-4 KiB)
MAX_CHAIN_BYTES = 100 * 1024  # OpenSSL's default max certificate list size
_TICK = _dt.timedelta(microseconds=1)


def load_certificates(items: Iterable[x509.Certificate | bytes | str]) -> list[x509.Certificate]:
    """Certificates from objects, PEM (one or several per item, text or bytes) or DER.

    Raises:
        PKIError: an item is not a certificate.
    """
    out: list[x509.Certificate] = []
    if isinstance(items, (bytes, bytearray, memoryview, str, x509.Certificate)):
        items = [items]
    try:
        items = list(items)
    except TypeError:
        raise PKIError(f"expected certificates (PEM, DER or x509.Certificate objects), got "
                       f"{type(items).__name__}") from None
    for item in items:
        if isinstance(item, x509.Certificate):
            out.append(item)
            continue
        if isinstance(item, str):
            data = item.encode("ascii", "replace")
        elif isinstance(item, (bytes, bytearray, memoryview)):
            data = bytes(item)
        else:  # bytes(5) would be five zero bytes, not an error
            raise PKIError(f"not a certificate: expected PEM text, PEM or DER bytes or an "
                           f"x509.Certificate, got {type(item).__name__}")
        try:
            if b"-----BEGIN" in data:
                out.extend(x509.load_pem_x509_certificates(data))
            else:
                out.append(x509.load_der_x509_certificate(data))
        except Exception as exc:
            raise PKIError(f"not a certificate: {exc}") from None
    return out


def _load(der: bytes) -> x509.Certificate | None:
    """Decode, forcing the validity dates (cryptography parses some fields lazily; the
    rest are read under ``try`` where used). Names are checked by :func:`_names_ok` only when needed: building their
    Python objects costs ~10 µs per certificate, and a verified path never needs them."""
    try:
        cert = x509.load_der_x509_certificate(der)
        cert.not_valid_before_utc  # noqa: B018
        cert.not_valid_after_utc  # noqa: B018
    except Exception:
        return None
    return cert


def _names_ok(cert: x509.Certificate) -> bool:
    try:
        cert.subject  # noqa: B018
        cert.issuer  # noqa: B018
    except Exception:
        return False
    return True


def _key_id(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    except Exception:
        return None


def _dedupe_same_key(certs: list[x509.Certificate], now: _dt.datetime) -> list[x509.Certificate]:
    """Drop intermediates whose subject and public key repeat an earlier one's."""
    if len(certs) < 2:
        return certs
    by_subject: dict[object, list[int]] = {}
    for i, cert in enumerate(certs):
        try:
            subject: object = cert.subject
        except Exception:
            subject = i  # unreadable name: its own group
        by_subject.setdefault(subject, []).append(i)
    if all(len(v) == 1 for v in by_subject.values()):
        return certs  # the common case: nothing to compare, no key extraction
    drop: set[int] = set()
    for indexes in by_subject.values():
        if len(indexes) < 2:
            continue
        groups: dict[bytes, list[int]] = {}
        for i in indexes:
            key = _key_id(certs[i])
            if key is None:
                continue  # unusable key: leave it to the verifier (it cannot verify anything)
            groups.setdefault(key, []).append(i)
        for members in groups.values():
            keep = next((i for i in members if valid_at(certs[i], now)), members[0])
            drop.update(i for i in members if i != keep)
    return [c for i, c in enumerate(certs) if i not in drop]


class ClientCertValidator:
    """Validates client certificate chains against a fixed set of trusted CAs.

    Args:
        trusted: the CA certificates associated with the hostname (managed CA and/or
            uploaded CAs), as ``x509.Certificate``, PEM (text or bytes, several
            certificates allowed) or DER. Any of them is a trust anchor, including an
            intermediate CA.
        revocation: asked whether a *verified* leaf is revoked (the PKI store).
        crls: CRLs (objects, PEM or DER) checked for verified leaves in addition to
            ``revocation``; see ``edgerules.tls.revocation`` for the stale-CRL policy.
        trust_version: changes when the caller rebuilds the validator with other CAs
            (part of the cache key, for caches shared by callers).
        cache_size: entries in the result LRU (0 disables caching).

    Raises:
        PKIError: a trusted certificate or CRL cannot be decoded.
    """

    def __init__(
        self,
        trusted: Iterable[x509.Certificate | bytes | str] = (),
        *,
        revocation: RevocationSource | None = None,
        crls: Iterable[x509.CertificateRevocationList | bytes | str] = (),
        trust_version: int = 0,
        cache_size: int = 4096,
    ) -> None:
        self._anchors = TrustAnchors(load_certificates(trusted))
        try:
            self._crls = CRLRevocation(crls)
        except Exception as exc:
            raise PKIError(f"not a CRL: {exc}") from None
        self._revocation = revocation
        self.trust_version = trust_version
        self.cache: ResultCache[ClientAuth] = ResultCache(cache_size)
        # validity edges of the anchors: every cached window is cut at these
        self._anchor_edges: tuple[_dt.datetime, ...] = tuple(
            t
            for c in self._anchors.certs
            for t in (c.not_valid_before_utc, c.not_valid_after_utc + _TICK)
        )

    @property
    def trusted(self) -> tuple[x509.Certificate, ...]:
        return self._anchors.certs

    def _revocation_version(self) -> int:
        rev = self._revocation
        if rev is None:
            return 0
        try:
            return int(rev.version)
        except Exception:
            return -1

    def validate(
        self,
        chain: Sequence[bytes],
        *,
        now: _dt.datetime | None = None,
        hostname: str | None = None,
    ) -> ClientAuth:
        """Validate the presented chain (DER, leaf first; empty when none was sent).

        ``now`` defaults to the current time (naive values are UTC). ``hostname`` is
        accepted for the caller's convenience and does not change the result: a
        validator already belongs to one hostname's set of CAs.
        """
        if chain is None:  # tolerated like an empty chain: nothing was presented
            return NO_CERTIFICATE
        if isinstance(chain, (bytes, bytearray, memoryview)):
            chain = [chain]  # one DER certificate passed on its own
        elif not isinstance(chain, (list, tuple)):
            try:
                chain = tuple(chain)
            except Exception:  # not iterable (or failing while iterated): still data
                return ClientAuth(
                    presented=True,
                    failure_reason=Reason.UNDECODABLE,
                    detail=f"the chain must be a sequence of DER bytes, got "
                    f"{type(chain).__name__}",
                )
        if not chain:
            return NO_CERTIFICATE
        if now is None:
            when = _dt.datetime.now(_dt.UTC)
        elif not isinstance(now, _dt.datetime):  # a caller's bug, not the client's input
            raise PKIError(f"now must be a datetime.datetime, got {type(now).__name__}")
        elif now.tzinfo is None:  # naive means UTC
            when = now.replace(tzinfo=_dt.UTC)
        else:
            when = now
        try:
            ders = (
                tuple(chain)
                if all(type(d) is bytes for d in chain)
                else tuple(bytes(memoryview(d)) for d in chain)  # bytes-like only, never int
            )
        except Exception:
            return ClientAuth(
                presented=True,
                failure_reason=Reason.UNDECODABLE,
                detail="chain items must be bytes",
            )
        total = sum(map(len, ders))
        if (
            len(ders) > MAX_PRESENTED
            or total > MAX_CHAIN_BYTES
            or max(map(len, ders)) > MAX_CERT_BYTES
        ):
            return self._over_limits(ders, total)
        # The key holds the chain itself (the cached ClientAuth references the same bytes
        # objects, so this costs no memory); dict equality makes collisions impossible.
        key = (ders, self.trust_version, self._revocation_version())
        hit = self.cache.get(key, when)
        if hit is not None:
            return hit
        try:
            auth, edges = self._validate(ders, when)
        except Exception as exc:  # defence in depth: bad input is data, never an exception
            return ClientAuth(
                presented=True,
                failure_reason=Reason.REJECTED,
                detail=f"internal error on this chain: {type(exc).__name__}: {exc}",
                chain_der=ders,
            )
        start = max((t for t in edges if t <= when), default=None)
        end = min((t for t in edges if t > when), default=None)
        self.cache.put(key, auth, start, end, total)
        return auth

    def _over_limits(self, ders: tuple[bytes, ...], total: int) -> ClientAuth:
        leaf = _load(ders[0]) if len(ders[0]) <= MAX_CERT_BYTES else None
        if len(ders) > MAX_PRESENTED:
            reason = Reason.CHAIN_TOO_LONG
            detail = f"{len(ders)} certificates presented (limit {MAX_PRESENTED})"
        else:
            reason = Reason.TOO_LARGE
            detail = (
                f"{total} bytes presented (limits {MAX_CERT_BYTES} per certificate, "
                f"{MAX_CHAIN_BYTES} in all)"
            )
        return ClientAuth(
            presented=True, failure_reason=reason, detail=detail, leaf=leaf, chain_der=ders
        )

    def _validate(
        self, ders: tuple[bytes, ...], now: _dt.datetime
    ) -> tuple[ClientAuth, list[_dt.datetime]]:
        edges: list[_dt.datetime] = list(self._anchor_edges)
        leaf = _load(ders[0])
        if leaf is None:
            return ClientAuth(
                presented=True,
                failure_reason=Reason.UNDECODABLE,
                detail="leaf is not a DER certificate",
                chain_der=ders,
            ), edges
        seen = {ders[0]}
        intermediates: list[x509.Certificate] = []
        for der in ders[1:]:
            if der in seen:
                continue  # byte-identical duplicate: harmless once removed
            seen.add(der)
            cert = _load(der)
            if cert is None:
                return ClientAuth(
                    presented=True,
                    failure_reason=Reason.UNDECODABLE,
                    detail="an intermediate is not a DER certificate",
                    leaf=leaf,
                    chain_der=ders,
                    issuer=self._direct_issuer(leaf, (), (), ()),
                ), edges
            intermediates.append(cert)
        if len(seen) > MAX_DISTINCT:
            return ClientAuth(
                presented=True,
                failure_reason=Reason.CHAIN_TOO_LONG,
                detail=f"{len(seen)} distinct certificates presented (limit {MAX_DISTINCT})",
                leaf=leaf,
                chain_der=ders,
            ), edges
        for cert in (leaf, *intermediates):
            try:
                edges.append(cert.not_valid_before_utc)
                edges.append(cert.not_valid_after_utc + _TICK)
            except Exception:
                pass
        intermediates = _dedupe_same_key(intermediates, now)
        result = verify_path(leaf, intermediates, self._anchors, now, intermediate_ders=ders[1:])
        if not result.verified and not _names_ok(leaf):
            return ClientAuth(
                presented=True,
                failure_reason=Reason.UNDECODABLE,
                detail="the leaf's names cannot be decoded",
                chain_der=ders,
            ), edges
        issuer = self._direct_issuer(
            leaf, result.chain if result.verified else (), intermediates, result.chain
        )
        revoked = False
        if result.verified and issuer is not None:
            revoked = self._is_revoked(leaf, issuer, now)
            edges.extend(self._crls.edges)
        auth = ClientAuth(
            presented=True,
            verified=result.verified,
            revoked=revoked,
            failure_reason=result.reason,
            detail=result.detail,
            leaf=leaf,
            chain_der=ders,
            issuer=issuer,
            path=result.chain if result.verified else (),
        )
        return auth, edges

    def _direct_issuer(
        self,
        leaf: x509.Certificate,
        path: Sequence[x509.Certificate],
        intermediates: Sequence[x509.Certificate],
        built: Sequence[x509.Certificate],
    ) -> x509.Certificate | None:
        if len(path) >= 2:
            return path[1]
        try:
            if len(path) == 1 and leaf.subject == leaf.issuer:
                # The leaf itself is a trusted self-signed certificate: its own issuer.
                return leaf
            candidates = [
                *built[1:2],
                *intermediates,
                *self._anchors.by_subject.get(leaf.issuer, ()),
            ]
        except Exception:
            return None
        return find_issuer(leaf, candidates)

    def _is_revoked(
        self, leaf: x509.Certificate, issuer: x509.Certificate, now: _dt.datetime
    ) -> bool:
        if self._revocation is not None:
            try:
                if self._revocation.is_revoked(leaf, issuer):
                    return True
            except Exception:
                pass  # a broken source answers "not revoked" (documented)
        return bool(self._crls and self._crls.is_revoked(leaf, issuer, now))
