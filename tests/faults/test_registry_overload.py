"""An overloaded registry refuses what it cannot serve with 503 + Retry-After, the client library honours
it, and no live instance expires; an instance SIGKILLed during the overload still expires, within three
TTLs of its death (the longest delay a refusal gives, plus a TTL) or a TTL, the quiet period and a sweep
after the overload ends, whichever is later.

The overload is made certain rather than large: the registry serves two writes at a time
(``REGISTRY_MAX_IN_FLIGHT=2``) and a fleet of real ``ServiceRegistryManager`` instances registers and
heartbeats together, so that most of each burst is refused.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from resilient_client import ManagerConfig, ServiceRegistryManager
from resilient_client.hooks import RegistrationState
from tests.support.faults_processes import Spawned, metric_total, start_fault_backend, wait_registered
from tests.support.processes import start_registry

pytestmark = pytest.mark.integration

TTL_S = 2.0
SWEEP_S = 0.2
FLEET = 150
HEARTBEAT_MS = 400
QUIET_S = 1.0  # how long a replica serves without refusing before its sweeps stop holding leases


async def _until(condition: object, deadline_s: float, what: str) -> None:
    ends = time.monotonic() + deadline_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < ends, what
        await asyncio.sleep(0.05)  # pacing of the check, not a wait for an outcome


def _listed(url: str) -> dict[str, str]:
    with urllib.request.urlopen(f"{url}/instances", timeout=5) as resp:
        return {str(inst["id"]): str(inst["status"]) for inst in json.loads(resp.read())["instances"]}


async def test_an_overloaded_registry_sheds_with_retry_after_and_no_live_instance_expires(
        spawned: Spawned, tmp_path: Path) -> None:
    registry = start_registry(tmp_path, redis_url=spawned.redis.url, ttl=TTL_S, sweep=SWEEP_S,
                              extra_env={"REGISTRY_MAX_IN_FLIGHT": "2", "REGISTRY_LOG_LEVEL": "info"})
    spawned.add(registry)
    registry.wait_healthy()
    url = registry.url
    victim = spawned.backends([start_fault_backend(tmp_path, url, heartbeat_ms=HEARTBEAT_MS)])[0]
    (victim_doc,) = wait_registered(url, 1)
    victim_id = str(victim_doc["id"])

    config = ManagerConfig(registry_urls=(url,), heartbeat_interval_ms=HEARTBEAT_MS, retry_delay_ms=100,
                           request_timeout_ms=3000)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        fleet = [ServiceRegistryManager(config=config, session=session, metrics=False, watch=False)
                 for _ in range(FLEET)]
        ids = await asyncio.gather(*(manager.register_in_background("Busy", 20_000 + n, host="127.0.0.1")
                                     for n, manager in enumerate(fleet)))
        try:
            await _until(lambda: all(m.registration_state is RegistrationState.REGISTERED for m in fleet), 30,
                         "the fleet never got registered through the refusals")
            refused = metric_total(url, "registry_requests_shed_total")
            assert refused > 0, "the burst was not refused: the test did not overload the registry"
            victim.process.kill()
            killed_at = time.monotonic()
            listed = _listed(url)
            missing = [iid for iid in ids if listed.get(iid) != "UP"]
            assert missing == [], f"{len(missing)} live instances not listed UP"
            assert metric_total(url, "registry_expirations_total") == 0, "a live instance expired"
        finally:
            await asyncio.gather(*(manager.close() for manager in fleet))  # the load stops
    # Its last refused heartbeat's lease covers the delay it was given (at most two TTLs) plus a TTL; the
    # held leases run a TTL past the overload's end (the quiet second after the load stopped).
    bound_s = max(3 * TTL_S, time.monotonic() - killed_at + QUIET_S + TTL_S) + 2 * SWEEP_S + 1.0
    await _until(lambda: victim_id not in _listed(url), bound_s - (time.monotonic() - killed_at),
                 "an instance killed during the overload did not expire within the bound")
    detected_s = time.monotonic() - killed_at
    print(f"\n{refused:.0f} writes refused while {FLEET} instances registered; the killed one expired "
          f"{detected_s:.2f}s after the kill (bound {bound_s:.1f}s)")
    assert "overloaded: refusing writes with 503 and Retry-After" in registry.log_text()
