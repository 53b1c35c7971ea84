"""Services without instances cost the Redis store's sweeps and listings nothing: the same Redis
commands with none and with hundreds of them (counted by Redis itself, ``INFO commandstats``)."""

from __future__ import annotations

import re
import time
import uuid
from urllib.parse import urlparse

import pytest

from registry_server.model import InstanceRegistration
from registry_server.store.keys import KeyLayout
from registry_server.store.redis_store import RedisStore, connect
from registry_server.store.redis_url import parse_redis_url
from tests.support.redis_server import redis_command

pytestmark = pytest.mark.integration

TTL = 3_600_000


def _commands(port: int) -> dict[str, int]:
    stats = redis_command(port, "INFO", "commandstats")
    return {name: int(calls) for name, calls in re.findall(r"cmdstat_([^:]+):calls=(\d+)", stats)}


async def _idle_work(store: RedisStore, port: int, now: int) -> dict[str, int]:
    """The Redis commands of one sweep, one listing of services and one look for idle services."""
    assert redis_command(port, "CONFIG", "RESETSTAT").startswith("+OK")
    await store.expire(now, 1000)
    assert [s.name for s in await store.services(now)] == ["steady"]
    assert await store.drop_idle(now, TTL) == []
    return _commands(port)


async def test_an_idle_sweep_does_the_same_redis_work_with_none_and_with_many_empty_services(redis_url: str) -> None:
    port = urlparse(redis_url).port
    assert port is not None
    store = RedisStore(connect(parse_redis_url(redis_url)), layout=KeyLayout(prefix=f"t{uuid.uuid4().hex[:12]}"))
    now = int(time.time() * 1000)
    try:
        await store.register(InstanceRegistration(id="steady-1", name="steady", host="10.0.0.2", port=1), now, TTL)
        await _idle_work(store, port, now)  # loads the scripts
        without = await _idle_work(store, port, now)
        for i in range(300):
            await store.register(InstanceRegistration(id=f"dead-{i}", name=f"dead-{i}", host="10.0.0.1", port=1),
                                 now, TTL)
            await store.deregister(f"dead-{i}", now)
        with_empty = await _idle_work(store, port, now)
    finally:
        await store.close()
    assert with_empty == without
    assert sum(without.values()) < 20, without
