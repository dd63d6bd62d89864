"""Waiting for a protocol's next event with a timeout, without a timer per wait.

Owns: ``Waiter``, the one suspension point of a connection's coroutine on its protocol
(client TLS connection or upstream connection): ``await wait(timeout)`` until ``wake()``
(data, EOF, loss) or the timeout (``TimeoutError``).

Why not ``asyncio.timeout()`` / ``call_later`` per wait: a keep-alive request waits
twice (for the client's next request and for the origin's answer), and arming and
cancelling a timer for each wait was a measurable share of a request (issue 14: heap
pushes and comparisons on asyncio's loop). Here each waiter keeps at most one timer
handle; a wait only records its deadline, and the timer, when it fires before the
current deadline, re-arms itself for it. Deadlines mostly move later (the next
request's), so a busy connection re-arms about once per timeout period.

Invariants: a wait never ends before its deadline (minus the loop's clock resolution)
unless woken; a woken or finished wait leaves no timer that can fail a later wait; the
timer is cancelled by ``close()``.
"""

from __future__ import annotations

import asyncio

__all__ = ["Waiter"]


class Waiter:
    __slots__ = ("_deadline", "_future", "_loop", "_timer", "_timer_at")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._future: asyncio.Future[None] | None = None
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    async def wait(self, timeout: float) -> None:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._deadline = deadline
        if self._timer is None or self._timer_at > deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(deadline, self._fire)
            self._timer_at = deadline
        future = self._future = loop.create_future()
        try:
            await future
        finally:
            self._future = None
            self._deadline = None

    def wake(self) -> None:
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)

    def _fire(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:
            return  # nobody waits: nothing to re-arm until the next wait
        loop = self._loop
        assert loop is not None
        if loop.time() + 0.001 >= deadline:
            future = self._future
            if future is not None and not future.done():
                future.set_exception(TimeoutError())
            return
        self._timer = loop.call_at(deadline, self._fire)
        self._timer_at = deadline

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.wake()
