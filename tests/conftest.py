"""Fixtures shared by every suite: a real Redis (fail, never skip, under CI) and per-test Redis servers.

And the hooks that keep the ``integration`` marker true (see ``tests/support/process_guard.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.process_guard import IntegrationMarker
from tests.support.redis_cluster import RedisCluster
from tests.support.redis_server import RedisServer, RedisUnavailableError, redis_url_for_session
from tests.support.store_backend import StoreBackend

# Fixtures (defined here) that start a process whenever they are set up: every test that uses one is an
# integration test, wherever it lives, without each module having to say so.
PROCESS_FIXTURES = frozenset({"redis_url", "redis_server", "redis_cluster", "redis_cluster_url", "store_backend"})

_REQUEST = pytest.StashKey[pytest.FixtureRequest]()


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(IntegrationMarker(PROCESS_FIXTURES, _fixtures_in_use), "integration-marker")


@pytest.fixture(autouse=True)
def _record_the_request(request: pytest.FixtureRequest) -> None:
    """Keep the test's request: once the test has run, it names every fixture used, dynamic ones too."""
    request.node.stash[_REQUEST] = request


def _fixtures_in_use(item: pytest.Item) -> list[str]:
    return item.stash[_REQUEST].fixturenames if _REQUEST in item.stash else list(getattr(item, "fixturenames", ()))


def _no_redis(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and no Redis could be started: {reason}")
    pytest.skip(f"no Redis available: {reason}")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real Redis for the session (its data is flushed by the tests that need a clean one)."""
    try:
        with redis_url_for_session(tmp_path_factory.mktemp("redis")) as (url, _server):
            yield url
    except RedisUnavailableError as exc:
        _no_redis(str(exc))


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own, which the test may kill and restart on the same port."""
    server = RedisServer(data_dir=tmp_path / "redis")
    try:
        server.start()
    except RedisUnavailableError as exc:
        _no_redis(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A real three-master Redis Cluster for the session."""
    cluster = RedisCluster(data_dir=tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
    except (RedisUnavailableError, OSError) as exc:
        cluster.stop()
        _no_redis(str(exc))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster_url(redis_cluster: RedisCluster) -> str:
    """The session cluster's ``redis+cluster://`` URL."""
    return redis_cluster.url


@pytest.fixture(params=["redis", "cluster"])
def store_backend(request: pytest.FixtureRequest) -> StoreBackend:
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return StoreBackend("redis", server.url, server.flushall)
    cluster: RedisCluster = request.getfixturevalue("redis_cluster")
    cluster.flushall()
    return StoreBackend("cluster", cluster.url, cluster.flushall)
