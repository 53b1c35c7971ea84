import asyncio

import pytest
from prometheus_client import CollectorRegistry

from resilient_client import RegistryUnavailableError, client_metrics
from resilient_client._cache import DiscoveryCache
from resilient_client._report import Reporter
from resilient_client.hooks import DiscoveryLookedUp
from tests.support.client_fakes import FakeClock


class Registry:
    def __init__(self) -> None:
        self.calls = 0
        self.down = False
        self.gate: asyncio.Event | None = None

    async def fetch(self, key: str) -> tuple[str, ...]:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise RegistryUnavailableError("down")
        return (f"{key}-{self.calls}",)


def make(ttl: float = 10, max_stale: float = 60) -> tuple[DiscoveryCache[str, tuple[str, ...]], Registry,
                                                           FakeClock, list[str]]:
    registry, clock, results = Registry(), FakeClock(), []
    reporter = Reporter(hooks=[lambda e: results.append(e.result.value) if isinstance(e, DiscoveryLookedUp) else None])
    cache = DiscoveryCache(registry.fetch, ttl_s=ttl, max_stale_s=max_stale, clock=clock, reporter=reporter)
    return cache, registry, clock, results


async def test_the_hit_series_starts_at_the_first_hit_and_counts_every_fresh_lookup() -> None:
    registry = CollectorRegistry()
    clock = FakeClock()
    cache = DiscoveryCache(Registry().fetch, ttl_s=10, max_stale_s=60, clock=clock,
                           reporter=Reporter(client_metrics(registry)))

    def hits() -> float | None:
        return registry.get_sample_value("resilient_client_discovery_total", {"service": "User", "result": "hit"})

    await cache.get("User")
    assert hits() is None  # (no series at 0 before the first hit)
    assert await cache.get("User") == ("User-1",)
    await cache.get("User")
    assert hits() == 2
    clock.advance(10)
    assert await cache.get("User") == ("User-2",)  # no longer fresh: asked again, a miss
    assert hits() == 2


async def test_an_answer_is_served_from_the_cache_while_fresh() -> None:
    cache, registry, clock, results = make(ttl=10)
    assert await cache.get("User") == ("User-1",)
    clock.advance(9.9)
    assert await cache.get("User") == ("User-1",)
    assert registry.calls == 1
    assert results == ["miss", "hit"]


async def test_an_expired_answer_is_fetched_again() -> None:
    cache, _registry, clock, results = make(ttl=10)
    await cache.get("User")
    clock.advance(10)
    assert await cache.get("User") == ("User-2",)
    assert results == ["miss", "miss"]


async def test_concurrent_misses_share_one_registry_request() -> None:
    cache, registry, _, results = make()
    registry.gate = asyncio.Event()
    waiters = [asyncio.create_task(cache.get("User")) for _ in range(20)]
    await asyncio.sleep(0)
    registry.gate.set()
    assert set(await asyncio.gather(*waiters)) == {("User-1",)}
    assert registry.calls == 1
    assert results == ["miss"] * 20


async def test_a_cancelled_waiter_does_not_cancel_the_shared_request() -> None:
    cache, registry, _, _ = make()
    registry.gate = asyncio.Event()
    first = asyncio.create_task(cache.get("User"))
    second = asyncio.create_task(cache.get("User"))
    await asyncio.sleep(0)
    first.cancel()
    registry.gate.set()
    assert await second == ("User-1",)
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_the_last_answer_is_served_stale_when_the_registry_cannot_be_reached() -> None:
    cache, registry, clock, results = make(ttl=10, max_stale=60)
    await cache.get("User")
    registry.down = True
    clock.advance(30)
    assert await cache.get("User") == ("User-1",)
    assert results == ["miss", "stale"]


async def test_after_a_failed_refresh_stale_is_served_without_asking_again_for_a_moment() -> None:
    cache, registry, clock, _results = make(ttl=10, max_stale=60)
    await cache.get("User")
    registry.down = True
    clock.advance(11)
    await cache.get("User")
    calls = registry.calls
    clock.advance(0.5)
    assert await cache.get("User") == ("User-1",)
    assert registry.calls == calls
    clock.advance(1)
    await cache.get("User")
    assert registry.calls == calls + 1


async def test_an_answer_older_than_the_max_stale_age_is_not_served() -> None:
    cache, registry, clock, results = make(ttl=10, max_stale=60)
    await cache.get("User")
    registry.down = True
    clock.advance(61)
    with pytest.raises(RegistryUnavailableError):
        await cache.get("User")
    assert results == ["miss", "error"]


async def test_nothing_cached_and_no_registry_is_an_error() -> None:
    cache, registry, _, results = make()
    registry.down = True
    with pytest.raises(RegistryUnavailableError):
        await cache.get("User")
    assert results == ["error"]


async def test_keys_are_cached_separately() -> None:
    cache, _registry, _, _ = make()
    assert await cache.get("User") == ("User-1",)
    assert await cache.get("Auth") == ("Auth-2",)


async def test_a_watched_entry_stays_fresh_past_the_ttl_until_unwatched() -> None:
    cache, registry, clock, results = make(ttl=10)
    cache.put("User", ("pushed",), watched=True)
    clock.advance(100)
    assert await cache.get("User") == ("pushed",)
    cache.unwatch("User")
    assert await cache.get("User") == ("User-1",)
    assert (registry.calls, results) == (1, ["hit", "miss"])


async def test_a_value_the_protected_hook_names_is_reported_as_protected() -> None:
    registry, results = Registry(), []
    reporter = Reporter(hooks=[lambda e: results.append(e.result.value) if isinstance(e, DiscoveryLookedUp) else None])
    cache = DiscoveryCache(registry.fetch, ttl_s=10, max_stale_s=60, clock=FakeClock(), reporter=reporter,
                           protected=lambda value: value == ("kept",))
    cache.put("User", ("kept",))
    assert await cache.get("User") == ("kept",)
    assert results == ["protected"]


async def test_fresh_answers_at_once_while_fresh_and_leaves_every_other_case_to_get() -> None:
    cache, registry, clock, results = make(ttl=10)
    assert cache.fresh("User") is None  # nothing cached
    await cache.get("User")
    assert cache.fresh("User") == ("User-1",)
    clock.advance(10)
    assert cache.fresh("User") is None  # aged out: neither served nor reported
    assert (registry.calls, results) == (1, ["miss", "hit"])
