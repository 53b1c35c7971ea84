"""Fixtures shared by every suite: a real Redis (fail, never skip, under CI) and per-test Redis servers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.redis_cluster import RedisCluster
from tests.support.redis_server import RedisServer, RedisUnavailableError, redis_url_for_session


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


@dataclass(frozen=True)
class StoreBackend:
    """Where a test's registry keeps its data: a Redis of the test's own, or the session's (flushed) Cluster."""

    kind: str
    url: str
    flushall: Callable[[], None]


@pytest.fixture(params=["redis", "cluster"])
def store_backend(request: pytest.FixtureRequest) -> StoreBackend:
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return StoreBackend("redis", server.url, server.flushall)
    cluster: RedisCluster = request.getfixturevalue("redis_cluster")
    cluster.flushall()
    return StoreBackend("cluster", cluster.url, cluster.flushall)
