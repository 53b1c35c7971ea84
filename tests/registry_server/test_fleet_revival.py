"""Fleet revival: when no replica served for longer than the gap, the leases live then get a full TTL."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry

from registry_server.errors import StoreUnavailableError
from registry_server.metrics import RegistryMetrics
from registry_server.model import InstanceRegistration
from registry_server.registry import Registry
from registry_server.store.memory import MemoryStore
from tests.support.clock import FakeClock

TTL_MS = 10_000
GAP_MS = 3_000


async def serve(registry: Registry, clock: FakeClock, seconds: int) -> list[str]:
    """Let ``seconds`` pass with a sweep every second, as a serving replica does; the ids it expired."""
    expired = []
    for _ in range(seconds):
        clock.advance(1)
        expired += [gone.id for gone in await registry.sweep()]
    return expired


def replica(store: MemoryStore, clock: FakeClock) -> tuple[Registry, CollectorRegistry]:
    metrics = CollectorRegistry()
    return Registry(store, clock, TTL_MS, RegistryMetrics(metrics), fleet_gap_ms=GAP_MS), metrics


async def test_a_restarted_fleet_extends_the_leases_live_at_its_last_sweep_before_anything_reads() -> None:
    store, clock = MemoryStore(), FakeClock()
    before, _ = replica(store, clock)
    for n in range(3):
        await before.register(InstanceRegistration(id=f"i{n}", name="Auth", host="h", port=1))
    await before.sweep()  # the last mark before the fleet went down
    clock.advance(30)  # three TTLs without any replica
    after, metrics = replica(store, clock)
    found = await after.get("i0")  # the very first operation of the restarted replica
    assert found is not None and found.expires_at_ms == clock.now_ms() + TTL_MS
    assert [i.id for i in (await after.service("Auth")).instances] == ["i0", "i1", "i2"]
    assert await after.sweep() == []
    assert metrics.get_sample_value("registry_lease_extensions_total") == 3
    revival = after.protection.revival
    assert revival is not None and (revival.extended, revival.at_ms) == (3, clock.now_ms())
    # a whole TTL after the revival without a heartbeat: really dead
    assert sorted(await serve(after, clock, TTL_MS // 1000)) == ["i0", "i1", "i2"]


async def test_a_lease_that_ended_before_the_fleet_went_down_still_expires() -> None:
    store, clock = MemoryStore(), FakeClock()
    before, _ = replica(store, clock)
    await before.register(InstanceRegistration(id="dead", name="Auth", host="h", port=1))
    clock.advance(TTL_MS / 1000 + 2)  # its lease ran out while the fleet still served...
    await store.mark_alive(clock.now_ms(), GAP_MS)  # ...which moved the mark, and went down before expiring it
    await before.register(InstanceRegistration(id="live", name="Auth", host="h", port=1))
    clock.advance(30)
    after, _ = replica(store, clock)
    assert await after.get("dead") is None
    assert await after.get("live") is not None
    assert [e.id for e in await after.sweep()] == ["dead"]


async def test_two_replicas_restarting_together_extend_each_lease_once() -> None:
    store, clock = MemoryStore(), FakeClock()
    before, _ = replica(store, clock)
    await before.register(InstanceRegistration(id="i", name="Auth", host="h", port=1))
    await before.sweep()
    clock.advance(30)
    first, first_metrics = replica(store, clock)
    second, second_metrics = replica(store, clock)
    await first.get("i")
    clock.advance(1)
    await second.get("i")
    total = sum(m.get_sample_value("registry_lease_extensions_total") or 0 for m in (first_metrics, second_metrics))
    assert total == 1
    assert (first.protection.revival is None) != (second.protection.revival is None)


async def test_a_serving_fleet_extends_nothing() -> None:
    store, clock = MemoryStore(), FakeClock()
    registry, metrics = replica(store, clock)
    await registry.register(InstanceRegistration(id="i", name="Auth", host="h", port=1))
    assert await serve(registry, clock, 12) == ["i"]
    assert metrics.get_sample_value("registry_lease_extensions_total") == 0
    assert registry.protection.revival is None


async def test_a_replica_that_itself_stalled_checks_the_mark_before_its_next_request(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The memory store's case: its only replica suspended for longer than the gap; the first request
    after it resumes must not find leases that ran out while nobody could hear their heartbeats."""
    store, clock = MemoryStore(), FakeClock()
    registry, _ = replica(store, clock)
    await registry.register(InstanceRegistration(id="i", name="Auth", host="h", port=1))
    clock.advance(30)
    resumed = time.monotonic() + 30
    monkeypatch.setattr(time, "monotonic", lambda: resumed)
    renewed = await registry.heartbeat("i", None)
    assert renewed is not None and renewed.expires_at_ms == clock.now_ms() + TTL_MS


async def test_requests_arriving_while_the_leases_are_extended_wait_for_the_extension() -> None:
    store, clock = MemoryStore(), FakeClock()
    before, _ = replica(store, clock)
    await before.register(InstanceRegistration(id="i", name="Auth", host="h", port=1))
    await before.sweep()
    clock.advance(30)
    release = asyncio.Event()
    extend = store.extend_leases

    async def slow_extend(since_ms: int, until_ms: int) -> int:
        await release.wait()
        return await extend(since_ms, until_ms)

    store.extend_leases = slow_extend  # type: ignore[method-assign]
    after, _ = replica(store, clock)
    first = asyncio.create_task(after.get("i"))
    await asyncio.sleep(0)  # the first request is inside the extension now
    second = asyncio.create_task(after.get("i"))
    await asyncio.sleep(0)
    release.set()
    assert await first is not None
    assert await second is not None, "the second request read before the extension finished"


async def test_a_failed_extension_is_retried_although_the_mark_has_moved_on() -> None:
    store, clock = MemoryStore(), FakeClock()
    before, _ = replica(store, clock)
    await before.register(InstanceRegistration(id="i", name="Auth", host="h", port=1))
    await before.sweep()
    clock.advance(30)
    extend = store.extend_leases
    failures = [StoreUnavailableError("extend", "timed out")]

    async def failing_once(since_ms: int, until_ms: int) -> int:
        if failures:
            raise failures.pop()
        return await extend(since_ms, until_ms)

    store.extend_leases = failing_once  # type: ignore[method-assign]
    after, _ = replica(store, clock)
    with pytest.raises(StoreUnavailableError):
        await after.get("i")
    assert await after.get("i") is not None
