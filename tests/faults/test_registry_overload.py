"""An overloaded registry refuses what it cannot serve with 503 + Retry-After, the client library honours
it, and no live instance expires; an instance SIGKILLed during the overload still expires, within three
TTLs of its death (the longest delay a refusal gives, plus a TTL) or a TTL, the quiet period and a sweep
after the overload ends, whichever is later.

However long an overload lasts, an instance SIGKILLed during it expires within seven TTLs of its death:
the leases held are only those of instances heard within six.

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

from registry_server.expiry_protection import HELD_UNHEARD_TTLS
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


async def test_an_overload_that_never_ends_still_expires_an_instance_killed_during_it(
        spawned: Spawned, tmp_path: Path) -> None:
    """Clients that ignore Retry-After keep the registry refusing writes throughout: it holds the leases of
    the instances it hears from, and one SIGKILLed meanwhile expires within seven TTLs of its death while
    the overload goes on."""
    registry = start_registry(tmp_path, redis_url=spawned.redis.url, ttl=TTL_S, sweep=SWEEP_S,
                              extra_env={"REGISTRY_MAX_IN_FLIGHT": "2"})
    spawned.add(registry)
    registry.wait_healthy()
    url = registry.url
    victim = spawned.backends([start_fault_backend(tmp_path, url, heartbeat_ms=HEARTBEAT_MS)])[0]
    (victim_doc,) = wait_registered(url, 1)
    live = [f"Hammer-{n}" for n in range(20)]
    stop = asyncio.Event()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=5)) as session:
        for n, instance_id in enumerate(live):
            while True:  # one at a time: refused (503) only if something else is in flight
                async with session.post(f"{url}/instances", json={
                        "id": instance_id, "name": "Hammer", "host": "127.0.0.1", "port": 30_000 + n,
                        "lease_token": f"hammer-lease-token-{instance_id}"}) as resp:
                    if resp.status in (200, 201):
                        break
                    assert resp.status == 503, await resp.text()

        async def hammer(worker: int) -> None:
            """Heartbeats back to back, whatever the answers: many more than two writes at a time."""
            n = worker
            while not stop.is_set():
                instance_id = live[n % len(live)]
                async with session.put(f"{url}/instances/{instance_id}/heartbeat",
                                       headers={"X-Lease-Token": f"hammer-lease-token-{instance_id}"}) as resp:
                    await resp.read()
                    assert resp.status in (200, 503), resp.status
                n += 1

        workers = [asyncio.create_task(hammer(w)) for w in range(16)]
        try:
            await _until(lambda: metric_total(url, "registry_requests_shed_total") > 100, 20,
                         "the hammering never overloaded the registry")
            victim.process.kill()
            killed_at = time.monotonic()
            bound_s = (HELD_UNHEARD_TTLS + 1) * TTL_S + 2 * SWEEP_S + 2.0  # its last heartbeat came before the kill
            await _until(lambda: str(victim_doc["id"]) not in _listed(url), bound_s,
                         "an instance killed during an endless overload was held for as long as it lasted")
            detected_s = time.monotonic() - killed_at
            refused = metric_total(url, "registry_requests_shed_total")
            await _until(lambda: metric_total(url, "registry_requests_shed_total") > refused, 5,
                         "the overload had ended: this test proves nothing")
            assert metric_total(url, "registry_expirations_total") == 1, "a live instance expired"
            assert sorted(_listed(url)) == sorted(live), "every hammering instance still listed"
        finally:
            stop.set()
            await asyncio.gather(*workers, return_exceptions=True)
    print(f"\nthe killed instance expired {detected_s:.2f}s after the kill, the overload still on "
          f"(bound {bound_s:.1f}s)")
