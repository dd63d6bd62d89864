"""The client-certificate PKI: managed CA, issuing, CSR handling, BYOCA checks, PKCS#12.

Pure functions over ``cryptography`` objects (the only modules besides ``tls/`` that call
cryptography's X.509 APIs); persistence lives in :mod:`edgerules.store`.

The public names are imported lazily, so ``edgerules.pki.errors`` (which the validator
uses) does not load the whole PKI.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> module that defines it
_EXPORTS = {
    "export_pkcs12": "edgerules.pki.bundle",
    "parse_ca_upload": "edgerules.pki.byoca",
    "lookup_key": "edgerules.pki.hostnames",
    "normalize_hostname": "edgerules.pki.hostnames",
    "DEFAULT_CLIENT_SUBJECT": "edgerules.pki.issuing",
    "DEFAULT_VALIDITY_DAYS": "edgerules.pki.issuing",
    "MAX_VALIDITY_DAYS": "edgerules.pki.issuing",
    "build_csr": "edgerules.pki.issuing",
    "check_validity_days": "edgerules.pki.issuing",
    "create_managed_ca": "edgerules.pki.issuing",
    "issue_client_certificate": "edgerules.pki.issuing",
    "load_csr": "edgerules.pki.issuing",
    "managed_ca_name": "edgerules.pki.issuing",
    "parse_subject": "edgerules.pki.issuing",
    "random_serial": "edgerules.pki.issuing",
    "KEY_TYPES": "edgerules.pki.keys",
    "generate_key": "edgerules.pki.keys",
    "key_from_pem": "edgerules.pki.keys",
    "key_to_pem": "edgerules.pki.keys",
    "REVOKED_STATUSES": "edgerules.pki.records",
    "STATUSES": "edgerules.pki.records",
    "CertificatePage": "edgerules.pki.records",
    "ClientCertificate": "edgerules.pki.records",
    "IssuedCertificate": "edgerules.pki.records",
    "ManagedCA": "edgerules.pki.records",
    "UploadedCA": "edgerules.pki.records",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'edgerules.pki' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
