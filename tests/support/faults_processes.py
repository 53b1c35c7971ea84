"""Processes and probes for the fault-injection suite (``tests/faults``).

Backends are the e2e backend with a slow endpoint and ``/metrics`` (``tests.support.faults_backend``),
started like the e2e ones but with the heartbeat interval, slowness and registry URLs of the test.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.support.e2e_backends import REPO, SERVICE, Backend, registered
from tests.support.polling import wait_until
from tests.support.processes import ManagedProcess, RegistryProcess, free_port, start_registry
from tests.support.redis_server import RedisServer


class Spawned:
    """Everything a test started; stopped (process group) at the end of the test, newest first."""

    def __init__(self, tmp_path: Path, redis_server: RedisServer) -> None:
        self.tmp_path = tmp_path
        self.redis = redis_server
        self.processes: list[ManagedProcess] = []

    def registry(self, *, ttl: float, sweep: float = 0.2, name: str = "registry") -> RegistryProcess:
        proc = start_registry(self.tmp_path, redis_url=self.redis.url, ttl=ttl, sweep=sweep, name=name)
        self.processes.append(proc)
        proc.wait_healthy()
        return proc

    def add(self, process: ManagedProcess) -> ManagedProcess:
        self.processes.append(process)
        return process

    def backends(self, backends: Sequence[Backend]) -> list[Backend]:
        for backend in backends:
            self.add(backend.process)
        return list(backends)

    def stop_all(self) -> None:
        for proc in reversed(self.processes):
            proc.stop(timeout=5)


def wait_registered(registry_url: str, count: int, *, timeout: float = 30.0) -> list[dict[str, object]]:
    """Wait until exactly ``count`` UP instances of the backends' service are listed; those instances."""
    def listed() -> list[dict[str, object]] | None:
        found = registered(registry_url)
        return found if len(found) == count else None

    found = wait_until(listed, timeout=timeout, message=f"{count} backends registered")
    assert found is not None
    return found


def start_fault_backend(tmp_path: Path, registry_urls: str | Sequence[str], *, heartbeat_ms: int,
                        slow_s: float = 0.0, port: int | None = None, name: str = SERVICE) -> Backend:
    """A backend process that registers itself with its own ``ServiceRegistryManager``."""
    port = port or free_port()
    urls = registry_urls if isinstance(registry_urls, str) else ",".join(registry_urls)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE_REGISTRY_")}
    env.update({"PYTHONPATH": str(REPO), "SERVICE_REGISTRY_URL": urls, "HOST": "127.0.0.1",
                "PORT": str(port), "SERVICE_REGISTRY_HEARTBEAT_INTERVAL": str(heartbeat_ms),
                "SERVICE_REGISTRY_RETRY_DELAY": "100", "BACKEND_NAME": name, "FAULTS_SLOW_S": str(slow_s)})
    process = ManagedProcess([sys.executable, "-m", "tests.support.faults_backend"], env,
                             tmp_path / f"fault-backend-{port}.log").start()
    return Backend(port, process)


def start_blackhole(tmp_path: Path) -> tuple[int, ManagedProcess]:
    """A server that accepts and reads but never answers; its log shows what reached it."""
    port = free_port()
    process = ManagedProcess([sys.executable, "-m", "tests.support.faults_blackhole", str(port)],
                             {**os.environ, "PYTHONPATH": str(REPO)}, tmp_path / f"blackhole-{port}.log").start()
    wait_until(lambda: f"listening {port}" in process.log_text() or not process.alive(), timeout=15,
               message="the black hole to listen")
    assert process.alive(), process.log_text()
    return port, process


def get_json(url: str, timeout: float = 5.0) -> object:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def arrivals(backend: Backend) -> dict[str, int]:
    """How many requests reached the backend's ``/slow``, by method (counted before it sleeps)."""
    answer = get_json(f"http://{backend.address}/arrivals")
    assert isinstance(answer, dict)
    return {str(key): int(count) for key, count in answer.items()}


def metric_samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of ``name`` in a Prometheus exposition, keyed by its sorted labels."""
    samples: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                samples[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def scrape(base_url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(base_url + "/metrics", timeout=timeout) as resp:
        return str(resp.read().decode())


def metric_total(base_url: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` at ``base_url/metrics`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(value for key, value in metric_samples(scrape(base_url), name).items() if wanted <= set(key))
