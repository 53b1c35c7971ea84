"""End-to-end fixtures: a real ``registry-server`` on a real Redis, and three real backend processes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.e2e_backends import REGISTRY_TTL_S, Backend, registered, start_backend
from tests.support.polling import wait_until
from tests.support.processes import RegistryProcess, start_registry
from tests.support.store_backend import StoreBackend


@contextlib.contextmanager
def _registry_on(redis_url: str, tmp_path: Path) -> Iterator[RegistryProcess]:
    proc = start_registry(tmp_path, redis_url=redis_url, ttl=REGISTRY_TTL_S, sweep=0.1)
    try:
        proc.wait_healthy()
        yield proc
    finally:
        proc.stop()


@contextlib.contextmanager
def _three_backends(registry: RegistryProcess, tmp_path: Path) -> Iterator[list[Backend]]:
    started = [start_backend(tmp_path, registry.url) for _ in range(3)]
    try:
        wait_until(lambda: len(registered(registry.url)) == 3, timeout=30,
                   message="three backends registered")
        yield sorted(started, key=lambda backend: backend.port)
    finally:
        for backend in started:
            backend.process.stop(timeout=5)


@pytest.fixture
def registry(store_backend: StoreBackend, tmp_path: Path) -> Iterator[RegistryProcess]:
    """The registry on a Redis of the test's own, and again on a three-master Redis Cluster."""
    with _registry_on(store_backend.url, tmp_path) as proc:
        yield proc


@pytest.fixture
def backends(registry: RegistryProcess, tmp_path: Path) -> Iterator[list[Backend]]:
    with _three_backends(registry, tmp_path) as started:
        yield started


@pytest.fixture(scope="module")
def steady_backends(redis_url: str, tmp_path_factory: pytest.TempPathFactory,
                    ) -> Iterator[tuple[RegistryProcess, list[Backend]]]:
    """A registry on the session's Redis, emptied first, and three backends, shared by a module's tests that
    only call them: none of those stops, kills or flushes anything, and each counts only the hits it adds."""
    with redis.Redis.from_url(redis_url) as client:
        client.flushall()
    tmp_path = tmp_path_factory.mktemp("steady-backends")
    with _registry_on(redis_url, tmp_path) as proc, _three_backends(proc, tmp_path) as started:
        yield proc, started
