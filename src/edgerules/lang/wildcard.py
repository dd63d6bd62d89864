"""Wildcard patterns of ``wildcard`` / ``strict wildcard`` / ``wildcard_replace``
(Cloudflare's operators page, https://developers.cloudflare.com/ruleset-engine/rules-language/operators/).

This module owns parsing wildcard patterns and matching them. Invariants:

* The **whole** value must match; ``*`` matches zero or more arbitrary bytes; every
  other byte (``?`` included) is literal. Escapes: ``\\*`` (literal ``*``) and ``\\\\``
  (literal ``\\``) only — any other ``\\x`` and a trailing lone ``\\`` raise
  ``WildcardError``; two consecutive unescaped stars (``**``) raise ``WildcardError``.
* Case-insensitive mode folds ASCII ``A-Z``/``a-z`` only (``bytes.lower``); non-ASCII
  bytes compare exactly. Case-sensitive mode ("strict") is byte-exact.
* Matching is linear time: no backtracking. The pattern is split at the unescaped stars
  into literal segments; the first segment must be a prefix, the last a suffix, and the
  middle segments are found left to right with ``bytes.find`` (choosing the leftmost
  occurrence of each never loses a match, because it leaves the most room for the rest).
  The same leftmost choice yields the lazy (shortest) captures ``wildcard_replace``
  needs: each ``*`` captures as little as possible, earlier stars first.
* Pattern errors carry the byte offset of the offending backslash or star.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edgerules.errors import RuleError

__all__ = [
    "WildcardError",
    "WildcardPattern",
    "compile_wildcard",
    "parse_wildcard",
    "wildcard_captures",
]


class WildcardError(RuleError):
    """An invalid wildcard pattern; ``offset`` is the byte offset into the pattern."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.offset = offset


@dataclass(frozen=True, slots=True)
class WildcardPattern:
    """A parsed pattern: ``segments`` are the literal pieces between the stars (so there
    are ``len(segments) - 1`` stars; every middle segment is non-empty)."""

    segments: tuple[bytes, ...]

    @property
    def stars(self) -> int:
        return len(self.segments) - 1


def parse_wildcard(pattern: bytes) -> WildcardPattern:
    """Split ``pattern`` at its unescaped stars, resolving ``\\*`` and ``\\\\``."""
    segments: list[bytes] = []
    current = bytearray()
    i = 0
    n = len(pattern)
    last_star = -2  # offset of the previous unescaped star
    while i < n:
        c = pattern[i]
        if c == 0x5C:  # backslash
            if i + 1 >= n:
                raise WildcardError("a wildcard pattern cannot end with a lone \\", i)
            nxt = pattern[i + 1]
            if nxt not in (0x2A, 0x5C):
                raise WildcardError(
                    f"invalid escape \\{chr(nxt) if 0x20 < nxt < 0x7F else f'x{nxt:02x}'} in wildcard "
                    "pattern (only \\* and \\\\ are allowed)",
                    i,
                )
            current.append(nxt)
            i += 2
            continue
        if c == 0x2A:  # star
            if last_star == i - 1:
                raise WildcardError("** is not allowed in a wildcard pattern", i - 1)
            segments.append(bytes(current))
            current = bytearray()
            last_star = i
            i += 1
            continue
        current.append(c)
        i += 1
    segments.append(bytes(current))
    return WildcardPattern(tuple(segments))


def _find_positions(segments: tuple[bytes, ...], value: bytes) -> list[int] | None:
    """Start offsets (in ``value``) of every segment for the leftmost/lazy match, or None.

    ``segments`` and ``value`` must already be case-folded if folding is wanted."""
    first = segments[0]
    last = segments[-1]
    n = len(value)
    if len(segments) == 1:
        return [0] if value == first else None
    if n < len(first) + len(last) or not value.startswith(first) or not value.endswith(last):
        return None
    positions = [0]
    pos = len(first)
    end = n - len(last)
    for seg in segments[1:-1]:
        found = value.find(seg, pos, end)
        if found < 0:
            return None
        positions.append(found)
        pos = found + len(seg)
    positions.append(end)
    return positions


def compile_wildcard(pattern: bytes, *, case_sensitive: bool) -> Callable[[bytes], bool]:
    """Compile ``pattern`` to a predicate over whole values; raises ``WildcardError``."""
    parsed = parse_wildcard(pattern)
    segs = parsed.segments if case_sensitive else tuple(s.lower() for s in parsed.segments)
    fold: Callable[[bytes], bytes] | None = None if case_sensitive else bytes.lower

    # Specialised closures for the common shapes (no star, prefix*, *suffix, *mid*);
    # they are equivalent to the general matcher and keep the hot path short.
    if len(segs) == 1:
        only = segs[0]
        if fold is None:
            return lambda v: v == only
        return lambda v: len(v) == len(only) and v.lower() == only
    if len(segs) == 2:
        head, tail = segs
        need = len(head) + len(tail)
        if fold is None:
            if not tail:
                return lambda v: v.startswith(head)
            if not head:
                return lambda v: v.endswith(tail)
            return lambda v: len(v) >= need and v.startswith(head) and v.endswith(tail)

        def match2(v: bytes) -> bool:
            if len(v) < need:
                return False
            lv = v.lower()
            return lv.startswith(head) and lv.endswith(tail)

        return match2
    if len(segs) == 3 and not segs[0] and not segs[2]:
        mid = segs[1]
        if fold is None:
            return lambda v: mid in v
        return lambda v: mid in v.lower()

    def match(v: bytes) -> bool:
        return _find_positions(segs, v if fold is None else v.lower()) is not None

    return match


def wildcard_captures(
    pattern: bytes, *, case_sensitive: bool
) -> Callable[[bytes], tuple[bytes, ...] | None]:
    """Compile ``pattern`` to a function returning the text each ``*`` matched (lazy,
    shortest first, earlier stars first) or ``None`` when the whole value does not
    match. Captures are slices of the original (unfolded) value."""
    parsed = parse_wildcard(pattern)
    segs = parsed.segments if case_sensitive else tuple(s.lower() for s in parsed.segments)
    lens = [len(s) for s in segs]

    def captures(v: bytes) -> tuple[bytes, ...] | None:
        positions = _find_positions(segs, v if case_sensitive else v.lower())
        if positions is None:
            return None
        return tuple(
            v[positions[k] + lens[k] : positions[k + 1]] for k in range(len(segs) - 1)
        )

    return captures
