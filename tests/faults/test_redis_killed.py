"""Fault 1: Redis SIGKILLed for several seconds, then restarted empty.

Meanwhile the registry answers every store-backed request ``503`` with the SPEC error body within 2 s and
never 500, and a client keeps calling its backends through its stale discovery cache. Afterwards every
live backend (a real process with its own ``ServiceRegistryManager``) is registered again, with the same
id, within one heartbeat interval of Redis answering — nobody does anything.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.support.e2e_backends import SERVICE, registered
from tests.support.faults_client import client_for, value
from tests.support.faults_probe import ProbeLog, probe_once
from tests.support.faults_processes import Spawned, metric_total, start_fault_backend, wait_registered
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

HEARTBEAT_MS = 500
OUTAGE_S = 4.0
ANSWER_LIMIT_S = 2.0
MARGIN_S = 0.5


async def test_redis_killed_then_restarted_empty(spawned: Spawned) -> None:
    registry = spawned.registry(ttl=5.0)
    backends = spawned.backends([start_fault_backend(spawned.tmp_path, registry.url, heartbeat_ms=HEARTBEAT_MS)
                                 for _ in range(2)])
    ids_before = sorted(str(inst["id"]) for inst in wait_registered(registry.url, 2))
    probes = ProbeLog()
    async with client_for(registry.url, cache_ttl_ms=200) as (client, _, metrics), aiohttp.ClientSession() as http:
        assert (await client.get(SERVICE, "/whoami")).status == 200

        spawned.redis.kill()
        outage_ends = time.monotonic() + OUTAGE_S
        ports_served = set()
        calls = 0
        while time.monotonic() < outage_ends:  # the outage itself lasts OUTAGE_S; we probe all along
            await probe_once(http, registry.url, probes)
            for _ in range(4):
                resp = await client.get(SERVICE, "/whoami")
                assert resp.status == 200
                ports_served.add(resp.json()["port"])
                calls += 1
        stale = value(metrics, "resilient_client_discovery_total", service=SERVICE, result="stale")

        await asyncio.to_thread(spawned.redis.restart, empty=True)
        back_at = time.monotonic()

        def every_backend_back() -> bool:
            return sorted(str(inst["id"]) for inst in registered(registry.url)) == ids_before

        await asyncio.to_thread(wait_until, every_backend_back, timeout=HEARTBEAT_MS / 1000 + MARGIN_S,
                                interval=0.01, message="every backend registered again")
        back_in = time.monotonic() - back_at
        assert (await client.get(SERVICE, "/whoami")).status == 200

    assert len(probes.answers) >= 2 * 8, "the outage was probed only a few times"
    assert 500 not in probes.statuses()
    assert probes.bad(limit_s=ANSWER_LIMIT_S) == [], probes.bad(limit_s=ANSWER_LIMIT_S)[:5]
    assert ports_served == {backend.port for backend in backends}
    assert stale > 0, "no call went through the stale cache"
    assert metric_total(registry.url, "registry_http_requests_total", status="500") == 0
    print(f"\noutage: {len(probes.answers)} registry answers, slowest {probes.slowest():.3f}s; "
          f"{calls} client calls all 200; every backend back {back_in:.3f}s after Redis answered")
