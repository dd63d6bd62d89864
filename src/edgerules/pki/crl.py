"""CRLs as the store keeps them: parsing an uploaded CRL and its record.

Owns: turning operator input (PEM or DER bytes, one CRL) into a CRL object with a clear
error for anything else (:func:`parse_crl_upload`), and the :class:`CRLRecord` the store
returns and the CLI prints. Whether a CRL can be *applied* (delta, scoped, signature)
is the validator's judgement (:mod:`edgerules.tls.crl`), made by the store when a CRL is
added or fetched.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from edgerules.pki.errors import PKIError

__all__ = ["MAX_CRL_BYTES", "CRLRecord", "crl_number", "crl_pem", "parse_crl_upload"]

MAX_CRL_BYTES = 16 * 1024 * 1024  # a CRL file or download larger than this is refused
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")


@dataclass(frozen=True)
class CRLRecord:
    """One stored CRL (or CRL source URL): what ``edgerules crl list`` shows."""

    id: str
    ca_id: str | None  # the uploaded CA it was added for (None: matched by its issuer)
    ca_name: str | None
    issuer: str  # RFC 2253 ('' until a URL is first fetched)
    crl_number: str  # decimal, '' when the CRL has none
    this_update: str  # RFC 3339
    next_update: str  # RFC 3339, '' when absent
    revoked_count: int
    url: str  # '' for a CRL added from a file
    refresh_seconds: int  # 0: no schedule
    fetched_on: str  # last fetch attempt, '' if never
    last_error: str  # '' when the last fetch (or the add) succeeded
    added_on: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_crl_upload(data: bytes | str) -> x509.CertificateRevocationList:
    """One CRL from PEM (``-----BEGIN X509 CRL-----``) or DER, or :class:`PKIError`
    saying why not."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_CRL_BYTES:
        raise PKIError(f"the CRL is larger than {MAX_CRL_BYTES // (1024 * 1024)} MiB")
    labels = [m.group(1).decode("ascii") for m in _PEM_BLOCK.finditer(raw)]
    if labels:
        if any("PRIVATE KEY" in label for label in labels):
            raise PKIError("the file contains a private key, not a CRL")
        if labels.count("X509 CRL") != 1 or len(labels) != 1:
            raise PKIError(
                f"expected exactly one '-----BEGIN X509 CRL-----' block, found "
                f"{', '.join(labels)}"
            )
        try:
            return x509.load_pem_x509_crl(raw)
        except ValueError as exc:
            raise PKIError(f"malformed CRL: {exc}") from None
    try:
        return x509.load_der_x509_crl(raw)
    except ValueError as exc:
        raise PKIError(f"not a CRL (PEM or DER expected): {exc}") from None


def crl_pem(crl: x509.CertificateRevocationList) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding

    return crl.public_bytes(Encoding.PEM).decode("ascii")


def crl_number(crl: x509.CertificateRevocationList) -> int | None:
    """The cRLNumber extension's value, if any."""
    try:
        return int(crl.extensions.get_extension_for_oid(ExtensionOID.CRL_NUMBER).value.crl_number)
    except Exception:
        return None
