"""The proxy's view of the trust and revocation state, and client-certificate validation
off the event loop.

Owns:

* ``TrustState`` — which validator a hostname (SNI) uses now and the current revocation
  version, as the store holds them in memory (the store refreshes its state within its
  poll interval, 0.25 s by default, or at once when the backend pushes a change). Every
  request compares them with the stamp its connection was judged under (two in-memory
  reads and two comparisons, no I/O), so a revoke, a restore or a hostname change
  committed by any process reaches every open connection within that interval (issue 9
  item 1).
* ``ValidationPool`` — runs ``ClientCertValidator.validate`` in worker threads with a
  per-connection time budget (issue 9 item 2): a crafted chain costs the attacker's
  connection its budget, never the event loop. Two lanes: chains whose earlier
  validation verified (a returning client) go to the *fast* lane, every other chain to
  the *slow* lane (round-robin per client address), so chains that are expensive to
  check can delay only each other.

Invariants:

* Nothing here blocks the event loop on certificate work; store reads on the loop are
  the in-memory counters (``Store.revocation_version``) and one hostname lookup per SNI
  per ``poll_interval``.
* A validation that exceeds its budget yields a ``ClientAuth`` that is presented and
  **not verified** with the reason :data:`TIMED_OUT`; the worker thread finishes it in
  the background (a thread cannot be interrupted) and its result is discarded; a queued
  validation whose connection gave up is cancelled before it starts.
* A store that cannot be read keeps the last state seen (logged at error level); the
  store's own fail-closed revocation policy is the store's.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from edgerules.tls import ClientAuth

__all__ = ["TIMED_OUT", "TrustState", "ValidationPool"]

log = logging.getLogger("edgerules.proxy")

#: ``failure_reason`` of a chain whose validation exceeded the connection's budget (our
#: choice):
#: not an OpenSSL verify string (OpenSSL has no time limit); Workers would show
#: ``FAILED:certificate validation timed out``.
TIMED_OUT = "certificate validation timed out"

_KNOWN_CHAINS = 4096  # verified chains remembered (least recently used forgotten)


class TrustState:
    """Current validator per hostname and revocation version, polled from a store.

    With a store (``store.validator_for_hostname``), a hostname's validator is looked up
    again whenever the store's in-memory trust version moved (the store keeps its state in
    memory and refreshes it within its own poll interval, or at once on a push), so a
    trust change reaches the next request without a delay of our own. With a custom
    ``lookup(sni)`` (embedding, tests) the answer is reused for ``poll_interval`` seconds.
    The store returns the same validator object while its trust version is unchanged, so
    "the validator changed" means "trust changed". ``revocation_version()`` is the store's
    in-memory counter."""

    def __init__(
        self,
        *,
        store: Any = None,
        lookup: Callable[[str], Any] | None = None,
        revocation_version: Callable[[], int] | None = None,
        poll_interval: float = 0.25,
    ) -> None:
        self.store = store
        # keyed by the store's trust version when the lookup is the store's own
        self._trust_version: Callable[[], int] | None = None
        if lookup is None and store is not None:
            lookup = store.validator_for_hostname
            self._trust_version = store.trust_version
        self._lookup = lookup
        if revocation_version is None and store is not None:
            revocation_version = store.revocation_version
        self._revocation_version = revocation_version
        self.poll_interval = poll_interval
        self._validators: dict[str, tuple[float, Any]] = {}
        self._revocation = 0
        self.read_errors = 0

    def validator_for(self, sni: str | None) -> Any:
        """The hostname's validator (mTLS enabled) or None."""
        if not sni or self._lookup is None:
            return None
        hit = self._validators.get(sni)
        if self._trust_version is not None:
            try:
                key: float = self._trust_version()
            except Exception:
                key = -1.0  # state unreadable: ask the lookup (which fails or falls back)
            if hit is not None and hit[0] == key:
                return hit[1]
        else:
            now = time.monotonic()
            if hit is not None and hit[0] > now:
                return hit[1]
            key = now + self.poll_interval
        try:
            validator = self._lookup(sni)
        except Exception:
            if hit is None:
                raise  # nothing to fall back on: the caller fails this connection
            self.read_errors += 1
            log.error("mTLS lookup for %s failed; keeping the last state seen", sni, exc_info=True)
            validator = hit[1]
        if len(self._validators) > 10000:  # SNI values come from clients: bounded
            self._validators.clear()
        self._validators[sni] = (key, validator)
        return validator

    def revocation_version(self) -> int:
        if self._revocation_version is None:
            return 0
        try:
            self._revocation = self._revocation_version()
        except Exception:
            self.read_errors += 1
            log.error("reading the revocation version failed; keeping the last one seen")
        return self._revocation


class _FairQueue:
    """Jobs waiting for a slow-lane worker, served round-robin **per client address**:
    a client flooding the proxy with crafted chains waits behind its own chains, not in
    front of everyone else's."""

    def __init__(self, executor: ThreadPoolExecutor, workers: int) -> None:
        self._executor = executor
        self._workers = workers
        self._running = 0
        self._waiting: collections.OrderedDict[
            str, collections.deque[tuple[asyncio.Future[Any], Callable[[], Any]]]
        ] = collections.OrderedDict()

    def submit(self, source: str, job: Callable[[], Any]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(source, collections.deque()).append((future, job))
        self._dispatch()
        return future

    def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        while self._running < self._workers and self._waiting:
            source, jobs = self._waiting.popitem(last=False)
            future, job = jobs.popleft()
            if jobs:
                self._waiting[source] = jobs  # back of the line
            if future.done():  # its connection gave up (budget, eviction): skip it
                continue
            self._running += 1
            work = loop.run_in_executor(self._executor, job)
            work.add_done_callback(lambda w, f=future: self._finished(w, f))

    def _finished(self, work: asyncio.Future[Any], future: asyncio.Future[Any]) -> None:
        self._running -= 1
        if not future.done():
            if work.cancelled():
                future.cancel()
            elif work.exception() is not None:
                future.set_exception(work.exception())  # type: ignore[arg-type]
            else:
                future.set_result(work.result())
        self._dispatch()


class ValidationPool:
    """Certificate validation in worker threads, with a time budget per validation.

    Lanes: a chain that this validator has already **verified** (a returning client)
    goes to the fast lane; every other chain (new, failed, crafted) to the slow lane,
    which takes jobs round-robin per client address. Whether a chain verified is a fact about the chain, not about caches, and
    forgetting it (the memory is bounded) only sends the chain back to the slow lane, so
    an attacker without a valid certificate can delay only other unknown chains — its
    own first — and each of them for at most its budget."""

    def __init__(self, *, budget: float = 1.0, slow_workers: int = 2, fast_workers: int = 1) -> None:
        self.budget = budget
        # Few threads: validation is mostly Python code, so more threads would not run it
        # faster (the GIL) but would make the event loop wait longer for the GIL after
        # each system call. Two in the slow lane, so that one long validation does not
        # hold up every new client.
        self._slow_executor = ThreadPoolExecutor(
            max_workers=slow_workers, thread_name_prefix="edgerules-verify-slow"
        )
        self._slow = _FairQueue(self._slow_executor, slow_workers)
        self._fast = ThreadPoolExecutor(
            max_workers=fast_workers, thread_name_prefix="edgerules-verify"
        )
        # (id(validator), chain) -> validator (kept alive so that its id stays unique)
        self._verified: collections.OrderedDict[tuple[int, tuple[bytes, ...]], Any] = (
            collections.OrderedDict()
        )
        self.timeouts = 0

    async def validate(
        self,
        validator: Any,
        chain: Sequence[bytes],
        hostname: str | None = None,
        *,
        source: str = "",
    ) -> Any:
        """``validator.validate(chain)`` in a worker thread, within the budget;
        ``source`` (the client address) is the fairness key of the slow lane."""
        chain = tuple(chain)
        if not chain:
            return validator.validate(chain, hostname=hostname)  # nothing to check
        key = (id(validator), chain)
        known = key in self._verified

        def job() -> Any:
            return validator.validate(chain, hostname=hostname)

        if known:
            future = asyncio.get_running_loop().run_in_executor(self._fast, job)
        else:
            future = self._slow.submit(source, job)
        try:
            async with asyncio.timeout(self.budget):
                auth = await future
        except TimeoutError:
            self.timeouts += 1
            log.warning(
                "client certificate validation exceeded its %.2f s budget (%d certificates "
                "from %s); treated as not verified",
                self.budget,
                len(chain),
                source or "?",
            )
            return ClientAuth(
                presented=True,
                failure_reason=TIMED_OUT,
                detail=f"validation did not finish within {self.budget:g} s",
                chain_der=chain,
            )
        if getattr(auth, "verified", False):
            self._verified[key] = validator
            self._verified.move_to_end(key)
            while len(self._verified) > _KNOWN_CHAINS:
                self._verified.popitem(last=False)
        elif known:
            self._verified.pop(key, None)
        return auth

    def close(self) -> None:
        for executor in (self._fast, self._slow_executor):
            executor.shutdown(wait=False, cancel_futures=True)
