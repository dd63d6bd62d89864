"""Plain, immutable records of the client-certificate control plane.

These dataclasses are what the store returns and what the CLI prints. Field names follow
the Cloudflare API (client certificates:
https://developers.cloudflare.com/api/terraform/resources/client_certificates; uploaded
CAs: https://developers.cloudflare.com/ssl/client-certificates/byo-ca/) so
``to_dict()`` output can be compared with the API's JSON. Records never hold private
keys: a generated key travels only in :class:`IssuedCertificate`, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

#: Client-certificate statuses, as Cloudflare's API names them. Transitions are synchronous here:
#: revoke -> ``revoked`` and restore -> ``active`` at once; the two ``pending_*`` states
#: are accepted as list filters (and treated as revoked / active respectively if a
#: future backend ever writes them) but never produced.
STATUSES = ("active", "pending_revocation", "revoked", "pending_reactivation")

#: Statuses for which ``cf.tls_client_auth.cert_revoked`` is true (unspecified by
#: Cloudflare for ``pending_revocation``; our choice: we count ``pending_revocation`` as revoked — the safer reading).
REVOKED_STATUSES = frozenset({"revoked", "pending_revocation"})


def _api_dict(
    record: Any, *, after: str, insert: dict[str, Any], omit: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The record as the API's JSON: its fields in declaration order (the API's order),
    without ``omit``, with ``insert`` placed right after field ``after``."""
    out: dict[str, Any] = {}
    for f in fields(record):
        if f.name not in omit:
            out[f.name] = getattr(record, f.name)
        if f.name == after:
            out.update(insert)
    return out


@dataclass(frozen=True)
class ManagedCA:
    """The account's managed CA (the private key stays in the store)."""

    id: str
    name: str
    account_id: str
    certificate: str  # PEM
    key_type: str  # "ecdsa" | "rsa"
    subject: str  # RFC 4514
    serial_number: str  # decimal
    ski: str  # lowercase hex
    fingerprint_sha256: str
    signature: str
    issued_on: str
    expires_on: str
    key_encrypted: bool

    def to_dict(self) -> dict[str, Any]:
        return _api_dict(self, after="name", insert={"type": "managed"})


@dataclass(frozen=True)
class ClientCertificate:
    """One client certificate signed by the managed CA (the API record's fields)."""

    id: str
    certificate: str
    csr: str  # the PEM CSR as submitted, or the one edgerules built for a generated key
    ca_id: str
    ca_name: str
    common_name: str
    organization: str
    organizational_unit: str
    country: str
    state: str
    location: str
    serial_number: str  # decimal
    ski: str
    fingerprint_sha256: str
    signature: str
    issued_on: str
    expires_on: str
    validity_days: int
    status: str
    subject: str = ""  # RFC 4514, for display

    @property
    def serial_hex(self) -> str:
        """The serial as the ``cf.tls_client_auth.cert_serial`` field shows it: upper-case
        hex zero-padded to whole bytes (what ``openssl x509 -serial`` prints) — the value
        to paste into a rule pinning this certificate."""
        digits = f"{int(self.serial_number):X}"
        return "0" + digits if len(digits) % 2 else digits

    def to_dict(self) -> dict[str, Any]:
        return _api_dict(
            self,
            after="csr",
            insert={"certificate_authority": {"id": self.ca_id, "name": self.ca_name}},
            omit=("ca_id", "ca_name", "subject"),
        )


@dataclass(frozen=True)
class IssuedCertificate:
    """The result of issuing: the record plus, for a generated key, its PKCS#8 PEM.

    ``private_key`` is the only copy; the store never saw it.
    """

    record: ClientCertificate
    private_key: str | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = self.record.to_dict()
        if self.private_key is not None:
            out["private_key"] = self.private_key
        return out


@dataclass(frozen=True)
class UploadedCA:
    """A customer CA (BYOCA), an "mTLS certificate" with ``ca: true``."""

    id: str
    name: str | None
    certificates: str  # PEM
    issuer: str  # RFC 4514
    subject: str
    serial_number: str  # decimal
    signature: str
    ski: str
    fingerprint_sha256: str
    expires_on: str
    uploaded_on: str
    type: str = "custom"
    # edgerules' validation settings (issue 10; not in Cloudflare's API): the profile
    # its clients are validated with, the weaknesses it allows (comma-separated), what an
    # unknown CRL status means for them ("open": admitted, "closed": refused)
    profile: str = "compatible"
    allow: str = ""
    crl_stale: str = "open"

    def to_dict(self) -> dict[str, Any]:
        return _api_dict(self, after="name", insert={"ca": True})


@dataclass(frozen=True)
class CertificatePage:
    """One page of a certificate listing, with Cloudflare-style ``result_info``."""

    items: tuple[ClientCertificate, ...]
    page: int
    per_page: int
    total_count: int

    @property
    def total_pages(self) -> int:
        return max(1, -(-self.total_count // self.per_page))

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": [c.to_dict() for c in self.items],
            "result_info": {
                "page": self.page,
                "per_page": self.per_page,
                "count": len(self.items),
                "total_count": self.total_count,
                "total_pages": self.total_pages,
            },
        }
