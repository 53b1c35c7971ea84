"""Scaling out on Redis Sentinel and Redis Cluster, with several registry replicas (real processes)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from resilient_client import ServiceRegistryManager
from tests.support.polling import async_wait_until, wait_until
from tests.support.processes import running_registry
from tests.support.redis_sentinel import SentinelDeployment

pytestmark = pytest.mark.integration

TOKEN = "scale-out-lease-token-0001"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def metric_sum(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def test_a_sentinel_failover_of_the_master_is_survived_with_a_bounded_error_window(tmp_path: Path) -> None:
    deployment = SentinelDeployment(data_dir=tmp_path / "sentinel")
    try:
        deployment.start()
        with running_registry(tmp_path, redis_url=deployment.url, ttl=30, sweep=0.5) as reg, \
                httpx.Client(base_url=reg.url, timeout=5, headers={"X-Lease-Token": TOKEN}) as http:
            reg.wait_healthy()
            body = {"name": "Auth", "port": 1, "host": "h", "id": "acked", "lease_token": TOKEN}
            assert http.post("/instances", json=body).status_code == 201
            wait_until(deployment.replica_caught_up, timeout=10, message="the replica to hold the registration")
            outcomes: list[tuple[float, int]] = []
            stop = threading.Event()

            def traffic() -> None:
                while not stop.is_set():
                    try:
                        status = http.put("/instances/acked/heartbeat").status_code
                    except httpx.HTTPError:
                        status = 0
                    outcomes.append((time.monotonic(), status))

            worker = threading.Thread(target=traffic)
            worker.start()
            wait_until(lambda: len(outcomes) > 20, timeout=10, message="steady traffic")
            old_master = deployment.master_port
            killed_at = time.monotonic()
            deployment.kill_master()
            try:
                wait_until(lambda: deployment.master_port_now() != old_master, timeout=30,
                           message="the sentinels to promote the replica")
                wait_until(lambda: any(t > killed_at and s == 200 for t, s in outcomes[-5:])
                           and all(s == 200 for _t, s in outcomes[-5:]), timeout=30,
                           message="heartbeats to succeed again by themselves")
            finally:
                stop.set()
                worker.join(timeout=10)
            failures = [t for t, s in outcomes if s != 200]
            window = (max(failures) - killed_at) if failures else 0.0
            assert all(s in (200, 503) for _t, s in outcomes), "only 503s, never a 500 or a hang"
            assert window < 30, f"error window {window:.1f}s"
            assert http.get("/instances/acked").status_code == 200, "the replicated registration survived"
            ARTIFACTS.mkdir(exist_ok=True)
            report = {"error_window_s": round(window, 2), "failed_requests": len(failures),
                      "requests": len(outcomes), "promoted_to": deployment.master_port_now()}
            (ARTIFACTS / "sentinel-failover.json").write_text(json.dumps(report))
            print(f"\nSentinel fail-over: {report}")
    finally:
        deployment.stop()


async def test_three_replicas_on_a_cluster_serve_clients_through_a_replica_kill(tmp_path: Path,
                                                                               redis_cluster_url: str) -> None:
    with running_registry(tmp_path, redis_url=redis_cluster_url, ttl=2, sweep=0.1, name="r1") as r1, \
            running_registry(tmp_path, redis_url=redis_cluster_url, ttl=2, sweep=0.1, name="r2") as r2, \
            running_registry(tmp_path, redis_url=redis_cluster_url, ttl=2, sweep=0.1, name="r3") as r3:
        for reg in (r1, r2, r3):
            reg.wait_healthy()
        urls = [r1.url, r2.url, r3.url]
        metrics = CollectorRegistry()
        managers = [ServiceRegistryManager(urls, heartbeat_interval=200, retry_delay=50, host="127.0.0.1",
                                           port=7000 + n, metrics_registry=metrics, watch=False)
                    for n in range(6)]
        try:
            ids = [await m.register(name=f"svc{n % 3}", port=7000 + n) for n, m in enumerate(managers)]
            assert all(ids)
            r1.kill()  # the replica every client tries first
            beats_after_kill = _beats(metrics)

            async def beating_on() -> bool:
                return _beats(metrics) >= beats_after_kill + 30

            await async_wait_until(beating_on, timeout=15, message="heartbeats to go on through the other replicas")
            failed = sum(metrics.get_sample_value("resilient_client_heartbeats_total",
                                                  {"service": f"svc{n}", "outcome": "failed"}) or 0 for n in range(3))
            assert failed == 0
            found = await managers[0].discover_services("svc1")
            assert sorted(i.id for i in found) == sorted(ids[n] for n in (1, 4))
            await managers[5].close()  # svc2's second instance goes silent: it must expire once
            async with httpx.AsyncClient() as http:

                async def expired() -> float:
                    texts = [(await http.get(r.url + "/metrics")).text for r in (r2, r3)]
                    return sum(metric_sum(text, "registry_expirations_total") for text in texts)

                await async_wait_until(expired, timeout=15, message="the silent instance to expire")
                assert await expired() == 1
        finally:
            for m in managers:
                await m.close()


def _beats(metrics: CollectorRegistry) -> float:
    return sum(metrics.get_sample_value("resilient_client_heartbeats_total", {"service": f"svc{n}", "outcome": "ok"})
               or 0 for n in range(3))
