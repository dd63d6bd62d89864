"""The validator's profile run on a CA certificate itself, before it is trusted.

Owns: :func:`anchor_problems` — every reason why *all* clients of a would-be trust anchor
would be refused under a profile, worded as the validator words them: the checks
:mod:`edgerules.tls.walk` (and :mod:`edgerules.tls.strict`) apply to the anchor position
of a path. ``edgerules ca upload`` refuses such a CA, or with ``--force`` warns (issue 10
point 3: upload check = validation check).

Invariants: pure (the time is a parameter); never raises for any input; the names of
the CA are checked the way OpenSSL loads them (T61String, PrintableString outside its
alphabet and the like are fine; an undecodable name is a problem, not an internal error).
"""

from __future__ import annotations

import datetime as _dt

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from edgerules.tls import keycheck
from edgerules.tls.certs import Cert, decode
from edgerules.tls.profiles import Profile
from edgerules.tls.reasons import Reason
from edgerules.tls.strict import ca_strict_reason
from edgerules.tls.walk import check_ca, unhandled_critical

__all__ = ["anchor_problems", "decode_ca", "not_a_ca"]


def decode_ca(der: bytes) -> Cert | None:
    """The CA certificate as the validator decodes it (None: OpenSSL could not load it)."""
    return decode(der)


def not_a_ca(cert: Cert) -> str:
    """Why ``cert`` cannot be a CA at all (OpenSSL's ``X509_check_ca``), or ``""``."""
    if check_ca(cert):
        return ""
    bc = cert.ext(x509.BasicConstraints)
    if isinstance(bc, x509.BasicConstraints) and not bc.ca:
        return (
            "invalid CA certificate: the certificate is a leaf (basicConstraints CA:FALSE): "
            "upload the CA that issued the client certificates instead"
        )
    ku = cert.ext(x509.KeyUsage)
    if isinstance(ku, x509.KeyUsage) and not ku.key_cert_sign:
        return "invalid CA certificate: its keyUsage does not allow certificate signing"
    return (
        "invalid CA certificate: the certificate is not a CA (no basicConstraints CA:TRUE, "
        "no keyCertSign keyUsage): upload the CA that issued the client certificates"
    )


def anchor_problems(cert: Cert, profile: Profile, now: _dt.datetime) -> list[str]:
    """Why no client chaining to ``cert`` could be verified under ``profile`` at ``now``."""
    out: list[str] = []
    try:
        if now < cert.x509.not_valid_before_utc:
            out.append(Reason.NOT_YET_VALID)
        elif now > cert.x509.not_valid_after_utc:
            out.append(Reason.EXPIRED)
    except Exception:
        out.append(Reason.UNDECODABLE)
    if unhandled_critical(cert):
        out.append(Reason.UNHANDLED_CRITICAL)
    if check_ca(cert) == 0:
        out.append(Reason.INVALID_CA)
    eku = cert.ext(x509.ExtendedKeyUsage)
    if isinstance(eku, x509.ExtendedKeyUsage) and ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        out.append(Reason.UNSUPPORTED_PURPOSE)
    refusal = cert.key_refusal
    if refusal:
        out.append(f"{Reason.ISSUER_KEY_UNUSABLE} ({refusal})")
    else:
        weak = keycheck.key_weakness(cert.key_info)
        if weak and (weak == keycheck.HARD or not profile.allows(weak)):
            allow = "" if weak == keycheck.HARD else f"; allow it with --allow {weak}"
            out.append(f"{Reason.CA_KEY_TOO_WEAK}{allow}")
    if profile.strict:
        reason = ca_strict_reason(cert)
        if reason:
            out.append(reason)
    return out
