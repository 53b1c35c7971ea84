"""The watch loop against an in-process registry: blocking queries keep the discovery cache current."""

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry

from resilient_client import BackoffConfig, ManagerConfig, ServiceRegistryManager, WatchConfig
from resilient_client.hooks import WatchState
from tests.support.client_fake_registry import FakeRegistry
from tests.support.polling import async_wait_until

KEY = ("User", "UP")
METRICS: dict[int, CollectorRegistry] = {}


@pytest.fixture
async def registry() -> AsyncIterator[FakeRegistry]:
    fake = await FakeRegistry().start()
    fake.add("User", 4001, instance_id="User-a")
    fake.add("User", 4002, instance_id="User-b")
    try:
        yield fake
    finally:
        await fake.stop()


def manager_for(url: str, *, cache_ttl_ms: float = 60_000, grace_ms: float = 30_000,
                **watch: object) -> ServiceRegistryManager:
    watch_config = replace(WatchConfig(wait_ms=5_000, retry=BackoffConfig(base_s=0.05, max_s=0.2, jitter=0.5)),
                           **watch)  # type: ignore[arg-type]
    config = ManagerConfig(registry_urls=(url,), cache_ttl_ms=cache_ttl_ms, request_timeout_ms=2_000,
                           empty_grace_ms=grace_ms, watch=watch_config)
    metrics = CollectorRegistry()
    manager = ServiceRegistryManager(config=config, metrics_registry=metrics)
    METRICS[id(manager)] = metrics
    return manager


def metric(manager: ServiceRegistryManager, name: str, **labels: str) -> float:
    return METRICS[id(manager)].get_sample_value(name, labels) or 0.0


async def ids(manager: ServiceRegistryManager) -> list[str]:
    return [inst.id for inst in await manager.discover_services("User")]


async def watching(registry: FakeRegistry) -> None:
    """Wait until a blocking query on User is held open by the registry."""
    await async_wait_until(lambda: _true(registry.held.get("User", 0) > 0), timeout=5,
                           message="a blocking query held open")


async def _true(value: bool) -> bool:
    return value


async def test_a_deregistration_wakes_the_cache_at_once_without_waiting_for_the_ttl(registry: FakeRegistry) -> None:
    async with manager_for(registry.url, cache_ttl_ms=60_000) as manager:
        assert await ids(manager) == ["User-a", "User-b"]
        await watching(registry)
        registry.remove("User-a")
        started = time.monotonic()
        await async_wait_until(lambda: _equals(ids(manager), ["User-b"]), timeout=2,
                               message="the deregistration to reach the cache")
        assert time.monotonic() - started < 1.0
        plain = [seen for seen in registry.requests("GET", "/services/User") if not seen.blocking]
        assert len(plain) == 1, "only the first lookup asked the registry; the rest were cache hits"
        assert metric(manager, "resilient_client_discovery_watching", service="User") == 1


async def _equals(value: object, expected: object) -> bool:
    return await value == expected  # type: ignore[misc, no-any-return]


async def test_blocking_queries_carry_the_last_revision_and_the_status_filter(registry: FakeRegistry) -> None:
    async with manager_for(registry.url) as manager:
        await ids(manager)
        await watching(registry)
        registry.add("User", 4003, instance_id="User-c")
        await async_wait_until(lambda: _equals(ids(manager), ["User-a", "User-b", "User-c"]), timeout=2)
        queries = registry.blocking_queries("User")
        assert [q.query["index"] for q in queries[:2]] == ["2", "3"]
        assert all(q.query["status"] == "UP" and q.query["wait"] == "5000ms" for q in queries)


async def test_a_real_deregistration_of_the_last_instance_empties_the_cache(registry: FakeRegistry) -> None:
    async with manager_for(registry.url) as manager:
        await ids(manager)
        await watching(registry)
        registry.remove("User-a")
        registry.remove("User-b")
        await async_wait_until(lambda: _equals(ids(manager), []), timeout=2, message="an empty cache")
        assert metric(manager, "resilient_client_discovery_protections_total", service="User",
                      outcome="started") == 0


async def test_a_wiped_store_keeps_the_last_instances_for_the_grace_period_and_counts_it(
        registry: FakeRegistry) -> None:
    async with manager_for(registry.url, grace_ms=600) as manager:
        await ids(manager)
        await watching(registry)
        registry.forget_all()  # revision 2 -> 0, no instance: not a deregistration
        await async_wait_until(lambda: _true(metric(manager, "resilient_client_discovery_protections_total",
                                                    service="User", outcome="started") == 1), timeout=2)
        wiped_at = time.monotonic()
        assert await ids(manager) == ["User-a", "User-b"]
        assert metric(manager, "resilient_client_discovery_total", service="User", result="protected") == 1
        await async_wait_until(lambda: _equals(ids(manager), []), timeout=3, message="the grace period to end")
        assert time.monotonic() - wiped_at >= 0.5
        assert metric(manager, "resilient_client_discovery_protections_total", service="User",
                      outcome="emptied") == 1


async def test_instances_registered_again_within_the_grace_period_end_the_protection(
        registry: FakeRegistry) -> None:
    async with manager_for(registry.url, grace_ms=30_000) as manager:
        await ids(manager)
        await watching(registry)
        registry.forget_all()
        await async_wait_until(lambda: _true(manager.discovery.cache.peek(KEY).protected), timeout=2)  # type: ignore[union-attr]
        registry.add("User", 4002, instance_id="User-b")  # re-registered at revision 1, below the old 2
        await async_wait_until(lambda: _equals(ids(manager), ["User-b"]), timeout=2)
        assert metric(manager, "resilient_client_discovery_protections_total", service="User",
                      outcome="recovered") == 1


async def test_protection_also_guards_ttl_polling_when_watching_is_off(registry: FakeRegistry) -> None:
    async with manager_for(registry.url, cache_ttl_ms=50, grace_ms=30_000, enabled=False) as manager:
        await ids(manager)
        registry.forget_all()

        async def served_protected() -> bool:
            found = await ids(manager)
            view = manager.discovery.cache.peek(KEY)
            return view is not None and view.protected and found == ["User-a", "User-b"]

        await async_wait_until(served_protected, timeout=2, message="a TTL poll to read the wiped store")
        assert metric(manager, "resilient_client_discovery_protections_total", service="User",
                      outcome="started") == 1
        assert registry.blocking_queries() == []


async def test_while_blocking_queries_are_refused_the_cache_falls_back_to_ttl_polling_then_resumes_watching(
        registry: FakeRegistry) -> None:
    registry.refuse_blocking = (503, "too_many_watchers")
    registry.retry_after = "1"
    async with manager_for(registry.url, cache_ttl_ms=100, idle_ms=60_000) as manager:
        await ids(manager)
        await async_wait_until(lambda: _true(len(registry.blocking_queries()) >= 2), timeout=5)
        assert manager.discovery.watches.state(KEY) is WatchState.POLLING
        assert metric(manager, "resilient_client_discovery_watching", service="User") == 0
        registry.remove("User-a")  # seen through TTL polling meanwhile
        await async_wait_until(lambda: _equals(ids(manager), ["User-b"]), timeout=2)
        registry.refuse_blocking = None
        await watching(registry)
        registry.remove("User-b")
        await async_wait_until(lambda: _equals(ids(manager), []), timeout=2)
        assert manager.discovery.watches.state(KEY) is WatchState.WATCHING
        assert metric(manager, "resilient_client_discovery_watching", service="User") == 1


async def test_a_retry_after_on_too_many_watchers_spaces_the_retries(registry: FakeRegistry) -> None:
    registry.refuse_blocking = (503, "too_many_watchers")
    registry.retry_after = "1"
    async with manager_for(registry.url) as manager:
        await ids(manager)
        await async_wait_until(lambda: _true(len(registry.blocking_queries()) >= 1), timeout=5)
        started = time.monotonic()
        await async_wait_until(lambda: _true(len(registry.blocking_queries()) >= 2), timeout=5)
        assert time.monotonic() - started >= 0.8


async def test_watching_resumes_after_the_registry_was_unreachable(registry: FakeRegistry) -> None:
    async with manager_for(registry.url, cache_ttl_ms=100, idle_ms=60_000) as manager:
        await ids(manager)
        await watching(registry)
        await registry.stop()
        await async_wait_until(lambda: _true(manager.discovery.watches.state(KEY) is WatchState.POLLING),
                               timeout=5, message="the watch to notice")
        assert await ids(manager) == ["User-a", "User-b"], "served stale meanwhile"
        await registry.start()
        await watching(registry)
        registry.remove("User-a")
        await async_wait_until(lambda: _equals(ids(manager), ["User-b"]), timeout=2)


async def test_a_404_to_blocking_queries_falls_back_to_polling(registry: FakeRegistry) -> None:
    registry.refuse_blocking = (404, "not_found")
    async with manager_for(registry.url, cache_ttl_ms=100, idle_ms=60_000) as manager:
        await ids(manager)
        await async_wait_until(lambda: _true(len(registry.blocking_queries()) >= 2), timeout=5)
        registry.remove("User-a")
        await async_wait_until(lambda: _equals(ids(manager), ["User-b"]), timeout=2)
        assert manager.discovery.watches.state(KEY) is WatchState.POLLING


async def test_a_registry_without_blocking_queries_is_polled_at_the_ttl_without_a_busy_loop(
        registry: FakeRegistry) -> None:
    registry.blocking = False  # ignores index and wait, sends no X-Registry-Index
    async with manager_for(registry.url, cache_ttl_ms=100) as manager:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            await ids(manager)
            await asyncio.sleep(0.02)
        gets = len(registry.requests("GET", "/services/User"))
        assert 5 <= gets <= 25, gets
        assert manager.discovery.watches.state(KEY) is WatchState.POLLING


async def test_a_watch_stops_when_the_service_is_not_looked_up_and_starts_again_on_use(
        registry: FakeRegistry) -> None:
    async with manager_for(registry.url, idle_ms=300) as manager:
        await ids(manager)
        await watching(registry)
        await async_wait_until(lambda: _true(manager.discovery.watches.keys == []), timeout=3,
                               message="the idle watch to stop")
        assert manager.discovery.watches.state(KEY) is WatchState.STOPPED
        assert metric(manager, "resilient_client_discovery_watching", service="User") == 0
        await ids(manager)
        assert manager.discovery.watches.keys == [KEY]


async def test_close_stops_every_watch(registry: FakeRegistry) -> None:
    manager = manager_for(registry.url)
    await ids(manager)
    await watching(registry)
    await manager.close()
    assert manager.discovery.watches.keys == []
    sent = len(registry.blocking_queries())
    registry.remove("User-a")
    await asyncio.sleep(0.1)  # nothing may ask again; there is no outcome to poll for
    assert len(registry.blocking_queries()) == sent
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("watch:")]


async def test_watch_false_sends_no_blocking_query(registry: FakeRegistry) -> None:
    config = ManagerConfig(registry_urls=(registry.url,))
    async with ServiceRegistryManager(config=config, watch=False, metrics_registry=CollectorRegistry()) as manager:
        await ids(manager)
        await ids(manager)
        assert manager.discovery.watches.keys == []
    assert registry.blocking_queries() == []


async def test_at_most_max_services_are_watched(registry: FakeRegistry) -> None:
    registry.add("Auth", 5001)
    async with manager_for(registry.url, max_services=1) as manager:
        await manager.discover_services("User")
        await manager.discover_services("Auth")
        assert manager.discovery.watches.keys == [KEY]


async def test_listing_every_service_is_not_watched(registry: FakeRegistry) -> None:
    async with manager_for(registry.url) as manager:
        assert len(await manager.discover_services()) == 2
        assert manager.discovery.watches.keys == []
