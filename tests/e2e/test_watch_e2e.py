"""A watching client learns of changes made through another registry replica: real processes, real Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from resilient_client import ServiceRegistryManager
from tests.support.e2e_backends import SERVICE, start_backend
from tests.support.polling import async_wait_until
from tests.support.processes import RegistryProcess, running_registry
from tests.support.store_backend import StoreBackend

pytestmark = pytest.mark.integration

TTL_S = 1.0
SWEEP_S = 0.1


@pytest.fixture
def replicas(tmp_path: Path, store_backend: StoreBackend) -> Iterator[tuple[RegistryProcess, RegistryProcess]]:
    with running_registry(tmp_path, redis_url=store_backend.url, ttl=TTL_S, sweep=SWEEP_S, name="a") as a, \
            running_registry(tmp_path, redis_url=store_backend.url, ttl=TTL_S, sweep=SWEEP_S, name="b") as b:
        a.wait_healthy()
        b.wait_healthy()
        yield a, b


async def blocking_query_held(http: httpx.AsyncClient, replica: RegistryProcess) -> None:
    async def held() -> bool:
        return 'registry_watchers{kind="blocking"} 1.0' in (await http.get(replica.url + "/metrics")).text

    await async_wait_until(held, timeout=10, message=f"the client's blocking query on {replica.url}")


async def test_a_deregistration_through_replica_a_reaches_a_client_watching_through_b_within_2s(
        replicas: tuple[RegistryProcess, RegistryProcess]) -> None:
    a, b = replicas
    http = httpx.AsyncClient()
    tokens = {}
    for iid, port in (("x-1", 4001), ("x-2", 4002)):
        resp = await http.post(a.url + "/instances", json={"name": "X", "port": port, "host": "127.0.0.1", "id": iid})
        assert resp.status_code == 201, resp.text
        tokens[iid] = resp.json()["lease_token"]
    manager = ServiceRegistryManager(registry_url=b.url, cache_ttl=60_000, metrics_registry=CollectorRegistry())
    try:
        assert [i.id for i in await manager.discover_services("X")] == ["x-1", "x-2"]
        await blocking_query_held(http, b)
        sent = time.monotonic()
        resp = await http.delete(a.url + "/instances/x-1", headers={"X-Lease-Token": tokens["x-1"]})
        assert resp.status_code == 204

        async def gone() -> bool:
            return [i.id for i in await manager.discover_services("X")] == ["x-2"]

        await async_wait_until(gone, timeout=2, interval=0.002, message="the deregistration to reach the client")
        latency = time.monotonic() - sent
        print(f"deregistration through a seen by the client watching b after {latency * 1000:.1f} ms")
        assert latency < 2.0
    finally:
        await manager.close()
        await http.aclose()


async def test_an_expiry_reaches_a_watching_client_within_ttl_plus_sweep_plus_one_second(
        tmp_path: Path, replicas: tuple[RegistryProcess, RegistryProcess]) -> None:
    a, b = replicas
    backend = start_backend(tmp_path, a.url)
    http = httpx.AsyncClient()
    manager = ServiceRegistryManager(registry_url=b.url, cache_ttl=60_000, metrics_registry=CollectorRegistry())
    try:
        async def registered() -> bool:
            manager.discovery.cache.invalidate()
            return len(await manager.discover_services(SERVICE)) == 1

        await async_wait_until(registered, timeout=30, message="the backend registered")
        await blocking_query_held(http, b)
        killed = time.monotonic()
        backend.process.kill()  # SIGKILL: no deregistration, the lease has to run out

        async def expired() -> bool:
            return await manager.discover_services(SERVICE) == []

        await async_wait_until(expired, timeout=TTL_S + SWEEP_S + 1.0, interval=0.005,
                               message="the expiry to reach the client")
        latency = time.monotonic() - killed
        print(f"expiry seen by the client {latency * 1000:.0f} ms after SIGKILL (TTL {TTL_S}s, sweep {SWEEP_S}s)")
        assert latency < TTL_S + SWEEP_S + 1.0
    finally:
        await manager.close()
        await http.aclose()
        backend.process.stop(timeout=5)
