"""The input checks of an uploaded CA certificate (BYOCA:
https://developers.cloudflare.com/ssl/client-certificates/byo-ca/).

Owns: the ``certificates`` field's structure — exactly one PEM certificate, no keys, CSRs
or other blocks (:func:`ca_upload_der`) — and Cloudflare's list of signature algorithms
(:func:`check_signature_algorithm`). Each rejected input gets its own message (one per
requirement of Cloudflare's BYOCA page: a CA certificate, not a leaf; one of the listed
signature algorithms; well-formed PEM with no keys or CSRs in the field).

Whether the certificate can serve as a trust anchor at all, and under which profile its
clients could be verified, is the validator's judgement, run by the store on upload
(``edgerules.tls.cacheck``; issue 10 point 3): the upload check is the validation check.

Bundles (intermediate + root) are rejected (our choice; Cloudflare does not say): upload
only the CA that directly issued the client certificates, as Cloudflare asks; that CA is
the trust anchor even when it is an intermediate, so the root is never needed.
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography import x509

from edgerules.pki.errors import PKIError
from edgerules.pki.inspect import SIGNATURE_NAMES

__all__ = ["ca_upload_der", "check_signature_algorithm", "parse_ca_upload"]

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
_PEM_CERT = re.compile(
    rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL
)


def ca_upload_der(pem: str | bytes) -> bytes:
    """The DER of the one certificate in ``pem``, or :class:`PKIError` saying why not.
    The DER is not parsed here (the validator decodes it as OpenSSL does)."""
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
    blocks = _PEM_CERT.findall(data)
    if data.count(b"-----END CERTIFICATE-----") != 1 or len(blocks) != 1:
        raise PKIError("malformed PEM: missing '-----END CERTIFICATE-----'")
    try:
        der = base64.b64decode(b"".join(blocks[0].split()), validate=True)
    except (binascii.Error, ValueError):
        raise PKIError("malformed PEM: the certificate is not valid Base64") from None
    if not der:
        raise PKIError("malformed PEM: the certificate block is empty")
    return der


def check_signature_algorithm(cert: x509.Certificate) -> None:
    """Cloudflare accepts uploaded CAs signed with the algorithms it lists (BYOCA page)."""
    oid = cert.signature_algorithm_oid
    if oid not in SIGNATURE_NAMES:
        shown = getattr(oid, "_name", None) or oid.dotted_string
        raise PKIError(
            f"unsupported signature algorithm {shown}: accepted are "
            + ", ".join(SIGNATURE_NAMES.values())
        )


def parse_ca_upload(pem: str | bytes) -> x509.Certificate:
    """The uploaded certificate as cryptography loads it (structure and signature
    algorithm checked; callers that must accept names cryptography cannot decode use
    :func:`ca_upload_der` and the validator's decoder instead)."""
    der = ca_upload_der(pem)
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise PKIError(f"malformed PEM: the certificate cannot be decoded ({exc})") from None
    check_signature_algorithm(cert)
    return cert
