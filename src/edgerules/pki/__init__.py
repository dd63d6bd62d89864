"""The client-certificate PKI: managed CA, issuing, CSR handling, BYOCA checks, PKCS#12.

Pure functions over ``cryptography`` objects (the only modules besides ``tls/`` that call
cryptography's X.509 APIs); persistence lives in :mod:`edgerules.store`.
"""

from edgerules.pki.bundle import export_pkcs12
from edgerules.pki.byoca import parse_ca_upload
from edgerules.pki.hostnames import lookup_key, normalize_hostname
from edgerules.pki.issuing import (
    DEFAULT_CLIENT_SUBJECT,
    DEFAULT_VALIDITY_DAYS,
    MAX_VALIDITY_DAYS,
    build_csr,
    check_validity_days,
    create_managed_ca,
    issue_client_certificate,
    load_csr,
    managed_ca_name,
    parse_subject,
    random_serial,
)
from edgerules.pki.keys import KEY_TYPES, generate_key, key_from_pem, key_to_pem
from edgerules.pki.records import (
    REVOKED_STATUSES,
    STATUSES,
    CertificatePage,
    ClientCertificate,
    IssuedCertificate,
    ManagedCA,
    UploadedCA,
)

__all__ = [
    "DEFAULT_CLIENT_SUBJECT",
    "DEFAULT_VALIDITY_DAYS",
    "KEY_TYPES",
    "MAX_VALIDITY_DAYS",
    "REVOKED_STATUSES",
    "STATUSES",
    "CertificatePage",
    "ClientCertificate",
    "IssuedCertificate",
    "ManagedCA",
    "UploadedCA",
    "build_csr",
    "check_validity_days",
    "create_managed_ca",
    "export_pkcs12",
    "generate_key",
    "issue_client_certificate",
    "key_from_pem",
    "key_to_pem",
    "load_csr",
    "lookup_key",
    "managed_ca_name",
    "normalize_hostname",
    "parse_ca_upload",
    "parse_subject",
    "random_serial",
]
