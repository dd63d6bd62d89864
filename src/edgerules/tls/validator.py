"""``ClientCertValidator``: from the DER chain a client presented to a ``ClientAuth``.

Owns: input limits (the DoS guard), decoding, picking the relevant certificates,
de-duplication, key screening, calling the path validator (``tls/verify.py``) with a
fresh signature budget, revocation, the direct-issuer lookup, and result caching.

Invariants:

* Sans-IO: no files, sockets or clock reads except ``datetime.now`` when the caller
  passes no ``now``.
* ``validate`` never raises for any chain content: bad input is a ``ClientAuth`` with
  ``presented=True, verified=False`` and a reason, in bounded time and memory.
* DoS guard (issue 3 point 6c, issue 9 point 2): at most :data:`MAX_PRESENTED` raw
  certificates, at most :data:`MAX_CERT_BYTES` per certificate and
  :data:`MAX_CHAIN_BYTES` in total (OpenSSL's default certificate-list limit); of the
  distinct certificates, those that cannot be on any path from the leaf (no issuer/subject
  name link, RFC 8446 §4.4.2's "extraneous certificates") are ignored, and at most
  :data:`MAX_DISTINCT` relevant ones are accepted; intermediates with the same subject
  and public key as an earlier one are dropped (keeping the first that is valid at
  ``now``, else the first), so each issuer name/key pair has one candidate; keys the caps
  of ``tls/keycheck.py`` refuse never verify a signature; every signature check of one
  validation is paid from one budget (``tls/sigcheck.py``); path depth is bounded by
  ``verify.MAX_CHAIN_DEPTH``.
* A certificate whose names OpenSSL could not decode is ``unable to decode
  certificate``; a verified certificate always has its names (issue 9 point 4).
* Cache: per (presented chain, trust version, revocation version), bounded LRU (entries
  and bytes); an entry is used only inside the time window where no certificate's
  validity (and no CRL's freshness) changes.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from edgerules.pki.errors import PKIError
from edgerules.tls import profiles as _profiles
from edgerules.tls.auth import NO_CERTIFICATE, ClientAuth
from edgerules.tls.cache import ResultCache
from edgerules.tls.certs import CRL_STALE_CHOICES, Anchor, Cert, TrustAnchors, decode
from edgerules.tls.crl import CRLRevocation
from edgerules.tls.der import DERError
from edgerules.tls.profiles import Profile
from edgerules.tls.revocation import RevocationSource
from edgerules.tls.sigcheck import Signatures
from edgerules.tls.verify import Reason, find_issuer, valid_at, verify_path

__all__ = [
    "MAX_CERT_BYTES",
    "MAX_CHAIN_BYTES",
    "MAX_DISTINCT",
    "MAX_PRESENTED",
    "ClientCertValidator",
    "TrustedCA",
    "load_certificates",
]

MAX_PRESENTED = 64  # raw certificates in the presented list
MAX_DISTINCT = 10  # distinct certificates that may be on a path from the leaf
MAX_CERT_BYTES = 64 * 1024  # one certificate (real ones are 0.5-4 KiB)
MAX_CHAIN_BYTES = 100 * 1024  # OpenSSL's default max certificate list size
_TICK = _dt.timedelta(microseconds=1)
_DECODED_MAX = 256  # decoded intermediates remembered per validator


@dataclass(frozen=True)
class TrustedCA:
    """A trusted CA with its own settings: validation profile and allowed weaknesses
    (``None``/empty: the validator's), and what an unknown CRL status means for its
    clients (``crl_stale``: ``"open"`` or ``"closed"``; ``None``: the validator's)."""

    certificate: x509.Certificate | bytes | str
    profile: str | Profile | None = None
    allow: tuple[str, ...] = ()
    crl_stale: str | None = None


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



_PEM_CERT = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s*(.*?)\s*-----END CERTIFICATE-----", re.DOTALL
)


def trusted_views(item: x509.Certificate | bytes | str) -> list[Cert]:
    """The certificates of one ``trusted`` item as the validator decodes them: from the
    DER itself, so a CA cryptography cannot load (a PrintableString outside its alphabet,
    a negative serial) is still trusted as OpenSSL would trust it.

    Raises:
        PKIError: the item is not a certificate (or holds one OpenSSL could not load).
    """
    if isinstance(item, x509.Certificate):
        view = decode(item.public_bytes(Encoding.DER))
        if view is None:
            raise PKIError("a trusted certificate's names cannot be decoded")
        return [view if view.copy else Cert(view.der, view.raw, item, False)]
    if isinstance(item, str):
        data = item.encode("ascii", "replace")
    elif isinstance(item, (bytes, bytearray, memoryview)):
        data = bytes(item)
    else:
        raise PKIError(f"not a certificate: expected PEM text, PEM or DER bytes or an "
                       f"x509.Certificate, got {type(item).__name__}")
    if b"-----BEGIN" in data:
        blocks = _PEM_CERT.findall(data)
        if not blocks:
            raise PKIError("not a certificate: no PEM CERTIFICATE block")
        try:
            ders = [base64.b64decode(b"".join(block.split()), validate=True) for block in blocks]
        except (binascii.Error, ValueError):
            raise PKIError("not a certificate: malformed PEM") from None
    else:
        ders = [data]
    out = []
    for der in ders:
        view = decode(der)
        if view is None:
            raise PKIError("not a certificate OpenSSL could decode (DER structure or names)")
        out.append(view)
    return out


def _stale_choice(value: str) -> str:
    choice = (value or "").strip().lower()
    if choice not in CRL_STALE_CHOICES:
        raise PKIError(f"crl_stale must be 'open' or 'closed', got {value!r}")
    return choice


def _dedupe_same_key(certs: list[Cert], now: _dt.datetime) -> list[Cert]:
    """Drop intermediates whose subject and public key repeat an earlier one's."""
    if len(certs) < 2:
        return certs
    groups: dict[tuple[bytes, bytes], list[int]] = {}
    for i, cert in enumerate(certs):
        groups.setdefault((cert.subject, cert.raw.spki), []).append(i)
    if len(groups) == len(certs):
        return certs  # the common case: nothing repeats
    drop: set[int] = set()
    for members in groups.values():
        keep = next((i for i in members if valid_at(certs[i], now)), members[0])
        drop.update(i for i in members if i != keep)
    return [c for i, c in enumerate(certs) if i not in drop]


def _relevant(leaf: Cert, certs: list[Cert]) -> list[Cert]:
    """The certificates reachable from the leaf by issuer -> subject name links
    (OpenSSL's canonical names): only they can be on a path; the rest are extraneous."""
    wanted: list[object] = []
    try:
        wanted.append(leaf.canon_issuer)
    except DERError:
        return []
    keep: list[Cert] = []
    rest = list(certs)
    while wanted and rest:
        name = wanted.pop()
        still: list[Cert] = []
        for cert in rest:
            try:
                hit = cert.canon_subject == name
            except DERError:
                hit = False
            if hit:
                keep.append(cert)
                try:
                    wanted.append(cert.canon_issuer)
                except DERError:
                    pass
            else:
                still.append(cert)
        rest = still
    order = {id(c): i for i, c in enumerate(certs)}
    return sorted(keep, key=lambda c: order[id(c)])


class ClientCertValidator:
    """Validates client certificate chains against a fixed set of trusted CAs.

    Args:
        trusted: the CA certificates associated with the hostname (managed CA and/or
            uploaded CAs), as ``x509.Certificate``, PEM (text or bytes, several
            certificates allowed), DER, or :class:`TrustedCA` (a CA with its own
            profile). Any of them is a trust anchor, including an intermediate CA.
        revocation: asked whether a *verified* leaf is revoked (the PKI store).
        crls: CRLs (objects, PEM or DER) checked for verified chains in addition to
            ``revocation``; see ``edgerules.tls.revocation`` for their semantics. A CRL
            that cannot be decoded is reported in :attr:`problems` and skipped.
        trust_version: changes when the caller rebuilds the validator with other CAs
            (part of the cache key, for caches shared by callers).
        cache_size: entries in the result LRU (0 disables caching).
        profile: the validation profile (``"compatible"``, the default, or ``"strict"``;
            see ``edgerules.tls.profiles``) of the CAs given without their own.
        allow: weaknesses that profile accepts (``("sha1",)``; none by default).
        crl_stale: for those CAs, what a certificate not listed on a stale CRL (its
            issuer's newest CRL past nextUpdate) means: ``"open"`` (default: not
            revoked) or ``"closed"`` (not verified: ``CRL has expired``).

    Raises:
        PKIError: a trusted certificate cannot be decoded, or an unknown profile.
    """

    def __init__(
        self,
        trusted: Iterable[x509.Certificate | bytes | str | TrustedCA] = (),
        *,
        revocation: RevocationSource | None = None,
        crls: Iterable[x509.CertificateRevocationList | bytes | str] = (),
        trust_version: int = 0,
        cache_size: int = 4096,
        profile: str | Profile | None = None,
        allow: Iterable[str] | str = (),
        crl_stale: str = "open",
    ) -> None:
        self.profile = _profiles.profile(profile, allow)
        self.crl_stale = _stale_choice(crl_stale)
        items: list[tuple[Cert, Profile, str]] = []
        if isinstance(trusted, (bytes, bytearray, memoryview, str, x509.Certificate, TrustedCA)):
            trusted = [trusted]
        try:
            trusted = list(trusted)
        except TypeError:
            raise PKIError(f"expected certificates (PEM, DER or x509.Certificate objects), got "
                           f"{type(trusted).__name__}") from None
        for item in trusted:
            if isinstance(item, TrustedCA):
                prof = (
                    self.profile
                    if item.profile is None and not item.allow
                    else _profiles.profile(item.profile or self.profile.name, item.allow)
                )
                stale = self.crl_stale if item.crl_stale is None else _stale_choice(item.crl_stale)
                items.extend((c, prof, stale) for c in trusted_views(item.certificate))
            else:
                items.extend((c, self.profile, self.crl_stale) for c in trusted_views(item))
        self._anchors = TrustAnchors(items)
        self._crls = CRLRevocation(crls)
        self.problems: list[str] = [*self._anchors.problems, *self._crls.problems]
        self._revocation = revocation
        # Decoded intermediates by DER: the same CA certificates arrive with every client
        # of a deployment. Bounded (attacker-chosen bytes): cleared when full.
        self._decoded: dict[bytes, Cert | None] = {}
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
                failure_reason=Reason.UNDECODABLE,
                detail=f"internal error on this chain: {type(exc).__name__}: {exc}",
                chain_der=ders,
            )
        if self.cache.maxsize:
            start = end = None
            for t in edges:  # the window around ``when`` in which nothing changes
                if t <= when:
                    if start is None or t > start:
                        start = t
                elif end is None or t < end:
                    end = t
            self.cache.put(key, auth, start, end, total)
        return auth

    def _over_limits(self, ders: tuple[bytes, ...], total: int) -> ClientAuth:
        leaf = decode(ders[0]) if len(ders[0]) <= MAX_CERT_BYTES else None
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
        leaf = decode(ders[0])
        if leaf is None:
            return ClientAuth(
                presented=True,
                failure_reason=Reason.UNDECODABLE,
                detail="the leaf is not a certificate OpenSSL could decode (DER, names)",
                chain_der=ders,
            ), edges
        sigs = Signatures()
        seen = {ders[0]}
        intermediates: list[Cert] = []
        for der in ders[1:]:
            if der in seen:
                continue  # byte-identical duplicate: harmless once removed
            seen.add(der)
            cert = self._decode_intermediate(der)
            if cert is None:
                return ClientAuth(
                    presented=True,
                    failure_reason=Reason.UNDECODABLE,
                    detail="an intermediate is not a certificate OpenSSL could decode",
                    leaf=leaf,
                    chain_der=ders,
                    issuer=self._direct_issuer(leaf, (), (), sigs),
                ), edges
            intermediates.append(cert)
        if len(intermediates) >= MAX_DISTINCT:
            intermediates = _relevant(leaf, intermediates)
            if len(intermediates) >= MAX_DISTINCT:
                return ClientAuth(
                    presented=True,
                    failure_reason=Reason.CHAIN_TOO_LONG,
                    detail=f"{len(intermediates) + 1} distinct certificates on possible "
                    f"paths (limit {MAX_DISTINCT})",
                    leaf=leaf,
                    chain_der=ders,
                ), edges
        for cert in (leaf, *intermediates):
            edges.extend(cert.validity_edges)
        pool = _dedupe_same_key(intermediates, now)
        result = verify_path(
            leaf, pool, self._anchors, now, sigs, self.profile, intermediate_ders=ders[1:]
        )
        issuer = (
            result.chain[1]
            if result.verified and len(result.chain) >= 2
            else self._direct_issuer(leaf, result.chain, pool, sigs)
        )
        revoked, verified = False, result.verified
        reason, detail = result.reason, result.detail
        if verified and issuer is not None:
            revoked, reason, detail = self._revocation_status(result.chain, result.anchor, now)
            verified = not reason
            edges.extend(self._crls.edges)
        auth = ClientAuth(
            presented=True,
            verified=verified,
            revoked=revoked,
            failure_reason=reason,
            detail=detail,
            leaf=leaf,
            chain_der=ders,
            issuer=issuer,
            path=result.chain if verified else (),
        )
        return auth, edges

    def _decode_intermediate(self, der: bytes) -> Cert | None:
        memo = self._decoded
        try:
            return memo[der]
        except KeyError:
            pass
        cert = decode(der)
        if len(memo) >= _DECODED_MAX:
            memo.clear()
        memo[der] = cert
        return cert

    def _direct_issuer(
        self,
        leaf: Cert,
        built: Sequence[Cert],
        pool: Sequence[Cert],
        sigs: Signatures,
    ) -> Cert | None:
        if len(built) >= 2 and sigs.signed_by(leaf, built[1]):
            return built[1]
        try:
            if leaf.raw.issuer == leaf.raw.subject and leaf.der in self._anchors.by_der:
                return leaf  # the leaf itself is a trusted self-signed certificate
            anchors = [a.cert for a in self._anchors.by_canon.get(leaf.canon_issuer, ())]
        except DERError:
            return None
        return find_issuer(leaf, [*pool, *anchors], sigs)

    def _revocation_status(
        self, path: Sequence[Cert], anchor: Anchor | None, now: _dt.datetime
    ) -> tuple[bool, str, str]:
        """``(revoked, failure_reason, detail)`` for a verified path: the store's answer
        for the leaf, then the CRLs for every certificate below the anchor (leaf first).
        A failure reason (``CRL has expired``) only under a fail-closed anchor."""
        leaf, issuer = path[0], path[1] if len(path) > 1 else path[0]
        if self._revocation is not None:
            try:
                if self._revocation.is_revoked(leaf.x509, issuer.x509):
                    return True, "", "revoked (store)"
            except Exception:
                pass  # a broken source answers "not revoked" (documented)
        if not self._crls:
            return False, "", ""
        closed = anchor is not None and anchor.crl_stale == "closed"
        unknown = ""
        for i in range(len(path) - 1):
            status = self._crls.status(path[i], path[i + 1], now)
            if status.revoked:
                which = "" if i == 0 else f" (the certificate at depth {i})"
                return True, "", status.detail + which
            if status.unknown and closed and not unknown:
                unknown = status.unknown
                detail = status.detail
        if unknown:
            return False, unknown, detail
        return False, "", ""
