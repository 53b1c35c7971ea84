"""The expiry sweeper: a background task in every replica, safe however many share one store."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from registry_server.errors import StoreError
from registry_server.registry import Registry

log = logging.getLogger("registry_server.sweeper")


class Sweeper:
    """Calls :meth:`Registry.sweep` every ``interval_s`` seconds until stopped."""

    def __init__(self, registry: Registry, interval_s: float, *, batch: int = 1000) -> None:
        self._registry = registry
        self._interval_s = interval_s
        self._batch = batch
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def __repr__(self) -> str:
        return f"Sweeper(interval_s={self._interval_s}, running={self._task is not None})"

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="registry-sweeper")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def sweep_once(self) -> int:
        try:
            removed = await self._registry.sweep(self._batch)
        except StoreError as exc:
            if not self._failing:
                log.warning("expiry sweep failed, will retry every %.3gs: %s", self._interval_s, exc)
            self._failing = True
            return 0
        if self._failing:
            log.info("expiry sweeps work again")
        self._failing = False
        return len(removed)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.sweep_once()
            await asyncio.sleep(max(0.0, self._interval_s - (loop.time() - started)))
