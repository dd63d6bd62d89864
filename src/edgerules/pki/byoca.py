"""Validation of an uploaded CA certificate (BYOCA; spec mtls.md §6, §12).

The ``certificates`` field must hold exactly one PEM certificate, with
``basicConstraints CA:TRUE`` and one of the signature algorithms Cloudflare lists. Each
rejected input gets its own message (spec §12 "BYOCA upload rejected": a leaf, an
unsupported signature algorithm, malformed PEM, keys or CSRs in the field).

[U] Bundles (intermediate + root) are rejected: upload only the CA that directly issued
the client certificates (spec §6 "Which certificate"); that CA is the trust anchor even
when it is an intermediate, so the root is never needed.
"""

from __future__ import annotations

import re

from cryptography import x509

from edgerules.pki.errors import PKIError
from edgerules.pki.inspect import SIGNATURE_NAMES

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")


def parse_ca_upload(pem: str | bytes) -> x509.Certificate:
    """Return the uploaded CA certificate or raise :class:`PKIError` saying why not."""
    data = pem.encode("utf-8") if isinstance(pem, str) else pem
    labels = [m.group(1).decode("ascii") for m in _PEM_BLOCK.finditer(data)]
    if any("PRIVATE KEY" in label for label in labels):
        raise PKIError(
            "the certificates field contains a private key: upload only the CA certificate "
            "(PEM '-----BEGIN CERTIFICATE-----'), never its key"
        )
    if any("CERTIFICATE REQUEST" in label for label in labels):
        raise PKIError(
            "the certificates field contains a certificate signing request (CSR): upload the "
            "signed CA certificate instead"
        )
    others = sorted({label for label in labels if label != "CERTIFICATE"})
    if others:
        raise PKIError(
            f"the certificates field contains unsupported PEM blocks ({', '.join(others)}): "
            "only '-----BEGIN CERTIFICATE-----' is accepted"
        )
    if not labels:
        raise PKIError(
            "malformed PEM: no '-----BEGIN CERTIFICATE-----' block found in the certificates field"
        )
    if len(labels) > 1:
        raise PKIError(
            f"the certificates field contains {len(labels)} certificates: upload exactly one, "
            "the CA that directly issued the client certificates (bundles are not accepted)"
        )
    if data.count(b"-----END CERTIFICATE-----") != 1:
        raise PKIError("malformed PEM: missing '-----END CERTIFICATE-----'")
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise PKIError(f"malformed PEM: the certificate cannot be decoded ({exc})") from None
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise PKIError(
            "the certificate is not a CA (no basicConstraints extension): upload the CA that "
            "issued the client certificates, not a leaf certificate"
        ) from None
    except ValueError as exc:  # a duplicated or undecodable extension
        raise PKIError(f"malformed certificate extensions: {exc}") from None
    if not constraints.ca:
        raise PKIError(
            "the certificate is a leaf (basicConstraints CA:FALSE): upload the CA that issued "
            "the client certificates instead"
        )
    if cert.signature_algorithm_oid not in SIGNATURE_NAMES:
        oid = cert.signature_algorithm_oid
        shown = getattr(oid, "_name", None) or oid.dotted_string
        raise PKIError(
            f"unsupported signature algorithm {shown}: accepted are "
            + ", ".join(SIGNATURE_NAMES.values())
        )
    return cert
