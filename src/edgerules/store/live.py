"""The state the enforcement path reads, held in memory and kept in step with the store.

Owns: :class:`StateSnapshot` (trusted CAs per hostname, the managed CA, revoked serials,
the two version numbers), :class:`LiveState` (loads snapshots, refreshes them when the
store changes, keeps the last good one when the store cannot be read) and
:class:`StoreHealth` (what /readyz and metrics show).

Invariants:

* The hot path never touches storage: ``snapshot()`` is a reference read. A refresh
  builds a complete new snapshot from one consistent read and swaps it in; a reader sees
  the old state or the new one, never a mix.
* **Fail static** (issues 9.5, 13.3): a refresh that fails — a damaged page, a permission
  change, an I/O error, PostgreSQL gone — keeps the last snapshot that loaded, is logged
  at error level (once per ``log_interval``), and is retried (with backoff up to
  ``max_backoff``). State is never replaced by "nothing revoked".
* Versions only grow. ``trust`` / ``revocation`` are the store's counters plus an offset
  that jumps past every value already shown when the store's *generation* changes (a
  replaced file, issue 9.12), so validators' caches (keyed by them) never serve a result
  computed on the old state.
* Change detection is the backend's: a cheap ``token`` read each ``poll_interval``
  (SQLite: file identity and counters) and, where the backend has one, a push
  (PostgreSQL ``LISTEN/NOTIFY``) that calls :meth:`LiveState.wake`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from edgerules.errors import RuleError

if TYPE_CHECKING:
    from cryptography import x509

    from edgerules.store.validation import TrustEntry

log = logging.getLogger("edgerules.store")

DEFAULT_LOG_INTERVAL_S = 10.0
DEFAULT_MAX_BACKOFF_S = 5.0


@dataclass(frozen=True)
class RawState:
    """What a backend reads in one consistent snapshot (``Store._load_state``)."""

    token: Any  # the change token this state corresponds to
    generation: Any  # identity of the storage (file inode, database id)
    trust_counter: int
    revocation_counter: int
    hostnames: Mapping[str, tuple[x509.Certificate, ...]]  # uploaded newest first, managed last
    managed_ca: x509.Certificate | None
    managed_key: bytes  # the managed CA's SubjectPublicKeyInfo (DER), b"" without one
    revoked: frozenset[int]  # serials of managed-CA leaves that are revoked
    # validation settings and CRLs (issue 10): per hostname, the trusted CAs as PEM with
    # their profile, allowances and CRL policy, in trust order; hostname profile
    # overrides (profile, allow); every stored CRL (PEM)
    trust_entries: Mapping[str, tuple[TrustEntry, ...]] = field(default_factory=dict)
    host_profiles: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    crl_pems: tuple[str, ...] = ()


@dataclass(frozen=True)
class StateSnapshot:
    """Immutable: what the validators and the proxy read on every request."""

    raw: RawState
    trust_version: int
    revocation_version: int
    loaded_at: float  # time.time() of the read

    @property
    def hostnames(self) -> Mapping[str, tuple[x509.Certificate, ...]]:
        return self.raw.hostnames


@dataclass(frozen=True)
class StoreHealth:
    """Whether the store answers, and how fresh the state in memory is."""

    backend: str
    reachable: bool
    loaded: bool  # a state was loaded at least once
    last_sync: float | None  # time.time() of the last successful read
    last_error: str | None
    outage_since: float | None  # time.time() of the first failure of the current outage
    trust_version: int
    revocation_version: int

    @property
    def last_sync_age(self) -> float | None:
        return None if self.last_sync is None else max(0.0, time.time() - self.last_sync)

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "reachable": self.reachable,
            "loaded": self.loaded,
            "last_sync": self.last_sync,
            "last_sync_age": self.last_sync_age,
            "last_error": self.last_error,
            "outage_since": self.outage_since,
            "trust_version": self.trust_version,
            "revocation_version": self.revocation_version,
        }


class Backend(Protocol):
    backend_name: str

    def _change_token(self) -> Any: ...

    def _load_state(self, previous: RawState | None = None) -> RawState: ...


@dataclass
class _Offsets:
    generation: Any = None
    trust: int = 0
    revocation: int = 0
    seen_trust: int = -1
    seen_revocation: int = -1
    raw_trust: int = -1
    raw_revocation: int = -1


@dataclass
class LiveState:
    """Loads and refreshes :class:`StateSnapshot` for one store.

    ``poll_interval`` > 0: a daemon thread checks the change token that often (and at
    once when :meth:`wake` is called); 0: every :meth:`snapshot` call checks it
    synchronously (tests, tools)."""

    backend: Backend
    poll_interval: float
    log_interval: float = DEFAULT_LOG_INTERVAL_S
    max_backoff: float = DEFAULT_MAX_BACKOFF_S
    on_refresh: Callable[[StateSnapshot], None] | None = None
    _snapshot: StateSnapshot | None = None
    _offsets: _Offsets = field(default_factory=_Offsets)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _wake: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _last_sync: float | None = None
    _last_error: str | None = None
    _outage_since: float | None = None
    _last_logged: float = 0.0
    _failures: int = 0

    # -- reading ----------------------------------------------------------------------

    def snapshot(self) -> StateSnapshot | None:
        """The current state (``None`` if none could ever be loaded). Cheap."""
        if self.poll_interval <= 0:
            self.refresh()
        elif self._thread is None:
            if self._snapshot is None:
                self.refresh(force=True)  # the first caller gets a state, not None
            self.start()
        return self._snapshot

    def require(self) -> StateSnapshot:
        """The current state, loading it now if none was ever loaded; raises
        :class:`StoreError` when it cannot be (a proxy that never loaded state must not
        start)."""
        snap = self.snapshot()
        if snap is None:
            self.refresh(force=True, raise_errors=True)
            snap = self._snapshot
        assert snap is not None
        return snap

    def health(self) -> StoreHealth:
        snap = self._snapshot
        return StoreHealth(
            backend=self.backend.backend_name,
            reachable=self._last_error is None,
            loaded=snap is not None,
            last_sync=self._last_sync,
            last_error=self._last_error,
            outage_since=self._outage_since,
            trust_version=snap.trust_version if snap else 0,
            revocation_version=snap.revocation_version if snap else 0,
        )

    # -- refreshing -------------------------------------------------------------------

    def refresh(self, *, force: bool = False, raise_errors: bool = False) -> bool:
        """Reload if the store changed (always with ``force``). Returns whether a new
        snapshot was swapped in. Errors keep the old snapshot (fail static) and are
        logged; ``raise_errors`` re-raises them as well."""
        with self._lock:
            try:
                old = self._snapshot
                if not force and old is not None:
                    token = self.backend._change_token()
                    if token == old.raw.token:
                        self._synced()
                        return False
                raw = self.backend._load_state(old.raw if old is not None else None)
            except Exception as exc:  # any storage failure: keep what we have
                self._failed(exc)
                if raise_errors:
                    if isinstance(exc, RuleError):
                        raise
                    from edgerules.store.errors import StoreError

                    raise StoreError(f"cannot load the store's state: {exc}") from None
                return False
            snap = self._build(raw)
            self._snapshot = snap
            self._synced()
        if self.on_refresh is not None:
            self.on_refresh(snap)
        return True

    def _build(self, raw: RawState) -> StateSnapshot:
        o = self._offsets
        went_back = raw.trust_counter < o.raw_trust or raw.revocation_counter < o.raw_revocation
        if o.generation is not None and (raw.generation != o.generation or went_back):
            # Another store (a file moved into place, a database restored from a backup):
            # every version moves past what was shown, whatever the new counters say.
            o.trust = o.seen_trust + 1 - raw.trust_counter
            o.revocation = o.seen_revocation + 1 - raw.revocation_counter
        o.generation = raw.generation
        o.raw_trust, o.raw_revocation = raw.trust_counter, raw.revocation_counter
        trust = max(raw.trust_counter + o.trust, o.seen_trust)
        revocation = max(raw.revocation_counter + o.revocation, o.seen_revocation)
        o.seen_trust, o.seen_revocation = trust, revocation
        return StateSnapshot(raw, trust, revocation, time.time())

    def _synced(self) -> None:
        if self._last_error is not None:
            log.warning(
                "store %s readable again after %.1f s: state refreshed",
                self.backend.backend_name,
                time.time() - (self._outage_since or time.time()),
            )
        self._last_sync = time.time()
        self._last_error = None
        self._outage_since = None
        self._failures = 0

    def _failed(self, exc: BaseException) -> None:
        now = time.time()
        first = self._last_error is None
        self._last_error = f"{type(exc).__name__}: {exc}"
        self._failures += 1
        if self._outage_since is None:
            self._outage_since = now
        if first or now - self._last_logged >= self.log_interval:
            self._last_logged = now
            snap = self._snapshot
            if snap is None:
                log.error(
                    "store %s cannot be read (%s); no state was ever loaded: managed-CA "
                    "certificates are treated as revoked until it can be",
                    self.backend.backend_name,
                    self._last_error,
                )
            else:
                log.error(
                    "store %s cannot be read (%s): still enforcing the state loaded at %s "
                    "(trust version %d, revocation version %d); retrying",
                    self.backend.backend_name,
                    self._last_error,
                    time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(snap.loaded_at)),
                    snap.trust_version,
                    snap.revocation_version,
                )

    # -- the background thread -------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._thread is not None or self.poll_interval <= 0 or self._stop.is_set():
                return
            self._thread = threading.Thread(
                target=self._run, name="edgerules-store-sync", daemon=True
            )
            self._thread.start()

    def wake(self) -> None:
        """Check for changes now (a push from the backend, or a local write)."""
        self._wake.set()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def active(self) -> bool:
        """Whether anything has read the state (so local writes should refresh it)."""
        return self._snapshot is not None or self._thread is not None

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.poll_interval <= 0:  # switched to synchronous checks
                with self._lock:
                    self._thread = None
                return
            delay = self.poll_interval
            if self._failures:
                delay = min(self.max_backoff, self.poll_interval * 2 ** min(self._failures, 10))
            woken = self._wake.wait(delay)
            self._wake.clear()
            if self._stop.is_set():
                return
            # A wake-up is a push ("something changed"): reload without first comparing
            # the change token, one round trip fewer on the propagation path.
            self.refresh(force=woken or self._snapshot is None)
