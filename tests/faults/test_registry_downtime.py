"""Every registry replica down for three TTLs, the store intact: no instance that kept trying to heartbeat
expires, and each is in discovery from the first answer on (no 404, no re-registration). An instance that
really died meanwhile still expires, at most one TTL plus one sweep after the registry is back. Two
replicas restarting together extend each lease once; the extension shows in the metric, a log line and
``/healthz``. The memory store's one replica, suspended for three TTLs, keeps its instances too.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request

import pytest

from tests.support.e2e_backends import SERVICE, Backend
from tests.support.faults_processes import Spawned, metric_total, start_fault_backend, wait_registered
from tests.support.polling import wait_until
from tests.support.processes import RegistryProcess, http_status, start_registry

pytestmark = pytest.mark.integration

TTL_S = 2.0
SWEEP_S = 0.2
HEARTBEAT_MS = 500
DOWN_S = 3 * TTL_S
LIVE = 3


def listing(url: str) -> tuple[int, set[str]]:
    try:
        with urllib.request.urlopen(f"{url}/services/{SERVICE}", timeout=5) as resp:
            return resp.status, {str(inst["id"]) for inst in json.loads(resp.read())["instances"]}
    except urllib.error.HTTPError as exc:
        return exc.code, set()
    except OSError:
        return 0, set()


def healthz(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url + "/healthz", timeout=5) as resp:
        return dict(json.loads(resp.read()))


def stay_down(urls: list[str]) -> None:
    """The downtime lasts DOWN_S; meanwhile nothing may answer (the replicas really are down)."""
    ends = time.monotonic() + DOWN_S
    while time.monotonic() < ends:
        assert all(http_status(url + "/healthz", timeout=0.5) == 0 for url in urls)
        time.sleep(0.1)  # pacing of the check, not a wait for an outcome


def reregistrations(backends: list[Backend]) -> float:
    return sum(metric_total(f"http://{b.address}", "resilient_client_heartbeats_total", outcome="reregistered")
               for b in backends)


def restart(spawned: Spawned, old: RegistryProcess, *, redis: bool = True) -> RegistryProcess:
    proc = start_registry(spawned.tmp_path, redis_url=spawned.redis.url if redis else None, ttl=TTL_S,
                          sweep=SWEEP_S, port=old.port, name=f"restarted-{old.port}")
    spawned.add(proc)
    return proc


def watch_after_restart(url: str, live: set[str], dead: str | None) -> tuple[float, list[tuple[float, int, set[str]]]]:
    """Answers from the first one on, until the dead instance is gone (or two TTLs if none died)."""
    answers: list[tuple[float, int, set[str]]] = []
    first_at: float | None = None
    limit = time.monotonic() + 30
    while time.monotonic() < limit:
        status, found = listing(url)
        now = time.monotonic()
        if status == 0:
            continue  # not listening yet
        first_at = first_at if first_at is not None else now
        answers.append((now - first_at, status, found))
        if dead is not None and dead not in found:
            break
        if dead is None and now - first_at > 2 * TTL_S:
            break
        time.sleep(0.05)  # pacing of the observation, not a wait for an outcome
    assert first_at is not None, "the restarted registry never answered"
    return answers[-1][0], answers


def test_a_fleet_down_for_three_ttls_loses_no_live_instance_and_a_dead_one_still_expires(
        spawned: Spawned) -> None:
    registry = spawned.registry(ttl=TTL_S, sweep=SWEEP_S)
    backends = spawned.backends([start_fault_backend(spawned.tmp_path, registry.url, heartbeat_ms=HEARTBEAT_MS)
                                 for _ in range(LIVE + 1)])
    ports = {str(inst["id"]): inst["port"] for inst in wait_registered(registry.url, LIVE + 1)}
    doomed = backends.pop()
    (dead_id,) = [iid for iid, port in ports.items() if port == doomed.port]
    live = set(ports) - {dead_id}
    registry.kill()
    doomed.process.kill()  # dies while nobody can notice
    stay_down([registry.url])
    restarted = restart(spawned, registry)
    gone_after_s, answers = watch_after_restart(restarted.url, live, dead_id)

    not_200 = [(round(at, 2), status) for at, status, _ in answers if status != 200]
    missing = [(round(at, 2), sorted(live - found)) for at, _, found in answers if not live <= found]
    print(f"\nregistry down {DOWN_S:.0f}s (TTL {TTL_S:.0f}s): {len(answers)} answers after the restart, "
          f"dead instance gone {gone_after_s:.2f}s after the first answer")
    assert not_200 == [] and missing == [], (not_200[:3], missing[:3])
    assert dead_id not in answers[-1][2], "the instance that died during the downtime never expired"
    assert gone_after_s <= TTL_S + SWEEP_S + 0.5, "a real death must expire within one TTL and a sweep"
    # Reads hide a lease that ran out at once; the sweep that counts its expiry comes within one interval.
    wait_until(lambda: metric_total(restarted.url, "registry_expirations_total") >= 1, timeout=2 * SWEEP_S + 2,
               message="the dead instance's expiry to be counted")
    assert metric_total(restarted.url, "registry_expirations_total") == 1, "only the dead instance expired"
    assert metric_total(restarted.url, "registry_lease_extensions_total") == LIVE + 1
    assert reregistrations(backends) == 0, "a live instance had to register again"
    revival = healthz(restarted.url)["fleet_revival"]
    assert isinstance(revival, dict) and revival["extended"] == LIVE + 1
    assert "no registry replica served for" in restarted.log_text()


def test_two_replicas_restarting_together_extend_each_lease_once(spawned: Spawned) -> None:
    replicas = [spawned.registry(ttl=TTL_S, sweep=SWEEP_S, name=f"replica-{n}") for n in range(2)]
    urls = [r.url for r in replicas]
    backends = spawned.backends([start_fault_backend(spawned.tmp_path, urls, heartbeat_ms=HEARTBEAT_MS)
                                 for _ in range(LIVE)])
    live = {str(inst["id"]) for inst in wait_registered(urls[0], LIVE)}
    for replica in replicas:
        replica.kill()
    stay_down(urls)
    restarted = [restart(spawned, replica) for replica in replicas]
    for replica in restarted:
        replica.wait_healthy()
    for replica in restarted:
        status, found = listing(replica.url)
        assert (status, found) == (200, live)
    extended = [metric_total(r.url, "registry_lease_extensions_total") for r in restarted]
    revivals = [healthz(r.url)["fleet_revival"] for r in restarted]
    assert sorted(extended) == [0, LIVE], "exactly one replica extends, each lease once"
    assert sum(revival is not None for revival in revivals) == 1
    assert reregistrations(backends) == 0


def test_the_memory_stores_replica_suspended_for_three_ttls_keeps_its_instances(spawned: Spawned) -> None:
    """The memory store lives and dies with its one replica: after a restart it starts empty (instances
    register again); a replica that was suspended (SIGSTOP, a frozen VM) comes back with its instances."""
    registry = start_registry(spawned.tmp_path, redis_url=None, ttl=TTL_S, sweep=SWEEP_S)
    spawned.add(registry)
    registry.wait_healthy()
    backends = spawned.backends([start_fault_backend(spawned.tmp_path, registry.url, heartbeat_ms=HEARTBEAT_MS)
                                 for _ in range(LIVE)])
    live = {str(inst["id"]) for inst in wait_registered(registry.url, LIVE)}
    registry.signal_group(signal.SIGSTOP)
    try:
        time.sleep(DOWN_S)  # the suspension itself lasts three TTLs; nothing is awaited here
    finally:
        registry.signal_group(signal.SIGCONT)
    _, answers = watch_after_restart(registry.url, live, None)
    missing = [(round(at, 2), status, sorted(live - found)) for at, status, found in answers
               if status != 200 or not live <= found]
    assert missing == [], missing[:3]
    assert metric_total(registry.url, "registry_expirations_total") == 0
    revival = healthz(registry.url)["fleet_revival"]
    assert isinstance(revival, dict) and revival["extended"] == LIVE, revival
    # The loop ran seconds late on resuming, so admission may also have renewed leases as under overload.
    assert metric_total(registry.url, "registry_lease_extensions_total") >= LIVE
    assert reregistrations(backends) == 0
