"""Waiting for a protocol's next event with a timeout, without a timer per wait.

Owns: ``Waiter``, the one suspension point of a connection's coroutine on its protocol
(client TLS connection or upstream connection): ``await wait(timeout)`` (a future) until
``wake()`` (data, EOF, loss) or the timeout (``TimeoutError``); and ``WriteFlow``, the
write flow control (pause/resume, waiting for a drain) both protocols share.

Why not ``asyncio.timeout()`` / ``call_later`` per wait: a keep-alive request waits
twice (for the client's next request and for the origin's answer), and arming and
cancelling a timer for each wait was a measurable share of a request (issue 14: heap
pushes and comparisons on asyncio's loop). Here a wait only records its deadline; each
waiter is registered in at most one *slot* of a per-loop table of shared timers, and
when the slot fires before the waiter's current deadline the waiter moves to a later
slot. Deadlines mostly move later (the next request's), so a busy connection moves
about once per timeout period. A slot is a multiple of a width that grows with the
timeout (a power of two, from 1/64 s up to 1 s; at most 1/8 of the timeout): all the
idle connections waiting for their next request share one loop timer per second of
deadlines instead of holding one each (issue 14: idle memory — a timer handle was
≈ 0.5 KiB of Python objects per connection, plus libuv's).

Invariants: a wait never ends before its deadline (minus the loop's clock resolution)
unless woken, and times out at most one slot width (≤ 1/8 of its timeout, ≤ 1 s) after
it; a woken or finished wait leaves nothing that can fail a later wait; ``close()``
takes the waiter out of its slot.
"""

from __future__ import annotations

import asyncio
import math
import weakref

__all__ = ["Waiter"]

_MIN_WIDTH = 1 / 64
_MAX_WIDTH = 1.0


def _slot(deadline: float, timeout: float) -> float:
    """The shared timer a wait of ``timeout`` ending at ``deadline`` is registered in:
    the first multiple of the width at or after the deadline."""
    width = timeout / 8
    if width >= _MAX_WIDTH:
        width = _MAX_WIDTH
    elif width <= _MIN_WIDTH:
        width = _MIN_WIDTH
    else:
        width = 2.0 ** math.floor(math.log2(width))
    at = math.ceil(deadline / width) * width
    return at if at >= deadline else at + width


class _Slots:
    """One loop's shared timers: slot time -> the waiters registered there (in
    insertion order); one loop timer per slot in use."""

    __slots__ = ("__weakref__", "slots")

    def __init__(self) -> None:
        # (no reference to the loop: it keys this table in a WeakKeyDictionary)
        self.slots: dict[float, dict[Waiter, None]] = {}

    def add(self, loop: asyncio.AbstractEventLoop, waiter: Waiter, at: float) -> None:
        slot = self.slots.get(at)
        if slot is None:
            slot = self.slots[at] = {}
            loop.call_at(at, self._fire, at)
        slot[waiter] = None

    def remove(self, waiter: Waiter, at: float) -> None:
        slot = self.slots.get(at)
        if slot is not None:
            slot.pop(waiter, None)  # (an emptied slot's timer still fires, finding no one)

    def _fire(self, at: float) -> None:
        slot = self.slots.pop(at, None)
        if slot:
            for waiter in slot:
                waiter._fire()


_BY_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Slots] = weakref.WeakKeyDictionary()


def _slots_of(loop: asyncio.AbstractEventLoop) -> _Slots:
    slots = _BY_LOOP.get(loop)
    if slots is None:
        slots = _BY_LOOP[loop] = _Slots()
    return slots


class Waiter:
    __slots__ = ("_deadline", "_future", "_loop", "_slot_at", "_slots")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: _Slots | None = None
        self._future: asyncio.Future[None] | None = None
        self._deadline: float | None = None
        self._slot_at: float | None = None  # the slot this waiter is registered in

    def wait(self, timeout: float) -> asyncio.Future[None]:
        """A future to await: done at ``wake()``, failed with ``TimeoutError`` at the
        deadline. A plain method rather than a coroutine: a connection waiting for its
        next request holds no frame here (issue 14: idle memory, and one coroutine less
        per wait)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
            self._slots = _slots_of(loop)
        deadline = loop.time() + timeout
        self._deadline = deadline
        at = self._slot_at
        if at is None or at > deadline:
            new = _slot(deadline, timeout)
            if new != at:
                slots = self._slots
                assert slots is not None
                if at is not None:
                    slots.remove(self, at)
                slots.add(loop, self, new)
                self._slot_at = new
        future = self._future = loop.create_future()
        return future

    def wake(self) -> None:
        future = self._future
        if future is not None:
            self._future = self._deadline = None
            if not future.done():
                future.set_result(None)

    def _fire(self) -> None:
        """Called by this waiter's slot (it has left it)."""
        self._slot_at = None
        deadline = self._deadline
        future = self._future
        if deadline is None or future is None or future.done():
            # nobody waits (a cancelled wait leaves its future done): nothing to re-arm
            self._future = self._deadline = None
            return
        loop = self._loop
        assert loop is not None and self._slots is not None
        now = loop.time()
        if now + 0.001 >= deadline:
            self._future = self._deadline = None
            future.set_exception(TimeoutError())
            return
        at = self._slot_at = _slot(deadline, deadline - now)
        self._slots.add(loop, self, at)

    def close(self) -> None:
        at = self._slot_at
        if at is not None and self._slots is not None:
            self._slots.remove(self, at)
            self._slot_at = None
        self.wake()


class WriteFlow(asyncio.Protocol):
    """Write flow control shared by the proxy's protocols (the client's TLS connection and
    the upstream connection): ``pause_writing``/``resume_writing`` from the transport, and
    ``_wait_drained(timeout)`` for the one writer that waits for the buffer to fall under
    its mark. Subclasses declare the ``_drain_waiter`` and ``_write_paused`` slots and
    initialise them to ``None`` and ``False``.

    Invariants: at most one drain waiter at a time; it ends with ``None`` on
    ``resume_writing``, ``TimeoutError`` after its timeout, ``ConnectionResetError``
    when the connection is lost (``_fail_drain``)."""

    __slots__ = ()
    _drain_waiter: asyncio.Future[None] | None
    _write_paused: bool

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail_drain(self, message: str) -> None:
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError(message))

    async def _wait_drained(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        waiter = self._drain_waiter = loop.create_future()
        handle = loop.call_later(timeout, _drain_timed_out, waiter)
        try:
            await waiter
        finally:
            handle.cancel()
            self._drain_waiter = None


def _drain_timed_out(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
