"""Expiry protection: a store outage must not expire the instances whose heartbeats it swallowed.

While the store cannot be reached nothing can be swept. When it answers again, and before any other
operation of this replica touches it, every lease that was still live when the outage began (the last
time this replica reached the store) is extended to a full TTL from now, so each owner gets a whole
lease to heartbeat again. The extension is idempotent, so every replica that saw the outage may run it.
"""

from __future__ import annotations

import asyncio
import logging

from registry_server.clock import WallClock
from registry_server.registry_observer import RegistryObserver
from registry_server.store.base import InstanceStore

log = logging.getLogger("registry_server.expiry_protection")


class ExpiryProtection:
    def __init__(self, store: InstanceStore, clock: WallClock, ttl_ms: int, observer: RegistryObserver) -> None:
        self._store = store
        self._clock = clock
        self._ttl_ms = ttl_ms
        self._observer = observer
        self._attempt: asyncio.Task[None] | None = None
        self.active = False
        self.since_ms = 0
        self.last_ok_ms = clock.now_ms()

    def __repr__(self) -> str:
        return f"ExpiryProtection(active={self.active}, since_ms={self.since_ms})"

    def reached(self) -> None:
        """The store answered."""
        self.last_ok_ms = self._clock.now_ms()

    def unreachable(self) -> None:
        """The store could not be reached: protect the leases it holds from this moment's view."""
        if self.active:
            return
        self.active = True
        self.since_ms = self.last_ok_ms
        self._observer.protection(True)
        log.warning("store unreachable: expiry protection on (sweeping paused; leases live at %d ms will be "
                    "extended when it is back)", self.since_ms)

    async def recover(self) -> None:
        """Extend the protected leases; raises the store's error while it is still unreachable.

        One attempt at a time, shared by every caller that arrives while it runs: concurrent requests
        all get its outcome within one store timeout instead of queueing behind each other's attempts.
        """
        if not self.active:
            return
        attempt = self._attempt
        if attempt is None or attempt.done():
            attempt = self._attempt = asyncio.ensure_future(self._extend())
            attempt.add_done_callback(_retrieve)
        await asyncio.shield(attempt)

    async def _extend(self) -> None:
        until = self._clock.now_ms() + self._ttl_ms
        extended = await self._store.extend_leases(self.since_ms, until)
        if not self.active:
            return
        self.active = False
        self.last_ok_ms = self._clock.now_ms()
        self._observer.protection(False, extended)
        log.info("store reachable again: extended %d leases by the outage; expiry protection off", extended)


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a failed attempt's error as seen: its callers got it (it is the store's usual outage error)."""
    if not task.cancelled():
        task.exception()
