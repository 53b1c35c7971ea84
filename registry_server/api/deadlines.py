"""Deadlines for request-body reads, kept by one periodic check instead of one timer per request.

Under uvloop every ``asyncio.timeout`` creates and closes a libuv timer handle; on the heartbeat path,
where nearly every request carries a small body that has already arrived, that timer was a measurable
share of the request. Here a read registers its task and deadline in a dict, and one checker task,
running only while reads are watched, cancels those past their deadline every ``interval_s``: a body
that never arrives is still refused, at most one interval after its deadline.
"""

from __future__ import annotations

import asyncio


class ReadDeadlines:
    def __init__(self, interval_s: float = 0.25) -> None:
        self._interval_s = interval_s
        self._watched: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._checker: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"ReadDeadlines(watched={len(self._watched)}, interval_s={self._interval_s})"

    def watch(self, task: asyncio.Task[object], timeout_s: float) -> None:
        """Cancel ``task`` if it is still watched ``timeout_s`` from now (give or take one interval)."""
        loop = asyncio.get_running_loop()
        self._watched[task] = loop.time() + timeout_s
        if self._checker is None:
            self._checker = loop.create_task(self._check(), name="registry-read-deadlines")

    def unwatch(self, task: asyncio.Task[object]) -> bool:
        """Stop watching ``task``; ``True`` if it was cancelled here for its deadline."""
        self._watched.pop(task, None)
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    async def _check(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._watched:
                await asyncio.sleep(self._interval_s)
                now = loop.time()
                for task in [t for t, deadline in self._watched.items() if deadline <= now]:
                    del self._watched[task]
                    self._expired.add(task)
                    task.cancel()
        finally:
            self._checker = None
