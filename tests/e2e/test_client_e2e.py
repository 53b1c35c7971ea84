"""The resilient client against a real registry process, a real Redis and three real backend processes."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from resilient_client import (
    BackoffConfig,
    ClientConfig,
    ResilientClient,
    ServiceRegistryManager,
    ServiceUnavailableError,
)
from tests.support.e2e_backends import HEARTBEAT_S, SERVICE, Backend, registered
from tests.support.polling import async_wait_until, wait_until
from tests.support.processes import RegistryProcess
from tests.support.store_backend import StoreBackend

pytestmark = pytest.mark.integration

# What these exercise is the client's failover and error rules, not the store: one store kind suffices
# (the store-dependent behaviours — spreading, breakers, re-registration, watching — run on both).
ON_ONE_REDIS = pytest.mark.parametrize("store_backend", ["redis"], indirect=True)

CONFIG = ClientConfig(attempt_timeout_s=2.0, total_timeout_s=5.0, max_passes=2,
                      backoff=BackoffConfig(base_s=0.02, max_s=0.1))


@contextlib.asynccontextmanager
async def client_for(registry: RegistryProcess, *, cache_ttl_ms: float = 30_000,
                     ) -> AsyncIterator[tuple[ResilientClient, CollectorRegistry]]:
    metrics = CollectorRegistry()
    manager = ServiceRegistryManager(registry_url=registry.url, cache_ttl=cache_ttl_ms, metrics_registry=metrics)
    client = ResilientClient(manager, config=CONFIG, metrics_registry=metrics)
    try:
        yield client, metrics
    finally:
        await client.close()
        await manager.close()


def value(metrics: CollectorRegistry, name: str, **labels: str) -> float:
    return metrics.get_sample_value(name, labels) or 0.0


async def test_round_robin_spreads_thirty_calls_exactly_ten_ten_ten(registry: RegistryProcess,
                                                                     backends: list[Backend]) -> None:
    async with client_for(registry) as (client, _):
        ports = [(await client.get(SERVICE, "/whoami")).json()["port"] for _ in range(30)]
    assert Counter(ports) == {backend.port: 10 for backend in backends}


async def test_a_backend_killed_mid_run_costs_no_call_and_its_breaker_opens(registry: RegistryProcess,
                                                                            backends: list[Backend]) -> None:
    victim = backends[0]
    async with client_for(registry) as (client, metrics):
        statuses = []
        for call in range(60):
            if call == 15:
                victim.process.kill()
            statuses.append((await client.get(SERVICE, "/whoami")).status)
        assert statuses == [200] * 60
        assert value(metrics, "resilient_client_requests_total", service=SERVICE, outcome="success") == 60
        assert value(metrics, "resilient_client_failovers_total", service=SERVICE) >= 5
        assert value(metrics, "resilient_client_circuit_breaker_state", service=SERVICE,
                     instance=victim.address) == 2
        assert value(metrics, "resilient_client_circuit_breaker_transitions_total", service=SERVICE,
                     instance=victim.address, state="open") == 1
        for survivor in backends[1:]:
            assert value(metrics, "resilient_client_circuit_breaker_state", service=SERVICE,
                         instance=survivor.address) == 0


@ON_ONE_REDIS
async def test_all_backends_down_raises_service_unavailable_naming_the_service(
        registry: RegistryProcess, backends: list[Backend]) -> None:
    async with client_for(registry) as (client, metrics):
        assert (await client.get(SERVICE, "/whoami")).status == 200
        for backend in backends:
            backend.process.kill()
        with pytest.raises(ServiceUnavailableError, match=SERVICE) as info:
            await client.get(SERVICE, "/whoami")
        assert info.value.service == SERVICE
        assert info.value.last_error is not None
        assert value(metrics, "resilient_client_requests_total", service=SERVICE, outcome="failure") == 1


async def test_after_redis_is_flushed_every_backend_re_registers_within_one_heartbeat_interval(
        store_backend: StoreBackend, registry: RegistryProcess, backends: list[Backend]) -> None:
    ids_before = sorted(str(inst["id"]) for inst in registered(registry.url))
    store_backend.flushall()
    wait_until(lambda: len(registered(registry.url)) == 3, timeout=HEARTBEAT_S + 0.5, interval=0.01,
               message="every backend registered again")
    assert sorted(str(inst["id"]) for inst in registered(registry.url)) == ids_before


@ON_ONE_REDIS
async def test_with_the_registry_stopped_discovery_serves_the_stale_cache(registry: RegistryProcess,
                                                                          backends: list[Backend]) -> None:
    async with client_for(registry, cache_ttl_ms=50) as (client, metrics):
        assert (await client.get(SERVICE, "/whoami")).status == 200
        registry.stop()

        async def a_call_was_served_stale() -> bool:
            assert (await client.get(SERVICE, "/whoami")).status == 200
            return value(metrics, "resilient_client_discovery_total", service=SERVICE, result="stale") > 0

        await async_wait_until(a_call_was_served_stale, message="a call served from the stale cache")
        ports = {(await client.get(SERVICE, "/whoami")).json()["port"] for _ in range(6)}
        assert ports == {backend.port for backend in backends}


async def test_a_post_answered_503_is_not_repeated_on_another_instance(
        steady_backends: tuple[RegistryProcess, list[Backend]]) -> None:
    registry, backends = steady_backends
    before = sum(b.hits().get("POST unavailable", 0) for b in backends)
    async with client_for(registry) as (client, _):
        resp = await client.post(SERVICE, "/unavailable", json={"order": 1})
        assert resp.status == 503
        assert sum(b.hits().get("POST unavailable", 0) for b in backends) - before == 1


async def test_an_idempotent_post_answered_503_fails_over_to_every_instance(
        steady_backends: tuple[RegistryProcess, list[Backend]]) -> None:
    registry, backends = steady_backends
    before = [b.hits().get("POST unavailable", 0) for b in backends]
    async with client_for(registry) as (client, metrics):
        resp = await client.post(SERVICE, "/unavailable", json={"order": 1}, idempotent=True)
        assert resp.status == 503
        after = [b.hits().get("POST unavailable", 0) for b in backends]
        assert [now - then for now, then in zip(after, before, strict=True)] == [CONFIG.max_passes] * 3
        assert value(metrics, "resilient_client_retries_total", service=SERVICE) == 1


async def test_a_get_answered_503_everywhere_returns_the_last_503(
        steady_backends: tuple[RegistryProcess, list[Backend]]) -> None:
    registry, _backends = steady_backends
    async with client_for(registry) as (client, _):
        resp = await client.get(SERVICE, "/unavailable")
        assert (resp.status, resp.json()) == (503, {"error": "busy"})

