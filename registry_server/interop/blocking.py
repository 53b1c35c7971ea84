"""Blocking queries for the dialects: wait for a change unless the client leaves first."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from starlette.requests import Request

from registry_server.change_hub import ChangeHub


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def wait_unless_gone(request: Request, waiting: Awaitable[object]) -> bool:
    """Await ``waiting``; False when the client disconnected first (its watcher slot is freed at once)."""
    task = asyncio.ensure_future(waiting)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, gone):
            pending.cancel()
    if task.done() and not task.cancelled():
        task.result()  # re-raise a store error
        return True
    return False


async def wait_for_any_change(hub: ChangeHub, index: int, current: Callable[[], Awaitable[int]],
                              timeout_s: float) -> None:
    """Return once ``current()`` differs from ``index`` (re-read on every change event), or on timeout."""
    sub = hub.subscribe(None)  # events queue up from here on, before the first read
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not hub.closing and await current() == index:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await sub.get()
                    while not sub.empty():  # a burst of changes: one re-read
                        sub.get_nowait()
    finally:
        hub.unsubscribe(sub)
