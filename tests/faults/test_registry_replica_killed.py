"""Fault 3: one of two registry replicas serving one Redis is SIGKILLed.

Clients whose ``SERVICE_REGISTRY_URL`` lists both replicas keep heartbeating and discovering with zero
failed heartbeats — backends as real processes (read from their ``/metrics``) and a manager in the test
process (its own ``CollectorRegistry``) — and nothing is lost: every instance stays listed, none expires.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.e2e_backends import SERVICE, registered
from tests.support.faults_client import client_for, value
from tests.support.faults_processes import Spawned, metric_total, start_fault_backend, wait_registered
from tests.support.polling import async_wait_until

pytestmark = pytest.mark.integration

HEARTBEAT_MS = 300
TTL_S = 2.0
AFTER_KILL_S = 2 * TTL_S  # long enough for any lease that was not renewed to expire


async def test_a_registry_replica_killed_costs_no_heartbeat_and_loses_nothing(spawned: Spawned) -> None:
    first = spawned.registry(ttl=TTL_S, name="replica-a")
    second = spawned.registry(ttl=TTL_S, name="replica-b")
    both = [first.url, second.url]
    backends = spawned.backends([start_fault_backend(spawned.tmp_path, both, heartbeat_ms=HEARTBEAT_MS)
                                 for _ in range(2)])
    wait_registered(second.url, 2)
    async with client_for(both, cache_ttl_ms=100, heartbeat_ms=HEARTBEAT_MS) as (client, manager, metrics):
        own_id = await manager.register("Prober", 9, host="127.0.0.1")
        assert own_id is not None

        async def beats_ok() -> float:
            return value(metrics, "resilient_client_heartbeats_total", service="Prober", outcome="ok")

        async def heartbeating() -> bool:
            return await beats_ok() >= 1

        await async_wait_until(heartbeating, message="heartbeats through the first replica")
        assert metric_total(first.url, "registry_heartbeats_total", service=SERVICE) > 0
        first.kill()
        killed_at = time.monotonic()
        ok_at_kill = await beats_ok()
        instance_ids = {str(inst["id"]) for inst in registered(second.url)}
        calls = discoveries = 0
        while time.monotonic() - killed_at < AFTER_KILL_S:  # the observation window after the kill
            assert {i.id for i in await manager.discover_services(SERVICE)} == instance_ids
            assert [i.id for i in await manager.discover_services("Prober")] == [own_id]
            discoveries += 2
            assert (await client.get(SERVICE, "/whoami")).status == 200
            calls += 1
            await asyncio.sleep(0.05)  # pacing of the load, not a wait for an outcome
        beats_after = await beats_ok() - ok_at_kill
        failed_here = value(metrics, "resilient_client_heartbeats_total", service="Prober", outcome="failed")
        await manager.deregister()

    assert failed_here == 0
    assert beats_after >= AFTER_KILL_S / (HEARTBEAT_MS / 1000) / 2, beats_after  # they kept coming (loaded CI)
    for backend in backends:
        url = f"http://{backend.address}"
        assert metric_total(url, "resilient_client_heartbeats_total", outcome="failed") == 0, backend.address
        assert metric_total(url, "resilient_client_heartbeats_total", outcome="ok") > 0
    assert {str(inst["id"]) for inst in registered(second.url)} == instance_ids
    assert metric_total(second.url, "registry_expirations_total") == 0
    assert metric_total(second.url, "registry_heartbeats_total", service=SERVICE) > 0
    print(f"\nafter the kill: {beats_after:.0f} heartbeats of the test's manager, {discoveries} discoveries, "
          f"{calls} calls, 0 failed heartbeats, 0 expiries")

