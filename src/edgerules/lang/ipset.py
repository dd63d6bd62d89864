"""Sets of integers as merged, sorted inclusive intervals (IP addresses of one family,
CIDRs, ranges; integer ranges of the Rules language).

Owns ``merge_intervals`` and ``interval_test``; used by the closure compiler (inline sets
``{10.0.0.0/8 192.0.2.1}``, ``{1..5}``) and by ``lists.IPList`` (named lists), so both
merge and search intervals the same way.

Invariants: ``merge_intervals`` returns parallel ``starts``/``ends`` lists, ascending,
non-overlapping and non-adjacent (``[1, 2]`` and ``[3, 4]`` merge into ``[1, 4]``), ready
for ``bisect``; ``interval_test`` answers exactly "is ``k`` inside one of the intervals".
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable

__all__ = ["interval_test", "merge_intervals"]


def merge_intervals(intervals: Iterable[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Sort and merge inclusive integer intervals (adjacent ones too) into two parallel
    lists of starts and ends."""
    starts: list[int] = []
    ends: list[int] = []
    for lo, hi in sorted(intervals):
        if ends and lo <= ends[-1] + 1:
            if hi > ends[-1]:
                ends[-1] = hi
        else:
            starts.append(lo)
            ends.append(hi)
    return starts, ends


def interval_test(intervals: Iterable[tuple[int, int]]) -> Callable[[int], bool] | None:
    """``k -> bool``: is ``k`` inside one of the intervals? A chained comparison for one
    interval, a loop for a handful, ``bisect`` (O(log n)) beyond that; ``None`` when there
    are no intervals."""
    starts, ends = merge_intervals(intervals)
    if not starts:
        return None
    if len(starts) == 1:
        lo, hi = starts[0], ends[0]
        return lambda k: lo <= k <= hi
    if len(starts) <= 4:
        pairs = tuple(zip(starts, ends, strict=True))

        def linear(k: int) -> bool:
            for lo, hi in pairs:  # noqa: SIM110 - a plain loop beats any()+genexpr
                if lo <= k <= hi:
                    return True
            return False

        return linear

    def search(k: int) -> bool:
        j = bisect_right(starts, k) - 1
        return j >= 0 and k <= ends[j]

    return search
