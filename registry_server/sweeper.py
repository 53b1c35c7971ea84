"""The expiry sweeper: a background task in every replica, safe however many share one store."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from registry_server.clock import WallClock
from registry_server.errors import StoreError
from registry_server.model import Instance
from registry_server.registry import Registry
from registry_server.registry_observer import RegistryObserver
from registry_server.store.base import InstanceStore

log = logging.getLogger("registry_server.sweeper")
_MIN_PAUSE_S = 0.02
_MAX_RETENTION_CHECK_S = 60.0
"""Services idle for the retention period are looked for at most this long apart (and four times per
period at least), so a dropped name outlives its retention by at most a quarter of it or a minute."""


class Sweeper(RegistryObserver):
    """Calls :meth:`Registry.sweep` every ``interval_s`` seconds until stopped, sooner when a lease ends
    sooner. It hears the leases registered as one of the registry's observers, so it exists before the
    registry it sweeps: that registry is handed to :meth:`start` and :meth:`sweep_once`."""

    def __init__(self, store: InstanceStore, clock: WallClock, interval_s: float, *, batch: int = 1000,
                 retention_s: float | None = None) -> None:
        self._store = store
        self._clock = clock
        self._interval_s = interval_s
        self._batch = batch
        self._retention_ms = None if retention_s is None else round(retention_s * 1000)
        """Services without instances this long are dropped (``None``: never)."""
        self._retention_check_ms = (0 if retention_s is None
                                    else round(min(retention_s / 4, _MAX_RETENTION_CHECK_S) * 1000))
        self._next_retention_ms: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._soonest_ms: int | None = None
        """The earliest lease end registered through this replica since the last sweep began."""
        self._nudge = asyncio.Event()

    def __repr__(self) -> str:
        return f"Sweeper(interval_s={self._interval_s}, running={self._task is not None})"

    def start(self, registry: Registry) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(registry), name="registry-sweeper")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def sweep_once(self, registry: Registry) -> int:
        self._soonest_ms = None  # this sweep sees every lease registered so far
        try:
            removed = await registry.sweep(self._batch)
        except StoreError as exc:
            if not self._failing:
                log.warning("expiry sweep failed, will retry every %.3gs: %s", self._interval_s, exc)
            self._failing = True
            return 0
        if self._failing:
            log.info("expiry sweeps work again")
        self._failing = False
        return len(removed)

    async def drop_idle_once(self, registry: Registry) -> int:
        """Drop the services idle for the retention period, if it is time to look; how many went."""
        now = self._clock.now_ms()
        if self._retention_ms is None or (self._next_retention_ms is not None and now < self._next_retention_ms):
            return 0
        self._next_retention_ms = now + self._retention_check_ms
        try:
            return len(await registry.drop_idle(self._retention_ms))
        except StoreError as exc:
            log.warning("dropping idle services failed, will retry: %s", exc)
            return 0

    def registered(self, instance: Instance, created: bool) -> None:
        """A lease ending at ``expires_at_ms`` was registered: sweep by then if that is sooner than planned."""
        at_ms = instance.expires_at_ms
        if self._soonest_ms is None or at_ms < self._soonest_ms:
            self._soonest_ms = at_ms
            self._nudge.set()

    async def _run(self, registry: Registry) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.sweep_once(registry)
            await self.drop_idle_once(registry)
            while True:  # until the pause is over; a lease registered meanwhile may shorten it
                self._nudge.clear()
                try:
                    async with asyncio.timeout(self.pause_s(loop.time() - started)):
                        await self._nudge.wait()
                except TimeoutError:
                    break

    def pause_s(self, took_s: float) -> float:
        """Until the next sweep, ``took_s`` after the last one began: the interval, or less when a lease
        ends sooner (the earliest the last sweep left, or one registered since). A dead instance is then
        removed as its lease runs out, not up to one interval later, and a mass expiry is swept from its
        first moment; never sooner than ``_MIN_PAUSE_S`` after the last sweep."""
        pause = max(0.0, self._interval_s - took_s)
        if self._failing:
            return pause  # the store failed: retry at the interval, whatever the leases say
        ends = [ms for ms in (self._store.next_expiry_ms, self._soonest_ms) if ms is not None]
        if ends:
            until_s = (min(ends) - self._clock.now_ms()) / 1000
            pause = min(pause, max(_MIN_PAUSE_S, until_s))
        return pause
