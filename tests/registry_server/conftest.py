from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from registry_server.store.base import InstanceStore
from registry_server.store.keys import KeyLayout
from registry_server.store.memory import MemoryStore
from registry_server.store.redis_store import RedisStore, connect
from registry_server.store.redis_url import parse_redis_url
from tests.support.store_backend import StoreFactory

# The memory store runs in-process; the Redis ones start (or use) a redis-server.
STORE_KINDS = ["memory", pytest.param("redis", marks=pytest.mark.integration),
               pytest.param("cluster", marks=pytest.mark.integration)]


@pytest.fixture(params=STORE_KINDS)
async def store_factory(request: pytest.FixtureRequest) -> AsyncIterator[StoreFactory]:
    async for factory in _factory(request, event_history=10_000):
        yield factory


@pytest.fixture(params=STORE_KINDS)
async def small_history_store(request: pytest.FixtureRequest) -> AsyncIterator[InstanceStore]:
    """A store that keeps only a short event history."""
    async for factory in _factory(request, event_history=5):
        yield factory()


async def _factory(request: pytest.FixtureRequest, *, event_history: int) -> AsyncIterator[StoreFactory]:
    """Makes stores that share one backing state: a memory store, or Redis stores on one key prefix.

    Several stores from one factory stand for several registry replicas on one Redis (or Cluster).
    """
    made: list[InstanceStore] = []
    if request.param == "memory":
        shared = MemoryStore(event_history=event_history)

        def make() -> InstanceStore:
            return shared
    else:
        url = request.getfixturevalue("redis_cluster_url" if request.param == "cluster" else "redis_url")
        layout = KeyLayout(prefix=f"t{uuid.uuid4().hex[:12]}")

        def make() -> InstanceStore:
            store = RedisStore(connect(parse_redis_url(url)), layout=layout, event_history=event_history)
            made.append(store)
            return store

    yield make
    for store in made:
        await store.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> InstanceStore:
    return store_factory()
