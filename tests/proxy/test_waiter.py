"""``proxy/waiter.py``: waits with a timeout on shared per-loop timer slots."""

from __future__ import annotations

import asyncio
import time

import pytest

from edgerules.proxy import waiter as waiter_mod
from edgerules.proxy.waiter import Waiter, _slot


@pytest.mark.parametrize("timeout", [0.001, 0.05, 0.3, 5.0, 30.0, 3600.0])
def test_a_slot_is_never_before_the_deadline_nor_much_after(timeout):
    for deadline in (0.0, 1.0, 12345.678, 98765.4321 + timeout):
        at = _slot(deadline, timeout)
        assert deadline <= at <= deadline + max(1 / 64, min(1.0, timeout / 8)) + 1e-9


def run(coro):
    return asyncio.run(coro)


def test_a_wait_times_out_not_before_its_deadline():
    async def main():
        w = Waiter()
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            await w.wait(0.2)
        took = time.monotonic() - start
        assert 0.199 <= took < 0.2 + 0.2 / 8 + 0.1
        w.close()

    run(main())


def test_a_woken_wait_leaves_nothing_that_fails_a_later_one():
    async def main():
        loop = asyncio.get_running_loop()
        w = Waiter()
        loop.call_later(0.01, w.wake)
        await w.wait(0.05)  # woken
        await asyncio.sleep(0.1)  # its slot fires meanwhile: no one waits
        loop.call_later(0.1, w.wake)
        await w.wait(0.5)  # woken, not failed by the first wait's slot
        w.close()

    run(main())


def test_a_moved_deadline_is_honoured():
    """A later wait's deadline is later than the slot: the slot moves the waiter on."""
    async def main():
        loop = asyncio.get_running_loop()
        w = Waiter()
        loop.call_later(0.05, w.wake)
        await w.wait(0.1)
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            await w.wait(0.3)
        assert time.monotonic() - start >= 0.299
        w.close()

    run(main())


def test_a_cancelled_wait_then_a_new_one():
    async def main():
        w = Waiter()
        task = asyncio.ensure_future(w.wait(0.05))
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.sleep(0.1)
        with pytest.raises(TimeoutError):
            await w.wait(0.05)
        w.close()

    run(main())


def test_idle_waiters_share_one_loop_timer():
    """A thousand waits of the same timeout started together hold a handful of loop
    timers, not one each (issue 14: idle memory)."""
    async def main():
        loop = asyncio.get_running_loop()
        waiters = [Waiter() for _ in range(1000)]
        futures = [w.wait(30.0) for w in waiters]
        slots = waiter_mod._slots_of(loop).slots
        assert sum(len(s) for s in slots.values()) == 1000
        assert len(slots) <= 2
        for w in waiters:
            w.close()
        assert all(f.done() for f in futures)
        assert sum(len(s) for s in slots.values()) == 0

    run(main())
