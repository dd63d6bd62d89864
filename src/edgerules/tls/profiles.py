"""Validation profiles: what a trust anchor's clients must look like.

Owns: the profile names, the named weaknesses an operator may allow, and parsing them.

* ``compatible`` (the default) accepts what ``openssl verify -purpose sslclient`` accepts
  at security level 2 (what nginx and most TLS servers accept): non-critical
  basicConstraints on CAs, a critical extendedKeyUsage, v1 leaves and v1 roots as
  anchors, PrintableString outside its alphabet, negative and long serials, policy
  extensions (recognised, as OpenSSL does without ``-policy_check``), directoryName and
  URI name constraints, names matched after OpenSSL's case folding.
* ``strict`` adds RFC 5280 / CA/B Forum profile rules on top (what pyca/cryptography's
  WebPKI verifier enforces): basicConstraints critical on CAs, v3 only, positive serials
  of at most 20 octets, no critical EKU/AKI/SKI, exact name matching, only RSA and
  P-256/384/521 CA keys with the CA/B signature algorithms.
* Weak cryptography is refused by **every** profile unless the operator names each
  weakness: ``sha1`` (SHA-1 signatures below the anchor), ``md5`` (MD5 signatures),
  ``rsa1024`` (RSA keys of 1024-2047 bits), ``dsa`` (DSA keys, at least 2048 bits).

Invariants: a :class:`Profile` is immutable and hashable; unknown names are a
``PKIError`` naming the valid ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from edgerules.pki.errors import PKIError

__all__ = ["COMPATIBLE", "DEFAULT", "PROFILE_NAMES", "STRICT", "WEAKNESSES", "Profile", "profile"]

PROFILE_NAMES = ("compatible", "strict")
WEAKNESSES: dict[str, str] = {
    "sha1": "SHA-1 signatures",
    "md5": "MD5 signatures",
    "rsa1024": "RSA keys of 1024 to 2047 bits",
    "dsa": "DSA keys (2048 bits and more)",
}


@dataclass(frozen=True, slots=True)
class Profile:
    """A validation profile and the weaknesses it allows."""

    name: str = "compatible"
    allow: frozenset[str] = frozenset()

    @property
    def strict(self) -> bool:
        return self.name == "strict"

    def allows(self, weakness: str) -> bool:
        return weakness in self.allow

    def __str__(self) -> str:
        if not self.allow:
            return self.name
        return f"{self.name} (allowing {', '.join(sorted(self.allow))})"


def profile(name: str | Profile | None = None, allow: Iterable[str] | str = ()) -> Profile:
    """The profile called ``name`` (default ``compatible``) allowing ``allow``
    (weakness names, or one comma-separated string)."""
    if isinstance(name, Profile):
        if not allow:
            return name
        allow = set(name.allow) | set(_weakness_list(allow))
        name = name.name
    key = (name or "compatible").strip().lower()
    if key not in PROFILE_NAMES:
        raise PKIError(
            f"unknown validation profile {name!r}: expected one of {', '.join(PROFILE_NAMES)}"
        )
    return Profile(key, frozenset(_weakness_list(allow)))


def _weakness_list(allow: Iterable[str] | str) -> list[str]:
    items = allow.split(",") if isinstance(allow, str) else list(allow)
    out = []
    for item in items:
        if not isinstance(item, str):
            raise PKIError(f"weakness names are strings, got {type(item).__name__}")
        word = item.strip().lower()
        if not word:
            continue
        if word not in WEAKNESSES:
            raise PKIError(
                f"unknown weakness {item!r}: expected one of {', '.join(WEAKNESSES)}"
            )
        out.append(word)
    return out


COMPATIBLE = Profile("compatible")
STRICT = Profile("strict")
DEFAULT = COMPATIBLE
