"""Hostname normalisation for per-hostname mTLS (https://developers.cloudflare.com/ssl/client-certificates/enable-mtls/).

One canonical form is stored and looked up: lower-case ASCII (IDNA for non-ASCII
labels), without a trailing dot. Names whose IDNA 2003 and IDNA 2008 encodings differ are
refused rather than guessed at. Cloudflare does not say whether wildcard
associations (``*.example.com``) exist; we reject them with a clear error so that "is mTLS on for this SNI?" is always an
exact lookup — enable every hostname a client connects to (Cloudflare: enable mTLS on the
hostname that the client actually connects to, not on a CNAME target).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from edgerules.pki.errors import PKIError

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
# UTS 46 "deviation" characters: Python's IDNA 2003 codec maps them away (ß -> ss,
# ς -> σ, ZWNJ/ZWJ dropped) while browsers (IDNA 2008, non-transitional) keep them, so
# the codec's answer would be a different hostname from the SNI clients send.
_IDNA_DEVIATIONS = frozenset("\u00df\u03c2\u200c\u200d")


def _idna2008_guess(name: str) -> str:
    """The A-label form that keeps deviation characters (for the error message only)."""
    labels = unicodedata.normalize("NFC", name).split(".")
    return ".".join(
        label if label.isascii() else "xn--" + label.encode("punycode").decode("ascii")
        for label in labels
    )


def normalize_hostnames(hostnames: Iterable[str] | str) -> list[str]:
    """The canonical forms of ``hostnames`` (one string counts as one name), sorted and
    without repeats; :class:`PKIError` for the first malformed one."""
    if isinstance(hostnames, str):
        hostnames = [hostnames]
    return sorted({normalize_hostname(h) for h in hostnames})


def normalize_hostname(hostname: str) -> str:
    """Return the canonical form of ``hostname`` or raise :class:`PKIError`.

    ``"API.Example.COM."`` → ``"api.example.com"``; ``"bücher.example"`` →
    ``"xn--bcher-kva.example"``.
    """
    if not isinstance(hostname, str):
        raise PKIError(f"hostname must be a string, got {type(hostname).__name__}")
    name = hostname.strip().lower()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise PKIError(f"invalid hostname {hostname!r}: empty")
    if "*" in name:
        raise PKIError(
            f"invalid hostname {hostname!r}: wildcard associations are not supported; "
            "enable each hostname clients connect to"
        )
    if not name.isascii():
        if _IDNA_DEVIATIONS.intersection(name):
            raise PKIError(
                f"invalid hostname {hostname!r}: IDNA 2003 and IDNA 2008 encode it "
                f"differently ({_idna2008_guess(name)!r} is what browsers send); give the "
                "A-label (xn--...) your clients connect to"
            )
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise PKIError(f"invalid hostname {hostname!r}: {exc}") from None
    if len(name) > 253:
        raise PKIError(f"invalid hostname {hostname!r}: longer than 253 characters")
    for label in name.split("."):
        if not _LABEL.match(label):
            raise PKIError(
                f"invalid hostname {hostname!r}: bad label {label!r} "
                "(letters, digits, '-' and '_' only, 1-63 characters)"
            )
    return name


def lookup_key(hostname: str | bytes | None) -> str | None:
    """Lenient normalisation for the hot path (SNI from a handshake): never raises.

    Returns ``None`` for a missing or malformed name, which callers treat as
    "mTLS not enabled".
    """
    if hostname is None:
        return None
    if isinstance(hostname, bytes):
        try:
            hostname = hostname.decode("ascii")
        except UnicodeDecodeError:
            return None
    name = hostname.lower()
    if name.endswith("."):
        name = name[:-1]
    if name and name.isascii() and "*" not in name:
        return name
    try:
        return normalize_hostname(hostname)
    except PKIError:
        return None
