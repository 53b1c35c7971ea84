"""Fault 2: Redis unreachable for longer than the instance TTL, then back with its data.

Two ways to lose it: frozen (SIGSTOP on its process group: connections hang, requests time out) and
killed then restarted from its append-only file. Either way no instance may expire because of the outage:
``registry_expirations_total`` stays 0, every instance is listed in every answer afterwards, no backend has
to re-register, and the registry shows the protection it applied (``expiry_protection`` in ``/healthz``,
``registry_expiry_protection_active`` while the store is away, ``registry_lease_extensions_total`` after).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.support.e2e_backends import SERVICE
from tests.support.faults_processes import Spawned, metric_total, start_fault_backend, wait_registered
from tests.support.processes import RegistryProcess

pytestmark = pytest.mark.integration

TTL_S = 2.0
HEARTBEAT_MS = 500
OUTAGE_S = 4.0  # twice the TTL: every lease runs out by the registry's clock during the outage
WATCH_AFTER_S = 2 * TTL_S + 1.0  # a false expiry would show within one TTL of the store answering


@contextlib.contextmanager
def redis_frozen(spawned: Spawned) -> Iterator[None]:
    assert spawned.redis.proc is not None
    pid = spawned.redis.proc.pid
    os.killpg(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(pid, signal.SIGCONT)


@contextlib.contextmanager
def redis_killed_then_restarted_with_its_data(spawned: Spawned) -> Iterator[None]:
    spawned.redis.kill()
    try:
        yield
    finally:
        spawned.redis.restart(empty=False, persist=True)


OUTAGES = {"frozen": redis_frozen, "killed-and-restarted-with-data": redis_killed_then_restarted_with_its_data}


def health(registry: RegistryProcess) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(registry.url + "/healthz", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def listed(registry: RegistryProcess) -> tuple[int, set[str]]:
    try:
        with urllib.request.urlopen(f"{registry.url}/instances", timeout=5) as resp:
            return resp.status, {str(inst["id"]) for inst in json.loads(resp.read())["instances"]}
    except urllib.error.HTTPError as exc:
        return exc.code, set()


@pytest.mark.parametrize("outage", sorted(OUTAGES))
async def test_an_outage_longer_than_the_ttl_expires_nothing(spawned: Spawned, outage: str) -> None:
    if outage != "frozen":
        await asyncio.to_thread(spawned.redis.restart, empty=True, persist=True)  # append-only file on
    registry = spawned.registry(ttl=TTL_S, sweep=0.2)
    backends = spawned.backends([start_fault_backend(spawned.tmp_path, registry.url, heartbeat_ms=HEARTBEAT_MS)
                                 for _ in range(3)])
    ids = {str(inst["id"]) for inst in wait_registered(registry.url, 3)}
    registrations_before = metric_total(registry.url, "registry_registrations_total")
    assert health(registry) == (200, {"status": "ok", "store": "redis", "expiry_protection": False,
                                      "shedding": False, "holding": False,
                                      "heartbeat_spacing_s": None, "fleet_revival": None})

    protection_seen = health_seen = False
    with OUTAGES[outage](spawned):
        outage_ends = time.monotonic() + OUTAGE_S
        while time.monotonic() < outage_ends:  # the outage lasts OUTAGE_S; we watch the registry meanwhile
            gauge = metric_total(registry.url, "registry_expiry_protection_active")
            protection_seen = protection_seen or gauge == 1
            status, body = await asyncio.to_thread(health, registry)
            assert status == 503, body
            health_seen = health_seen or body.get("expiry_protection") is True
    resumed_at = time.monotonic()

    answers: list[tuple[float, int, set[str]]] = []
    while time.monotonic() - resumed_at < WATCH_AFTER_S:  # the window in which a false expiry would show
        status, found = await asyncio.to_thread(listed, registry)
        answers.append((time.monotonic() - resumed_at, status, found))
        await asyncio.sleep(0.05)  # pacing of the observation, not a wait for an outcome

    expirations = metric_total(registry.url, "registry_expirations_total")
    extended = metric_total(registry.url, "registry_lease_extensions_total")
    reregistered = sum(metric_total(f"http://{b.address}", "resilient_client_heartbeats_total",
                                    outcome="reregistered") for b in backends)
    served = [(at, found) for at, status, found in answers if status == 200]
    incomplete = [(round(at, 2), sorted(ids - found)) for at, found in served if found != ids]
    print(f"\n{outage}: {len(served)}/{len(answers)} listings after the outage, {len(incomplete)} incomplete; "
          f"expirations {expirations:.0f}, leases extended {extended:.0f}, re-registrations {reregistered:.0f}")

    assert protection_seen, "registry_expiry_protection_active never read 1 during the outage"
    assert health_seen, "/healthz never said expiry_protection: true during the outage"
    assert expirations == 0, "instances expired because of the store outage"
    assert incomplete == [], f"instances missing after the outage: {incomplete[:5]}"
    assert len(served) >= len(answers) - 5 and served, "the registry did not serve listings after the outage"
    assert reregistered == 0, "a backend had to re-register: its instance had been expired"
    assert metric_total(registry.url, "registry_registrations_total") == registrations_before
    assert extended >= len(ids)
    assert metric_total(registry.url, "registry_expiry_protection_active") == 0
    assert health(registry)[1]["expiry_protection"] is False
    assert {i for i in listed(registry)[1] if i.startswith(SERVICE)} == ids
