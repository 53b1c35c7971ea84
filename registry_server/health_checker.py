"""Active health checks: every replica runs a checker, and the store hands each due check to one of them.

The schedule lives in the store (:meth:`InstanceStore.claim_health_checks`): a replica claims the checks
that are due, holds them while it runs them, and books each instance's next check one interval after this
one began. However many replicas share the store, each instance is checked about once per interval; a
replica that dies mid-check leaves its claims to fall due again when their hold ends.

A check costs the replica its share of a claim, the request and the write of its outcome: the instances
claimed together are read together, the next due times of the checks done go back with the next claim,
and outcomes recorded together share one write to Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import aiohttp

from registry_server.clock import WallClock
from registry_server.errors import StoreError
from registry_server.model import HealthCheckSpec, Instance, effective_health_check
from registry_server.registry import Registry

log = logging.getLogger("registry_server.health")

BODY_CAP_BYTES = 4096
"""The most of a health answer's body read (and dropped): a check never buffers a large answer."""
_OUTPUT_CHARS = 256
_HOLD_MARGIN_MS = 1000


@dataclass(frozen=True, slots=True)
class ProbeResult:
    passed: bool
    output: str


class HttpProbe:
    """``GET`` an instance's own health URL: a 2xx answer within the timeout passes, anything else fails.

    The URL is built from the instance's own scheme, host, port and health endpoint, nothing else; no
    redirect is followed (a 3xx fails), and at most :data:`BODY_CAP_BYTES` of the body are read."""

    def __init__(self, *, body_cap: int = BODY_CAP_BYTES) -> None:
        self._body_cap = body_cap
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"HttpProbe(body_cap={self._body_cap})"

    async def __call__(self, instance: Instance, timeout_s: float) -> ProbeResult:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), auto_decompress=False,
                headers={"User-Agent": "service-registry-health-check"})
        url = instance.url + instance.health_endpoint
        try:
            async with asyncio.timeout(timeout_s), self._session.get(url, allow_redirects=False) as answer:
                body = await answer.content.read(self._body_cap)
                passed = 200 <= answer.status < 300
                text = body.decode("utf-8", "replace").strip()
                output = f"HTTP {answer.status}" + (f": {text}" if text and not passed else "")
                return ProbeResult(passed, output[:_OUTPUT_CHARS])
        except TimeoutError:
            return ProbeResult(False, f"no answer within {timeout_s:g}s")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return ProbeResult(False, (f"{type(exc).__name__}: {exc}")[:_OUTPUT_CHARS])

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class HealthChecker:
    """Claims the due checks every ``tick_s``, at most ``per_tick`` at a time, and runs at most ``concurrency``
    at once. Small, frequent claims keep the checks from arriving in bursts that heartbeats queue behind:
    one replica claims up to ``per_tick / tick_s`` checks per second (320 by default)."""

    def __init__(self, clock: WallClock, *, probe: HttpProbe | None = None, concurrency: int = 64,
                 per_tick: int = 32, tick_s: float = 0.1) -> None:
        self._clock = clock
        self._probe = probe or HttpProbe()
        self._concurrency = concurrency
        self._per_tick = per_tick
        self._tick_s = tick_s
        self._running: set[asyncio.Task[None]] = set()
        self._done: list[tuple[str, str, int]] = []
        """Checks done since the last claim, with their next due time: rescheduled by the next claim."""
        self._task: asyncio.Task[None] | None = None
        self._registry: Registry | None = None
        self._failing = False

    def __repr__(self) -> str:
        return f"HealthChecker(concurrency={self._concurrency}, running={len(self._running)})"

    def start(self, registry: Registry) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(registry), name="registry-health-checker")

    async def stop(self) -> None:
        task, self._task = self._task, None
        tasks = [*([task] if task is not None else []), *self._running]
        for running in tasks:
            running.cancel()
        for running in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await running
        if self._done and self._registry is not None:  # else they fall due at the end of their hold
            with contextlib.suppress(StoreError):
                await self._registry.store.claim_health_checks(self._clock.now_ms(), 0, 0, done=self._done)
        self._done = []
        await self._probe.close()

    async def _run(self, registry: Registry) -> None:
        while True:
            await self.start_due(registry)
            await asyncio.sleep(self._tick_s)

    async def start_due(self, registry: Registry) -> list[asyncio.Task[None]]:
        """Claim the checks due now (as many as there is room for) and start them; returns their tasks."""
        self._registry = registry  # where :meth:`stop` hands back the checks done since the last claim
        room = max(0, min(self._per_tick, self._concurrency - len(self._running)))
        if room <= 0 and not self._done:
            return []
        hold_ms = round(registry.health_default.timeout_s * 1000) + _HOLD_MARGIN_MS
        done, self._done = self._done, []
        try:
            due = await registry.store.claim_health_checks(self._clock.now_ms(), hold_ms, room, done=done)
        except StoreError as exc:
            self._done = done + self._done  # the next claim tries again; until then their holds keep them
            if not self._failing:
                log.warning("health checks paused: the store failed: %s", exc)
            self._failing = True
            return []
        try:
            instances = await registry.get_many(due) if due else []
        except StoreError as exc:
            log.warning("%d health checks not run: the store failed: %s", len(due), exc)
            return []  # their claims run out and they fall due again, here or on another replica
        self._failing = False
        started = []
        for (name, instance_id), inst in zip(due, instances, strict=True):
            task = asyncio.create_task(self._check(registry, name, instance_id, inst, hold_ms))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            started.append(task)
        return started

    async def _check(self, registry: Registry, name: str, instance_id: str, inst: Instance | None,
                     hold_ms: int) -> None:
        store = registry.store
        try:
            checks = None if inst is None else effective_health_check(inst.health_check, registry.health_default)
            if inst is None or checks is None:
                await store.unschedule_health_check(name, instance_id)  # gone, or asks for no checks now
                return
            began_ms = self._clock.now_ms()
            if checks.timeout_s * 1000 + _HOLD_MARGIN_MS > hold_ms:  # a longer timeout of its own: hold longer
                await store.reschedule_health_check(name, instance_id,
                                                    began_ms + round(checks.timeout_s * 1000) + _HOLD_MARGIN_MS)
            await self._check_once(registry, inst, checks)
            self._done.append((name, instance_id, began_ms + round(checks.interval_s * 1000)))
        except StoreError as exc:
            # The claim runs out and the check falls due again, here or on another replica.
            log.warning("health check of %s not recorded: %s", instance_id, exc)

    async def _check_once(self, registry: Registry, inst: Instance, checks: HealthCheckSpec) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        result = await self._probe(inst, checks.timeout_s)
        await registry.record_health(inst, result.passed, result.output, checks, loop.time() - began)
