"""Client-certificate (mTLS) validation: from the chain a client presented to the
``cf.tls_client_auth.*`` field values
(https://developers.cloudflare.com/ssl/client-certificates/client-certificate-variables/).

>>> from edgerules.tls import ClientCertValidator, NOT_REQUESTED
>>> validator = ClientCertValidator(trusted=[])      # CAs: x509.Certificate, PEM or DER
>>> auth = validator.validate([])                    # the client sent no certificate
>>> auth.presented, auth.verified, auth.tls_client_auth["certVerified"]
(False, False, 'NONE')
>>> NOT_REQUESTED.fields()["cf.tls_client_auth.cert_subject_dn"]
b''

Modules: ``validator`` (limits, caching, revocation), ``verify`` (the only caller of
``cryptography.x509.verification``), ``certinfo`` (DN/serial/date formats), ``rfc9440``,
``revocation``, ``crl``, ``cache``, ``headers`` (forwarding headers), ``auth`` (``ClientAuth``).
"""

from __future__ import annotations

from edgerules.tls.auth import (
    FIELD_NAMES,
    NO_CERTIFICATE,
    NOT_REQUESTED,
    ClientAuth,
    ClientAuthFields,
)
from edgerules.tls.crl import CRLRevocation, load_crl
from edgerules.tls.headers import STRIP_HEADERS, forwarding_headers
from edgerules.tls.reasons import Reason
from edgerules.tls.revocation import RevocationSource, SerialRevocation
from edgerules.tls.validator import ClientCertValidator, TrustedCA, load_certificates

__all__ = [
    "FIELD_NAMES",
    "NOT_REQUESTED",
    "NO_CERTIFICATE",
    "STRIP_HEADERS",
    "CRLRevocation",
    "ClientAuth",
    "ClientAuthFields",
    "ClientCertValidator",
    "Reason",
    "RevocationSource",
    "SerialRevocation",
    "TrustedCA",
    "forwarding_headers",
    "load_certificates",
    "load_crl",
]
