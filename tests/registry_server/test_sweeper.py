"""The sweeper waits one interval between sweeps, or less when a lease ends sooner."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from registry_server.errors import StoreUnavailableError
from registry_server.metrics import RegistryMetrics
from registry_server.model import InstanceRegistration
from registry_server.registry import Registry
from registry_server.registry_observer import RegistryObservers
from registry_server.settings import Settings
from registry_server.store.base import InstanceStore
from registry_server.store.memory import MemoryStore
from registry_server.sweeper import Sweeper
from tests.support.clock import FakeClock
from tests.support.registry_api import make_api

TTL_MS = 2000


@pytest.fixture
def setup(store: InstanceStore) -> tuple[Registry, Sweeper, FakeClock]:
    clock = FakeClock()
    sweeper = Sweeper(store, clock, 10.0)
    registry = Registry(store, clock, TTL_MS, RegistryObservers(RegistryMetrics(CollectorRegistry()), sweeper))
    return registry, sweeper, clock


async def test_with_no_lease_the_pause_is_what_is_left_of_the_interval(
        setup: tuple[Registry, Sweeper, FakeClock]) -> None:
    registry, sweeper, _clock = setup
    await sweeper.sweep_once(registry)
    assert sweeper.pause_s(0.0) == 10.0
    assert sweeper.pause_s(3.0) == 7.0


async def test_the_next_sweep_comes_when_the_earliest_lease_ends(setup: tuple[Registry, Sweeper, FakeClock]) -> None:
    registry, sweeper, clock = setup
    await registry.register(InstanceRegistration(id="a", name="Svc", host="h", port=1))
    clock.advance(0.5)
    await registry.register(InstanceRegistration(id="b", name="Other", host="h", port=2))
    await sweeper.sweep_once(registry)
    assert sweeper.pause_s(0.0) == pytest.approx(1.5), "a's lease ends 1.5 s from now"
    clock.advance(1.5)
    assert await sweeper.sweep_once(registry) == 1, "a is swept as its lease ends"
    assert sweeper.pause_s(0.0) == pytest.approx(0.5), "then b's, 0.5 s later"
    clock.advance(5.0)
    assert sweeper.pause_s(0.0) == 0.02, "a lease already over: soon, never in a tight loop"


async def test_after_a_failed_sweep_the_next_waits_the_interval(setup: tuple[Registry, Sweeper, FakeClock],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    registry, sweeper, clock = setup
    await registry.register(InstanceRegistration(id="a", name="Svc", host="h", port=1))
    clock.advance(5.0)  # a's lease is over

    async def unavailable(now_ms: int, limit: int) -> list[object]:
        raise StoreUnavailableError("expire", "down")

    monkeypatch.setattr(registry.store, "expire", unavailable)
    assert await sweeper.sweep_once(registry) == 0
    assert sweeper.pause_s(0.0) == 10.0, "no tight retry loop against a store that is down"


async def test_a_lease_registered_after_a_sweep_brings_the_next_sweep_forward(
        setup: tuple[Registry, Sweeper, FakeClock]) -> None:
    registry, sweeper, _clock = setup
    await sweeper.sweep_once(registry)
    assert sweeper.pause_s(0.0) == 10.0, "no lease: the whole interval"
    await registry.register(InstanceRegistration(id="a", name="Svc", host="h", port=1))
    assert sweeper.pause_s(0.0) == pytest.approx(2.0), "the registry announced a lease ending 2 s from now"


async def test_the_app_wires_its_sweeper_to_hear_the_registrations() -> None:
    app, _clock, _metrics = make_api(Settings(instance_ttl_s=2.0, sweep_interval_s=10.0))
    registry: Registry = app.state.registry
    sweeper: Sweeper = app.state.sweeper
    await sweeper.sweep_once(registry)
    assert sweeper.pause_s(0.0) == 10.0
    await registry.register(InstanceRegistration(id="a", name="Svc", host="h", port=1))
    assert sweeper.pause_s(0.0) == pytest.approx(2.0)


async def test_idle_services_are_looked_for_a_quarter_of_the_retention_apart_and_their_series_dropped() -> None:
    store, clock, metrics = MemoryStore(), FakeClock(), RegistryMetrics(CollectorRegistry())
    sweeper = Sweeper(store, clock, 1.0, retention_s=40.0)
    registry = Registry(store, clock, TTL_MS, RegistryObservers(metrics, sweeper))
    await registry.register(InstanceRegistration(id="a", name="Gone", host="h", port=1))
    await registry.deregister("a")
    assert 'service="Gone"' in generate_latest(metrics.registry).decode()
    assert await sweeper.drop_idle_once(registry) == 0  # not idle for the retention yet
    clock.advance(39.9)
    assert await sweeper.drop_idle_once(registry) == 0  # still not
    clock.advance(0.2)
    assert await sweeper.drop_idle_once(registry) == 0  # idle now, but the next look is 10 s after the last
    clock.advance(9.8)
    assert await sweeper.drop_idle_once(registry) == 1
    assert 'service="Gone"' not in generate_latest(metrics.registry).decode()
    assert await store.services(clock.now_ms()) == []
