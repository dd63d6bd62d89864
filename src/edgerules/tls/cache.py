"""A bounded LRU of validation results with validity windows.

Owns: memoising ``ClientAuth`` results per (presented chain, trust version, revocation
version); the key holds the chain's DER bytes themselves, so two chains never share an
entry. Each entry carries the half-open time window ``[start, end)`` in which the
result cannot change (no certificate of the path starts or stops being valid, no CRL
becomes usable or stale); a lookup at a time outside the window is a miss and the entry
is dropped.

Invariants: at most ``maxsize`` entries and at most ``maxbytes`` of accounted size (the
presented chains the entries hold; least recently used evicted first); thread-safe
(one lock around the dict operations; a lookup costs well under a microsecond);
``maxsize == 0`` disables caching.
"""

from __future__ import annotations

import datetime as _dt
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["ResultCache"]

T = TypeVar("T")


class ResultCache(Generic[T]):
    """LRU mapping ``key -> (value, start, end)``."""

    __slots__ = ("_data", "_lock", "bytes", "hits", "maxbytes", "maxsize", "misses")

    def __init__(self, maxsize: int = 4096, maxbytes: int = 32 << 20) -> None:
        self.maxsize = max(0, int(maxsize))
        self.maxbytes = maxbytes
        self.bytes = 0
        self._data: OrderedDict[
            Hashable, tuple[T, _dt.datetime | None, _dt.datetime | None, int]
        ] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: Hashable, now: _dt.datetime) -> T | None:
        if self.maxsize == 0:
            return None  # caching disabled: nothing to look up (no lock taken)
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                self.misses += 1
                return None
            value, start, end, size = entry
            if (start is not None and now < start) or (end is not None and now >= end):
                del self._data[key]
                self.bytes -= size
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(
        self,
        key: Hashable,
        value: T,
        start: _dt.datetime | None,
        end: _dt.datetime | None,
        size: int = 0,
    ) -> None:
        if self.maxsize == 0 or size > self.maxbytes:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self.bytes -= old[3]
            self._data[key] = (value, start, end, size)
            self.bytes += size
            while len(self._data) > self.maxsize or self.bytes > self.maxbytes:
                self.bytes -= self._data.popitem(last=False)[1][3]

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.bytes = 0
