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

from tests.e2e.conftest import REPO, SERVICE, Backend
from tests.support.polling import wait_until
from tests.support.processes import ManagedProcess, free_port


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
