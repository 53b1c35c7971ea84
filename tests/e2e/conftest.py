"""End-to-end fixtures: a real ``registry-server`` on a real Redis, and three real backend processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.e2e_backends import REGISTRY_TTL_S, Backend, registered, start_backend
from tests.support.polling import wait_until
from tests.support.processes import RegistryProcess, start_registry
from tests.support.store_backend import StoreBackend


@pytest.fixture
def registry(store_backend: StoreBackend, tmp_path: Path) -> Iterator[RegistryProcess]:
    """The registry on a Redis of the test's own, and again on a three-master Redis Cluster."""
    proc = start_registry(tmp_path, redis_url=store_backend.url, ttl=REGISTRY_TTL_S, sweep=0.1)
    try:
        proc.wait_healthy()
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def backends(registry: RegistryProcess, tmp_path: Path) -> Iterator[list[Backend]]:
    started = [start_backend(tmp_path, registry.url) for _ in range(3)]
    try:
        wait_until(lambda: len(registered(registry.url)) == 3, timeout=30,
                   message="three backends registered")
        yield sorted(started, key=lambda backend: backend.port)
    finally:
        for backend in started:
            backend.process.stop(timeout=5)
