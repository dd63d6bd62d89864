"""Signature checks for one validation: memoised and paid for from a hard budget.

Owns: :class:`Signatures`, the only place our own code verifies a certificate
signature (cryptography's verifier does its own inside ``verify``).

Invariants (issue 9 point 2):

* A key refused by :func:`edgerules.tls.keycheck.refusal` never verifies anything and
  costs nothing: it is rejected before any arithmetic.
* Each (certificate, issuer) pair is checked at most once per validation (memo).
* Every check is paid for in P-256 units (:func:`edgerules.tls.keycheck.cost`) from a
  budget fixed per validation; when a check would overdraw it, it is not performed, it
  answers "does not verify" and ``exhausted`` is set, so the caller can say why.
* The signature is checked over the certificate's original TBS bytes with the original
  algorithm; a certificate whose outer and inner signature algorithms differ never
  verifies (OpenSSL's ``X509_verify``).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa

from edgerules.tls.certs import Cert

__all__ = ["SIGNATURE_BUDGET", "Signatures", "verify_signature"]

# P-256-verification units one validation may spend in our own checks (path building,
# failure classification, direct-issuer lookup). A normal chain costs 1-4; the budget is
# what 4 RSA-8192 (e=65537) intermediates, or 64 P-256 ones, cost.
SIGNATURE_BUDGET = 64


def verify_signature(child: Cert, key: object) -> bool:
    """``child``'s signature verifies with public key ``key``."""
    raw = child.raw
    if raw.sig_alg != raw.tbs_sig_alg:
        return False
    cert = child.x509  # the algorithm fields are the original's even in a loadable copy
    try:
        params = cert.signature_algorithm_parameters
        if isinstance(key, rsa.RSAPublicKey):
            # cryptography describes only the algorithms it builds (MD5: no parameters)
            key.verify(
                raw.signature,
                raw.tbs,
                params if params is not None else padding.PKCS1v15(),  # type: ignore[arg-type]
                cert.signature_hash_algorithm,  # type: ignore[arg-type]
            )
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if params is None:
                params = ec.ECDSA(cert.signature_hash_algorithm)  # type: ignore[arg-type]
            key.verify(raw.signature, raw.tbs, params)  # type: ignore[arg-type]
        elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            if cert.signature_hash_algorithm is not None:
                return False
            key.verify(raw.signature, raw.tbs)
        elif isinstance(key, dsa.DSAPublicKey):
            key.verify(raw.signature, raw.tbs, cert.signature_hash_algorithm)  # type: ignore[arg-type]
        else:
            return False
    except Exception:
        return False
    return True


class Signatures:
    """Memoised, budgeted signature checks for one validation (not thread-safe: one
    instance per validation)."""

    __slots__ = ("_memo", "exhausted", "left", "spent")

    def __init__(self, budget: int = SIGNATURE_BUDGET) -> None:
        self.left = budget
        self.spent = 0
        self.exhausted = False
        self._memo: dict[tuple[int, int], bool] = {}

    def signed_by(self, child: Cert, issuer: Cert) -> bool:
        key = (id(child), id(issuer))
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        ok = False
        if not issuer.key_refusal:
            price = issuer.cost
            if price > self.left:
                self.exhausted = True
                return False  # not memoised: the answer is "unknown", not "no"
            self.left -= price
            self.spent += price
            pub = issuer.public_key()
            ok = pub is not None and verify_signature(child, pub)
        self._memo[key] = ok
        return ok

    def spend(self, units: int) -> bool:
        """Reserve ``units`` for work done elsewhere (cryptography's own verifier);
        False (nothing reserved) when the budget cannot cover it."""
        if units > self.left:
            return False
        self.left -= units
        self.spent += units
        return True
