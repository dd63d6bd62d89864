"""What the store asks the validator (issue 10): checking an uploaded CA and a CRL the
way the validator will use them, and building a hostname's validator from the stored
settings.

Owns: :func:`prepare_ca_upload` (the upload check = the validation check: the CA is
decoded as OpenSSL decodes it, must be a CA OpenSSL accepts as one, and is refused — or
with ``force`` stored with warnings — when no client could be verified through it under
its profile), :func:`prepare_crl` (a CRL is refused when it cannot be applied as a full
CRL, or when it names the CA it is added for but that CA did not sign it), and
:func:`build_validator`.

Invariants: no I/O and no SQL here (the backends do that); every error is a
:class:`~edgerules.pki.errors.PKIError` with the reason in the validator's words.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgerules.pki import byoca, inspect
from edgerules.pki.crl import crl_number, crl_pem, parse_crl_upload
from edgerules.pki.errors import PKIError
from edgerules.pki.records import UploadedCA

if TYPE_CHECKING:
    from edgerules.tls import ClientCertValidator, RevocationSource

log = logging.getLogger("edgerules.store")

__all__ = [
    "CRLFields",
    "TrustEntry",
    "build_validator",
    "ca_upload_problems",
    "normalize_settings",
    "prepare_ca_upload",
    "prepare_crl",
]


@dataclass(frozen=True)
class TrustEntry:
    """One CA trusted on a hostname, with its validation settings."""

    pem: str
    profile: str = "compatible"
    allow: str = ""
    crl_stale: str = "open"


def normalize_settings(
    profile: str | None, allow: Iterable[str] | str | None, crl_stale: str | None
) -> tuple[str | None, str | None, str | None]:
    """Validated ``(profile, allow, crl_stale)`` as stored (``None`` = unchanged)."""
    from edgerules.tls import profiles

    out_profile = out_allow = out_stale = None
    if profile is not None or allow is not None:
        prof = profiles.profile(profile, allow or ())
        out_profile = prof.name if profile is not None else None
        out_allow = ",".join(sorted(prof.allow)) if allow is not None else None
    if crl_stale is not None:
        out_stale = crl_stale.strip().lower()
        if out_stale not in ("open", "closed"):
            raise PKIError(f"crl_stale must be 'open' or 'closed', got {crl_stale!r}")
    return out_profile, out_allow, out_stale


def _decode_ca(pem: str | bytes):  # type: ignore[no-untyped-def]
    from edgerules.tls.cacheck import decode_ca

    der = byoca.ca_upload_der(pem)
    cert = decode_ca(der)
    if cert is None:
        raise PKIError(
            "malformed PEM: the certificate cannot be decoded (not DER, or names OpenSSL "
            "cannot decode either)"
        )
    byoca.check_signature_algorithm(cert.x509)
    return cert


def ca_upload_problems(
    pem: str | bytes, profile: str | None = None, allow: Iterable[str] | str = (),
    now: _dt.datetime | None = None,
) -> list[str]:
    """Why no client could be verified through this CA under ``profile`` (warnings for
    ``ca upload --force``); raises :class:`PKIError` for what ``force`` cannot override."""
    from edgerules.tls import profiles
    from edgerules.tls.cacheck import anchor_problems, not_a_ca

    cert = _decode_ca(pem)
    hard = not_a_ca(cert)
    if hard:
        raise PKIError(hard)
    when = now or _dt.datetime.now(_dt.UTC)
    return anchor_problems(cert, profiles.profile(profile, allow), when)


def prepare_ca_upload(
    pem: str | bytes,
    *,
    ca_id: str,
    name: str | None,
    uploaded_on: str,
    profile: str | None = None,
    allow: Iterable[str] | str = (),
    crl_stale: str = "open",
    force: bool = False,
    now: _dt.datetime | None = None,
) -> UploadedCA:
    """The record to store for an uploaded CA, after the checks described above."""
    from edgerules.tls import dn

    prof_name, allow_text, stale = normalize_settings(profile or "compatible", allow, crl_stale)
    problems = ca_upload_problems(pem, prof_name, allow_text or "", now)
    if problems and not force:
        raise PKIError(
            f"under the {prof_name} profile no client of this CA could be verified: "
            + "; ".join(problems)
            + " (fix the CA, choose another profile or allowance, or upload with --force)"
        )
    cert = _decode_ca(pem)
    try:
        names = (
            cert.x509.subject.rfc4514_string(), cert.x509.issuer.rfc4514_string()
        ) if not cert.copy else None
    except ValueError:  # names cryptography cannot decode (T61String with Latin-1, …)
        names = None
    if names is None:
        names = (dn.rfc2253(cert.raw.subject_entries, escape_msb=False),
                 dn.rfc2253(cert.raw.issuer_entries, escape_msb=False))
    return inspect.uploaded_ca_record(
        cert.x509,
        ca_id=ca_id,
        name=name,
        uploaded_on=uploaded_on,
        der=cert.der,
        names=names,
        serial=cert.raw.serial,
        settings=(prof_name or "compatible", allow_text or "", stale or "open"),
    )


@dataclass(frozen=True)
class CRLFields:
    """What the store keeps about one CRL."""

    pem: str
    issuer: str
    crl_number: str
    this_update: str
    next_update: str
    revoked_count: int


def prepare_crl(data: bytes | str, ca_pem: str | None = None) -> CRLFields:
    """A CRL checked as the validator will apply it (see the module docstring)."""
    from edgerules.tls import crl as tls_crl
    from edgerules.tls.validator import trusted_views

    crl = parse_crl_upload(data)
    refusal = tls_crl.crl_refusal(crl)
    if refusal:
        raise PKIError(f"CRL refused: {refusal}")
    try:
        issuer_text, issuer_canon = tls_crl.crl_issuer(crl)
    except Exception as exc:
        raise PKIError(f"CRL refused: its issuer name cannot be decoded ({exc})") from None
    if ca_pem is not None:
        ca = trusted_views(ca_pem)[0]
        if ca.canon_subject == issuer_canon and not tls_crl.CRLRevocation([crl]).signed_by(ca):
            raise PKIError(
                "CRL refused: it names this CA as its issuer but its signature does not "
                "verify with the CA's key (or the CA's keyUsage lacks cRLSign)"
            )
    number = crl_number(crl)
    nxt = crl.next_update_utc
    return CRLFields(
        pem=crl_pem(crl),
        issuer=issuer_text,
        crl_number="" if number is None else str(number),
        this_update=inspect.rfc3339(crl.last_update_utc),
        next_update="" if nxt is None else inspect.rfc3339(nxt),
        revoked_count=sum(1 for _ in crl),
    )


def build_validator(
    entries: Sequence[TrustEntry],
    crls: Sequence[str],
    *,
    host_profile: tuple[str, str] | None,
    revocation: RevocationSource,
    trust_version: int,
) -> ClientCertValidator:
    """A hostname's validator: each CA with its settings (a hostname profile replaces
    every CA's profile and allowances), every stored CRL (each applies to the issuer it
    names and verifies against)."""
    from edgerules.tls import ClientCertValidator, TrustedCA

    trusted = []
    for e in entries:
        profile, allow = host_profile if host_profile is not None else (e.profile, e.allow)
        trusted.append(
            TrustedCA(e.pem, profile=profile, allow=tuple(a for a in allow.split(",") if a),
                      crl_stale=e.crl_stale)
        )
    validator = ClientCertValidator(
        trusted, revocation=revocation, crls=[c for c in crls if c], trust_version=trust_version
    )
    for problem in validator.problems:  # skipped, never fatal: say so where operators look
        log.warning("validator: %s", problem)
    return validator
