"""The validation lanes of ``edgerules.proxy.certstate.ValidationPool`` (docs/security.md
row 2), tested directly with stub validators that block on events.

* A chain that verified before goes to the fast lane: a returning client is not queued
  behind a flood of unknown chains.
* Unknown chains wait in the slow lane, taken round-robin per client address: one
  address's tenth queued chain does not run before another address's first.
* A queued validation whose connection gave up (its task was cancelled, or its budget
  ran out) is dropped before it starts: it never occupies a worker.
* Over the budget the answer is "presented, not verified", reason ``TIMED_OUT``.

Deterministic: the stub's validations start and finish when the test says so (threading
events); the only time limits are generous deadlines for things that must happen.
"""

from __future__ import annotations

import asyncio
import threading
import time

from edgerules.proxy.certstate import TIMED_OUT, ValidationPool
from edgerules.tls import ClientAuth

DEADLINE = 10.0  # seconds: liveness only, never a speed measurement


class StubValidator:
    """``validate(chain)`` records that the chain started, then waits for its gate (if
    the test set one) and answers verified (or not, for chains in ``failing``)."""

    def __init__(self) -> None:
        self.started: list[bytes] = []  # first certificate of each chain, in start order
        self.started_event: dict[bytes, threading.Event] = {}
        self.gates: dict[bytes, threading.Event] = {}
        self.failing: set[bytes] = set()
        self._lock = threading.Lock()

    def gate(self, name: bytes) -> threading.Event:
        return self.gates.setdefault(name, threading.Event())

    def has_started(self, name: bytes) -> threading.Event:
        with self._lock:
            return self.started_event.setdefault(name, threading.Event())

    def validate(self, chain, hostname=None):
        name = chain[0]
        with self._lock:
            self.started.append(name)
            self.started_event.setdefault(name, threading.Event()).set()
        gate = self.gates.get(name)
        if gate is not None:
            assert gate.wait(60), f"gate of {name!r} never opened"
        if name in self.failing:
            return ClientAuth(presented=True, failure_reason="unable to get local issuer certificate")
        return ClientAuth(presented=True, verified=True, chain_der=chain)


async def wait_event(event: threading.Event, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not event.is_set():
        assert time.monotonic() < deadline, "timed out waiting for an event"
        await asyncio.sleep(0.005)


def test_a_returning_verified_chain_is_not_queued_behind_a_flood():
    async def main() -> None:
        validator = StubValidator()
        pool = ValidationPool(budget=60, slow_workers=2, fast_workers=1)
        try:
            # The returning client: verified once (slow lane, nothing else running).
            first = await asyncio.wait_for(
                pool.validate(validator, [b"good"], source="10.0.0.1"), DEADLINE
            )
            assert first.verified
            # A flood of unknown chains from one address, each stuck until the test
            # ends: both slow workers busy, the rest queued.
            flood = []
            for i in range(12):
                name = b"crafted-%d" % i
                validator.gate(name)
                validator.failing.add(name)
                flood.append(
                    asyncio.create_task(pool.validate(validator, [name], source="10.6.6.6"))
                )
            await wait_event(validator.has_started(b"crafted-0"))
            await wait_event(validator.has_started(b"crafted-1"))
            # The same chain again (same address as before, or the attacker's: the lane
            # depends on the chain, not on the address): answered while the flood is
            # still stuck (a slow-lane job could not start before a gate opens).
            for source in ("10.0.0.1", "10.6.6.6"):
                again = await asyncio.wait_for(
                    pool.validate(validator, [b"good"], source=source), DEADLINE
                )
                assert again.verified
            assert not any(task.done() for task in flood)
            assert validator.started.count(b"good") == 3
            assert len([n for n in validator.started if n.startswith(b"crafted")]) == 2
            for gate in validator.gates.values():
                gate.set()
            results = await asyncio.wait_for(asyncio.gather(*flood), DEADLINE)
            assert not any(r.verified for r in results)
        finally:
            for gate in validator.gates.values():
                gate.set()
            pool.close()

    asyncio.run(main())


def test_slow_lane_is_round_robin_per_client_address():
    async def main() -> None:
        validator = StubValidator()
        pool = ValidationPool(budget=60, slow_workers=1)  # one worker: a total order
        try:
            validator.gate(b"A0")
            tasks = [
                asyncio.create_task(pool.validate(validator, [b"A%d" % i], source="192.0.2.1"))
                for i in range(10)
            ]
            await wait_event(validator.has_started(b"A0"))  # A1..A9 are queued now
            tasks.append(
                asyncio.create_task(pool.validate(validator, [b"B0"], source="192.0.2.2"))
            )
            for _ in range(5):
                await asyncio.sleep(0)  # B0's task runs: B0 is queued behind A's nine
            validator.gate(b"A0").set()
            results = await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)
            assert all(r.verified for r in results)
            order = [n.decode() for n in validator.started]
            # A0 was running when B0 arrived; A1 was at the head of the line; then the
            # addresses alternate: B0 runs third, long before A's tenth (A9).
            assert order == ["A0", "A1", "B0", "A2", "A3", "A4", "A5", "A6", "A7", "A8", "A9"]
        finally:
            for gate in validator.gates.values():
                gate.set()
            pool.close()

    asyncio.run(main())


def test_a_queued_validation_whose_connection_gave_up_never_starts():
    async def main() -> None:
        validator = StubValidator()
        pool = ValidationPool(budget=60, slow_workers=1)
        try:
            validator.gate(b"running")
            running = asyncio.create_task(pool.validate(validator, [b"running"], source="a"))
            await wait_event(validator.has_started(b"running"))
            # Queued behind it: one connection is evicted (its task cancelled), one
            # validation's budget ends while it waits.
            evicted = asyncio.create_task(pool.validate(validator, [b"evicted"], source="b"))
            for _ in range(5):
                await asyncio.sleep(0)  # queued
            evicted.cancel()
            pool.budget = 0.05
            expired = await asyncio.wait_for(
                pool.validate(validator, [b"expired"], source="c"), DEADLINE
            )
            assert expired.failure_reason == TIMED_OUT
            pool.budget = 60
            later = asyncio.create_task(pool.validate(validator, [b"later"], source="d"))
            validator.gate(b"running").set()
            await asyncio.wait_for(asyncio.gather(running, later), DEADLINE)
            assert evicted.cancelled()
            # The worker went from "running" straight to "later": the two abandoned
            # validations were dropped from the queue without running.
            assert validator.started == [b"running", b"later"]
        finally:
            for gate in validator.gates.values():
                gate.set()
            pool.close()

    asyncio.run(main())


def test_a_validation_over_its_budget_is_timed_out_not_verified():
    async def main() -> None:
        validator = StubValidator()
        pool = ValidationPool(budget=0.05, slow_workers=1)
        try:
            gate = validator.gate(b"slow")
            auth = await asyncio.wait_for(
                pool.validate(validator, [b"slow", b"intermediate"], source="a"), DEADLINE
            )
            assert auth.presented
            assert not auth.verified
            assert auth.failure_reason == TIMED_OUT
            assert auth.chain_der == (b"slow", b"intermediate")
            assert pool.timeouts == 1
            gate.set()
        finally:
            for gate in validator.gates.values():
                gate.set()
            pool.close()

    asyncio.run(main())
