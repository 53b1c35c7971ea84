"""Deadlines on the store's calls that a stopped loop does not run out.

A replica's event loop stops now and then: a garbage collection, a CPU limit's throttling. A reply that
comes meanwhile waits unread, and when the loop resumes it runs the timers that fell due first (asyncio
before the callbacks of the I/O it has just polled, uvloop before polling): a deadline that passed during
the stop would give up a call that Redis had answered, and the replica would take itself for one whose
store is unreachable (``503``, expiry protection on, leases extended for an outage that never was). So a
deadline's timer that fires late gives back the time it was late, up to a bound: a store that does not
answer still fails its calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

STALL_S = 0.05
"""How late a deadline's timer may fire before the loop counts as having been stopped past it."""


class LoopDeadline:
    """Calls ``expire()`` at ``at`` (loop time), unless the loop runs more than :data:`STALL_S` late past
    it: then it waits again as long as it was late, ``spare_s`` in all at most."""

    __slots__ = ("_expire", "_handle", "_loop", "_spare_s")

    def __init__(self, loop: asyncio.AbstractEventLoop, at: float, spare_s: float,
                 expire: Callable[[], object]) -> None:
        self._loop = loop
        self._expire = expire
        self._spare_s = spare_s
        self._handle = loop.call_at(at, self._due, at)

    def __repr__(self) -> str:
        return f"LoopDeadline(when={self._handle.when()}, spare_s={self._spare_s})"

    def _due(self, at: float) -> None:
        now = self._loop.time()
        late_s = now - at
        more_s = min(late_s, self._spare_s)
        if late_s > STALL_S and more_s > 0:
            self._spare_s -= more_s
            self._handle = self._loop.call_at(now + more_s, self._due, now + more_s)
            return
        self._expire()

    def cancel(self) -> None:
        self._handle.cancel()
