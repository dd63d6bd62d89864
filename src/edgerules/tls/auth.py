"""``ClientAuth``: the immutable outcome of validating one presented chain, and every value
derived from it (``cf.tls_client_auth.*`` fields, the Workers ``tlsClientAuth`` object,
forwarding headers).

Invariants:

* Immutable: attributes cannot be set after construction. Derived strings (DNs, RFC 9440
  encodings, fingerprints) are computed on first read and memoised inside the object;
  memoisation is invisible (same value every time).
* Names are rendered from the certificate's DER exactly as ``openssl x509`` renders them
  (``tls/dn.py``); the validator only builds a ``ClientAuth`` around a leaf whose names
  OpenSSL could decode, so a presented, decodable leaf never has empty DNs (issue 9
  point 4). The only value that can be ``""`` for a decodable leaf is one the
  certificate does not have (no SKI extension, no known issuer).
* When no certificate was presented (or mTLS was not requested) every Boolean is false
  and every string is ``""``, as Cloudflare documents (https://developers.cloudflare.com/ssl/client-certificates/client-certificate-variables/;
  Workers: https://developers.cloudflare.com/workers/runtime-apis/request/).
* Our choice (Cloudflare does not say): the descriptive fields (DNs, serials, fingerprints, dates, SKIs, RFC 9440) are
  filled for every *decodable* presented leaf, verified or not; when the leaf cannot be
  decoded (garbage, or over the size cap) they are ``""`` and only the ``_too_large``
  flags reflect the raw sizes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence

from cryptography import x509

from edgerules.tls import certinfo, dn, rfc9440
from edgerules.tls.certs import Cert, decode

__all__ = ["FIELD_NAMES", "NOT_REQUESTED", "WORKERS_NAMES", "ClientAuth", "ClientAuthFields"]

PREFIX = "cf.tls_client_auth."

# field suffix -> Workers ``tlsClientAuth`` property, in the documentation's order
WORKERS_NAMES: dict[str, str] = {
    "cert_presented": "certPresented",
    "cert_verified": "certVerified",
    "cert_revoked": "certRevoked",
    "cert_issuer_dn": "certIssuerDN",
    "cert_subject_dn": "certSubjectDN",
    "cert_issuer_dn_rfc2253": "certIssuerDNRFC2253",
    "cert_subject_dn_rfc2253": "certSubjectDNRFC2253",
    "cert_issuer_dn_legacy": "certIssuerDNLegacy",
    "cert_subject_dn_legacy": "certSubjectDNLegacy",
    "cert_serial": "certSerial",
    "cert_issuer_serial": "certIssuerSerial",
    "cert_fingerprint_sha1": "certFingerprintSHA1",
    "cert_fingerprint_sha256": "certFingerprintSHA256",
    "cert_not_before": "certNotBefore",
    "cert_not_after": "certNotAfter",
    "cert_ski": "certSKI",
    "cert_issuer_ski": "certIssuerSKI",
    "cert_rfc9440": "certRFC9440",
    "cert_rfc9440_too_large": "certRFC9440TooLarge",
    "cert_chain_rfc9440": "certChainRFC9440",
    "cert_chain_rfc9440_too_large": "certChainRFC9440TooLarge",
}
FIELD_NAMES: tuple[str, ...] = tuple(PREFIX + s for s in WORKERS_NAMES)
BOOL_FIELDS = frozenset(
    PREFIX + s
    for s in (
        "cert_presented",
        "cert_verified",
        "cert_revoked",
        "cert_rfc9440_too_large",
        "cert_chain_rfc9440_too_large",
    )
)


class ClientAuth:
    """What the client presented and what we concluded (immutable).

    Attributes:
        presented: the client sent at least one certificate.
        verified: a path to a trusted CA was found and every check passed. Stays true
            for a revoked certificate.
        revoked: verified and revoked (never true when not verified).
        failure_reason: ``""`` when verified or not presented; otherwise an OpenSSL
            verify error string (see ``edgerules.tls.verify.Reason``).
        detail: the verification library's own message (logs only; not stable).
        leaf: the decoded leaf, or None (nothing presented / undecodable).
        chain_der: the DER certificates exactly as presented, leaf first.
        issuer: the direct issuer certificate when known (from the path, or a
            presented/trusted certificate whose key verifies the leaf's signature).
        path: the validated path (leaf first, anchor last) when verified, else ``()``.
        requested: False only for :data:`NOT_REQUESTED` (hostname without mTLS).
    """

    __slots__ = (
        "_issuer_cert",
        "_leaf_cert",
        "_memo",
        "chain_der",
        "detail",
        "failure_reason",
        "issuer",
        "leaf",
        "path",
        "presented",
        "requested",
        "revoked",
        "verified",
    )

    presented: bool
    verified: bool
    revoked: bool
    failure_reason: str
    detail: str
    leaf: x509.Certificate | None
    chain_der: tuple[bytes, ...]
    issuer: x509.Certificate | None
    path: tuple[x509.Certificate, ...]
    requested: bool

    def __init__(
        self,
        *,
        presented: bool = False,
        verified: bool = False,
        revoked: bool = False,
        failure_reason: str = "",
        detail: str = "",
        leaf: x509.Certificate | Cert | None = None,
        chain_der: Sequence[bytes] = (),
        issuer: x509.Certificate | Cert | None = None,
        path: Sequence[x509.Certificate | Cert] = (),
        requested: bool = True,
    ) -> None:
        init = object.__setattr__
        init(self, "presented", bool(presented))
        init(self, "verified", bool(verified))
        init(self, "revoked", bool(revoked) and bool(verified))
        init(
            self,
            "failure_reason",
            "" if verified or not presented else (failure_reason or "certificate rejected"),
        )
        init(self, "detail", detail)
        leaf_cert = _as_cert(leaf)
        init(self, "_leaf_cert", leaf_cert)
        init(self, "leaf", leaf_cert.x509 if leaf_cert is not None else None)
        init(self, "chain_der", tuple(chain_der))
        issuer_cert = _as_cert(issuer)
        init(self, "_issuer_cert", issuer_cert)
        init(self, "issuer", issuer_cert.x509 if issuer_cert is not None else None)
        init(self, "path", tuple(c.x509 if isinstance(c, Cert) else c for c in path))
        init(self, "requested", bool(requested))
        init(self, "_memo", {})

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"ClientAuth is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"ClientAuth is immutable (cannot delete {name!r})")

    def __repr__(self) -> str:
        if not self.presented:
            return "ClientAuth(presented=False)" if self.requested else "NOT_REQUESTED"
        return (
            f"ClientAuth(presented=True, verified={self.verified}, revoked={self.revoked}, "
            f"failure_reason={self.failure_reason!r}, subject={self.subject_dn!r})"
        )

    # --- descriptive values (str), memoised --------------------------------------

    def _get(self, key: str, compute: Callable[[], object]) -> object:
        memo = self._memo
        try:
            return memo[key]
        except KeyError:
            pass
        try:
            value = compute()
        except Exception:  # an odd certificate: the value is simply empty
            value = ""
        memo[key] = value
        return value

    def _leaf_str(self, key: str, fn: Callable[[Cert], str]) -> str:
        leaf = self._leaf_cert
        if leaf is None:
            return ""
        return self._get(key, lambda: fn(leaf))  # type: ignore[return-value]

    @property
    def subject_dn(self) -> str:
        return self._leaf_str(
            "subject_dn", lambda c: dn.rfc2253(c.raw.subject_entries, escape_msb=False)
        )

    @property
    def issuer_dn(self) -> str:
        return self._leaf_str(
            "issuer_dn", lambda c: dn.rfc2253(c.raw.issuer_entries, escape_msb=False)
        )

    @property
    def subject_dn_rfc2253(self) -> str:
        return self._leaf_str("subject_dn_rfc2253", lambda c: dn.rfc2253(c.raw.subject_entries))

    @property
    def issuer_dn_rfc2253(self) -> str:
        return self._leaf_str("issuer_dn_rfc2253", lambda c: dn.rfc2253(c.raw.issuer_entries))

    @property
    def subject_dn_legacy(self) -> str:
        return self._leaf_str("subject_dn_legacy", lambda c: dn.legacy(c.raw.subject_entries))

    @property
    def issuer_dn_legacy(self) -> str:
        return self._leaf_str("issuer_dn_legacy", lambda c: dn.legacy(c.raw.issuer_entries))

    @property
    def serial(self) -> str:
        return self._leaf_str("serial", lambda c: certinfo.serial_hex(c.raw.serial))

    @property
    def issuer_serial(self) -> str:
        issuer = self._issuer_cert
        if self.leaf is None or issuer is None:
            return ""
        return self._get("issuer_serial", lambda: certinfo.serial_hex(issuer.raw.serial))  # type: ignore[return-value]

    @property
    def fingerprint_sha256(self) -> str:
        if self.leaf is None:
            return ""
        return self._get("sha256", lambda: hashlib.sha256(self.chain_der[0]).hexdigest())  # type: ignore[return-value]

    @property
    def fingerprint_sha1(self) -> str:
        if self.leaf is None:
            return ""
        return self._get("sha1", lambda: hashlib.sha1(self.chain_der[0]).hexdigest())  # type: ignore[return-value]

    @property
    def not_before(self) -> str:
        return self._leaf_str(
            "not_before", lambda c: certinfo.openssl_time(c.x509.not_valid_before_utc)
        )

    @property
    def not_after(self) -> str:
        return self._leaf_str(
            "not_after", lambda c: certinfo.openssl_time(c.x509.not_valid_after_utc)
        )

    @property
    def ski(self) -> str:
        return self._leaf_str("ski", lambda c: certinfo.ski_hex(c.x509))

    @property
    def issuer_ski(self) -> str:
        """The direct issuer's SKI; when the issuer certificate is unknown (or has no SKI
        extension), the keyIdentifier of the leaf's Authority Key Identifier — the two
        are equal by construction (Cloudflare's API Shield mTLS page reads the SKI to pin from
        the leaf's Authority Key Identifier)."""
        leaf = self.leaf
        if leaf is None:
            return ""

        def compute() -> str:
            if self.issuer is not None:
                ski = certinfo.ski_hex(self.issuer)
                if ski:
                    return ski
            aki = certinfo.aki_keyid(leaf)
            return aki.hex().upper() if aki else ""

        return self._get("issuer_ski", compute)  # type: ignore[return-value]

    def _rfc9440(self) -> tuple[str, bool]:
        def compute() -> tuple[str, bool]:
            if not self.chain_der:
                return "", False
            if self.leaf is None:
                # Undecodable leaf: no value, but an oversized one is still reported.
                return "", rfc9440.encode_cert(self.chain_der[0])[1]
            return rfc9440.encode_cert(self.chain_der[0])

        return self._get("rfc9440", compute)  # type: ignore[return-value]

    def _chain_rfc9440(self) -> tuple[str, bool]:
        def compute() -> tuple[str, bool]:
            value, too_large = rfc9440.encode_chain(self.chain_der[1:])
            return ("" if self.leaf is None else value), too_large

        return self._get("chain_rfc9440", compute)  # type: ignore[return-value]

    @property
    def rfc9440(self) -> str:
        return self._rfc9440()[0]

    @property
    def rfc9440_too_large(self) -> bool:
        return self._rfc9440()[1]

    @property
    def chain_rfc9440(self) -> str:
        return self._chain_rfc9440()[0]

    @property
    def chain_rfc9440_too_large(self) -> bool:
        return self._chain_rfc9440()[1]

    # --- engine, Workers, headers --------------------------------------------------

    def value(self, name: str) -> bytes | bool:
        """The runtime value of one ``cf.tls_client_auth.*`` field (bytes or bool);
        ``KeyError`` for other names."""
        getter = _GETTERS[name]
        return getter(self)

    def fields(self) -> ClientAuthFields:
        """A read-only Mapping of every ``cf.tls_client_auth.*`` field to its runtime
        value, computed only when read (``Context.update(auth.fields(), only=...)``)."""
        return ClientAuthFields(self)

    @property
    def certificate_verified_status(self) -> str:
        """Workers ``certVerified``: ``SUCCESS``, ``NONE`` or ``FAILED:<reason>``."""
        if not self.presented:
            return "NONE"
        if self.verified:
            return "SUCCESS"
        return "FAILED:" + self.failure_reason

    @property
    def tls_client_auth(self) -> dict[str, str | bool]:
        """The Workers ``request.cf.tlsClientAuth`` object (a new dict on each read).

        Booleans ``certPresented``/``certRevoked`` are the strings ``"1"``/``"0"`` as
        documented. ``certRFC9440TooLarge``/``certChainRFC9440TooLarge`` (type unspecified by
        Cloudflare; our choice) are JSON
        Booleans (``True``/``False``): the docs say "``true`` if ...", and a string
        ``"0"`` would be truthy in JavaScript."""
        out: dict[str, str | bool] = {}
        for suffix, prop in WORKERS_NAMES.items():
            name = PREFIX + suffix
            if suffix == "cert_verified":
                out[prop] = self.certificate_verified_status
            elif suffix in ("cert_presented", "cert_revoked"):
                out[prop] = "1" if self.value(name) else "0"
            elif name in BOOL_FIELDS:
                out[prop] = bool(self.value(name))
            else:
                out[prop] = self.value(name).decode("utf-8", "replace")  # type: ignore[union-attr]
        return out


def _as_cert(cert: x509.Certificate | Cert | None) -> Cert | None:
    """Our view of a certificate given as a cryptography object (callers building a
    ``ClientAuth`` by hand) or already as a :class:`Cert`."""
    if cert is None or isinstance(cert, Cert):
        return cert
    from cryptography.hazmat.primitives.serialization import Encoding

    view = decode(cert.public_bytes(Encoding.DER))
    return Cert(view.der, view.raw, cert, False) if view is not None else None


def _text(prop: str) -> Callable[[ClientAuth], bytes]:
    getter = getattr(ClientAuth, prop).fget

    def read(auth: ClientAuth) -> bytes:
        return getter(auth).encode("utf-8")

    return read


_GETTERS: dict[str, Callable[[ClientAuth], bytes | bool]] = {
    PREFIX + "cert_presented": lambda a: a.presented,
    PREFIX + "cert_verified": lambda a: a.verified,
    PREFIX + "cert_revoked": lambda a: a.revoked,
    PREFIX + "cert_issuer_dn": _text("issuer_dn"),
    PREFIX + "cert_subject_dn": _text("subject_dn"),
    PREFIX + "cert_issuer_dn_rfc2253": _text("issuer_dn_rfc2253"),
    PREFIX + "cert_subject_dn_rfc2253": _text("subject_dn_rfc2253"),
    PREFIX + "cert_issuer_dn_legacy": _text("issuer_dn_legacy"),
    PREFIX + "cert_subject_dn_legacy": _text("subject_dn_legacy"),
    PREFIX + "cert_serial": _text("serial"),
    PREFIX + "cert_issuer_serial": _text("issuer_serial"),
    PREFIX + "cert_fingerprint_sha1": _text("fingerprint_sha1"),
    PREFIX + "cert_fingerprint_sha256": _text("fingerprint_sha256"),
    PREFIX + "cert_not_before": _text("not_before"),
    PREFIX + "cert_not_after": _text("not_after"),
    PREFIX + "cert_ski": _text("ski"),
    PREFIX + "cert_issuer_ski": _text("issuer_ski"),
    PREFIX + "cert_rfc9440": _text("rfc9440"),
    PREFIX + "cert_rfc9440_too_large": lambda a: a.rfc9440_too_large,
    PREFIX + "cert_chain_rfc9440": _text("chain_rfc9440"),
    PREFIX + "cert_chain_rfc9440_too_large": lambda a: a.chain_rfc9440_too_large,
}
assert tuple(_GETTERS) == FIELD_NAMES


class ClientAuthFields(Mapping[str, object]):
    """Lazy ``cf.tls_client_auth.*`` mapping over one :class:`ClientAuth`."""

    __slots__ = ("_auth",)

    def __init__(self, auth: ClientAuth) -> None:
        self._auth = auth

    def __getitem__(self, name: str) -> bytes | bool:
        return _GETTERS[name](self._auth)

    def __iter__(self) -> Iterator[str]:
        return iter(FIELD_NAMES)

    def __len__(self) -> int:
        return len(FIELD_NAMES)

    def __contains__(self, name: object) -> bool:
        return name in _GETTERS

    def __repr__(self) -> str:
        return f"ClientAuthFields({self._auth!r})"


NOT_REQUESTED = ClientAuth(requested=False)
"""The result for a hostname without mTLS: no certificate requested, every Boolean false,
every string empty, Workers ``certVerified`` ``NONE``."""

NO_CERTIFICATE = ClientAuth()
"""mTLS requested but the client sent no certificate (same values as NOT_REQUESTED)."""
