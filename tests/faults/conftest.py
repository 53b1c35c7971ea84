"""Fault-injection fixtures: real Redis, real ``registry-server`` processes, real backends, real kills."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from resilient_client import BackoffConfig, ClientConfig, ResilientClient, ServiceRegistryManager
from tests.e2e.conftest import Backend, registered
from tests.support.polling import wait_until
from tests.support.processes import ManagedProcess, RegistryProcess, start_registry
from tests.support.redis_server import RedisServer

ATTEMPT_TIMEOUT_S = 1.5
CONFIG = ClientConfig(attempt_timeout_s=ATTEMPT_TIMEOUT_S, total_timeout_s=6.0, max_passes=2,
                      backoff=BackoffConfig(base_s=0.02, max_s=0.1))


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


@pytest.fixture
def spawned(tmp_path: Path, redis_server: RedisServer) -> Iterator[Spawned]:
    spawned = Spawned(tmp_path, redis_server)
    try:
        yield spawned
    finally:
        spawned.stop_all()


def wait_registered(registry_url: str, count: int, *, timeout: float = 30.0) -> list[dict[str, object]]:
    """Wait until exactly ``count`` UP instances of the backends' service are listed; those instances."""
    def listed() -> list[dict[str, object]] | None:
        found = registered(registry_url)
        return found if len(found) == count else None

    found = wait_until(listed, timeout=timeout, message=f"{count} backends registered")
    assert found is not None
    return found


@contextlib.asynccontextmanager
async def client_for(registry_urls: str | Sequence[str], *, cache_ttl_ms: float = 30_000,
                     heartbeat_ms: float = 30_000, config: ClientConfig = CONFIG,
                     ) -> AsyncIterator[tuple[ResilientClient, ServiceRegistryManager, CollectorRegistry]]:
    """A client in the test process with its own manager and its own metrics registry."""
    metrics = CollectorRegistry()
    manager = ServiceRegistryManager(registry_url=registry_urls, cache_ttl=cache_ttl_ms, retry_delay=100,
                                     heartbeat_interval=heartbeat_ms, host="127.0.0.1",
                                     metrics_registry=metrics)
    client = ResilientClient(manager, config=config, metrics_registry=metrics)
    try:
        yield client, manager, metrics
    finally:
        await client.close()
        await manager.close()


def value(metrics: CollectorRegistry, name: str, **labels: str) -> float:
    return metrics.get_sample_value(name, labels) or 0.0


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started
