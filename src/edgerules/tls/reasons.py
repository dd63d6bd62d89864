"""Why a presented certificate was refused: the ``failure_reason`` strings.

Owns the wording. Where OpenSSL has a verify error for the situation, the reason is its
``X509_verify_cert_error_string`` text (OpenSSL 1.1 wording, as Cloudflare's Workers
show; OpenSSL 3 renamed three of them, see docs/validator.md); where OpenSSL has none
(our DoS caps, the strict profile's extra rules), precise words naming the cause.
``certificate rejected`` (OpenSSL's catch-all) is never produced without a cause.
"""

from __future__ import annotations

__all__ = ["Reason"]


class Reason:
    """``failure_reason`` texts (see the module docstring)."""

    # OpenSSL verify errors
    EXPIRED = "certificate has expired"
    NOT_YET_VALID = "certificate is not yet valid"
    SELF_SIGNED = "self signed certificate"
    SELF_SIGNED_IN_CHAIN = "self signed certificate in certificate chain"
    NO_LOCAL_ISSUER = "unable to get local issuer certificate"
    NO_ISSUER = "unable to get issuer certificate"
    UNABLE_TO_VERIFY_FIRST = "unable to verify the first certificate"
    SIGNATURE_FAILURE = "certificate signature failure"
    ISSUER_KEY_UNUSABLE = "unable to decode issuer public key"
    UNSUPPORTED_PURPOSE = "unsupported certificate purpose"
    INVALID_CA = "invalid CA certificate"
    PATH_LENGTH = "path length constraint exceeded"
    PERMITTED_SUBTREE = "permitted subtree violation"
    EXCLUDED_SUBTREE = "excluded subtree violation"
    NAME_SYNTAX = "unsupported or invalid name syntax"
    CONSTRAINT_TYPE = "unsupported name constraint type"
    CONSTRAINT_SYNTAX = "unsupported or invalid name constraint syntax"
    SUBTREE_MINMAX = "name constraints minimum and maximum not supported"
    CHAIN_TOO_LONG = "certificate chain too long"
    UNHANDLED_CRITICAL = "unhandled critical extension"
    INVALID_EXTENSION = "invalid or inconsistent certificate extension"
    EE_KEY_TOO_WEAK = "EE certificate key too weak"
    CA_KEY_TOO_WEAK = "CA certificate key too weak"
    CA_MD_TOO_WEAK = "CA signature digest algorithm too weak"
    # CRL checks (openssl verify -crl_check / -crl_check_all)
    CRL_EXPIRED = "CRL has expired"
    CRL_NOT_YET_VALID = "CRL is not yet valid"
    UNHANDLED_CRITICAL_CRL = "unhandled critical CRL extension"
    CRL_SIGNATURE_FAILURE = "CRL signature failure"
    # OpenSSL -x509_strict wording, used by the strict profile
    CA_BC_NOT_CRITICAL = "Basic Constraints of CA cert not marked critical"
    AKI_CRITICAL = "Authority Key Identifier marked critical"
    SKI_CRITICAL = "Subject Key Identifier marked critical"
    ISSUER_EMPTY = "Issuer name empty"
    # Not X509 verify errors: chosen for inputs a TLS stack would reject earlier.
    UNDECODABLE = "unable to decode certificate"
    TOO_LARGE = "excessive message size"  # OpenSSL's TLS error for an oversized cert list
    # Our DoS bound (issue 9 point 2): more candidate issuers than the budget can check.
    BUDGET = "too many candidate issuers (signature check budget exhausted)"
    # OpenSSL's X509_V_ERR_CERT_REJECTED text; only ever produced with a cause appended
    # (see :func:`rejected`).
    REJECTED = "certificate rejected"


def rejected(cause: str) -> str:
    """``certificate rejected (<cause>)``: the catch-all, always with its cause."""
    return f"{Reason.REJECTED} ({cause})" if cause else Reason.REJECTED
