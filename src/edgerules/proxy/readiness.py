"""Whether the proxy's store is reachable, and how fresh the state read from it is.

Owns: ``StoreProbe``, which reads the store's state at a fixed interval off the event
loop, and ``StoreStatus``, what ``/readyz`` and ``/metrics`` report from it.

How a probe decides "reachable":

* A store with a ``health()`` method (``Store.health()``: the store's sync thread keeps
  the enforcement state in memory and knows whether its last read of the storage
  worked, when it last synced and the state versions) is asked; its answer is used as
  is. This is the normal case.
* Otherwise (a store object without it, e.g. an embedder's): the store's change counters
  are read (``versions()``), and for a store file the path must still name the file that
  was opened (an open SQLite connection keeps reading a deleted file, so without this
  check a proxy whose store file was removed would look healthy).

Invariants: a probe never runs on the event loop (``asyncio.to_thread``) and at most one
runs at a time; a probe that does not answer within ``timeout`` counts as unreachable;
``status()`` never raises and never blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["StoreProbe", "StoreStatus"]

log = logging.getLogger("edgerules.proxy")


@dataclass(frozen=True)
class StoreStatus:
    reachable: bool
    state_loaded: bool  # a probe succeeded at least once
    versions: Mapping[str, int] | None  # the counters last read
    last_sync_age: float | None  # seconds since the last successful read
    error: str | None  # why the last probe failed


def _file_identity(path: Any) -> tuple[int, int] | None:
    if not isinstance(path, str) or path in ("", ":memory:"):
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class StoreProbe:
    """Reads ``store`` every ``interval`` seconds (``run``) or on demand (``probe``)."""

    def __init__(self, store: Any, *, interval: float = 1.0, timeout: float = 5.0) -> None:
        self.store = store
        self.interval = interval
        self.timeout = timeout
        self.path = getattr(store, "path", None)
        self._identity = _file_identity(self.path)
        self._last_ok: float | None = None  # time.monotonic() of the last success
        self._versions: dict[str, int] | None = None
        self._error: str | None = "not probed yet"
        self._reachable = False
        self._running = False

    # -- one probe (blocking: runs in a worker thread) --------------------------------
    def probe(self) -> None:
        try:
            health = getattr(self.store, "health", None)
            if callable(health):
                self._from_health(health())
            else:
                self._check_file()
                trust, revocation = self.store.versions()
                self._ok({"trust": int(trust), "revocation": int(revocation)})
        except Exception as exc:
            self._fail(str(exc) or type(exc).__name__)

    def _from_health(self, health: Any) -> None:
        """``Store.health()`` (``store.live.StoreHealth``): the store's own sync thread
        knows whether its last read worked, when it last synced and the versions of the
        state the proxy enforces; nothing is read from storage here."""
        versions = {
            "trust": int(getattr(health, "trust_version", 0)),
            "revocation": int(getattr(health, "revocation_version", 0)),
        }
        loaded = bool(getattr(health, "loaded", True))
        age = getattr(health, "last_sync_age", None)
        if getattr(health, "reachable", False) and loaded:
            self._ok(versions, age=age)
        else:
            if loaded:
                self._versions = versions  # the state still enforced (fail static)
            error = getattr(health, "last_error", None) or (
                "no state loaded yet" if not loaded else "the store reports it is unreachable"
            )
            self._fail(str(error), age=age, loaded=loaded)

    def _check_file(self) -> None:
        if self._identity is None:
            return
        path = self.path
        try:
            st = os.stat(path)
            with open(path, "rb") as f:  # readable by this process now (not only at start)
                f.read(16)
        except FileNotFoundError:
            raise OSError(f"store file {path} is gone (removed or renamed)") from None
        except OSError as exc:
            raise OSError(f"store file {path} cannot be read: {exc.strerror or exc}") from None
        if (st.st_dev, st.st_ino) != self._identity:
            raise OSError(
                f"store file {path} was replaced by another file; this proxy still reads the "
                "old one: restart it"
            )

    def _ok(self, versions: dict[str, int] | None, *, age: float | None = None) -> None:
        if not self._reachable and self._error not in (None, "not probed yet"):
            log.warning("store reachable again")
        self._versions = versions if versions is not None else self._versions
        self._last_ok = time.monotonic() - (age or 0.0)
        self._reachable = True
        self._error = None

    def _fail(self, error: str, *, age: float | None = None, loaded: bool | None = None) -> None:
        if self._reachable or self._error == "not probed yet":
            log.error("store unreachable: %s", error)  # once per outage, not per probe
        self._reachable = False
        self._error = error
        if age is not None and loaded is not False:
            self._last_ok = time.monotonic() - age  # the store knows its last sync

    # -- the event loop side ----------------------------------------------------------
    async def probe_async(self) -> None:
        """One probe in a worker thread (skipped while another is still running)."""
        if self._running:
            return
        self._running = True
        try:
            await asyncio.wait_for(asyncio.to_thread(self.probe), self.timeout)
        except TimeoutError:
            self._fail(f"the store did not answer within {self.timeout:g} s")
        finally:
            self._running = False

    async def run(self) -> None:
        """Probe every ``interval`` seconds until cancelled."""
        while True:
            with contextlib.suppress(Exception):
                await self.probe_async()
            await asyncio.sleep(self.interval)

    def status(self) -> StoreStatus:
        age = None if self._last_ok is None else time.monotonic() - self._last_ok
        return StoreStatus(
            reachable=self._reachable,
            state_loaded=self._last_ok is not None,
            versions=dict(self._versions) if self._versions is not None else None,
            last_sync_age=age,
            error=self._error,
        )
