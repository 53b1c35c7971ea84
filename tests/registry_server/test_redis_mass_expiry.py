"""A mass expiry on Redis: thousands of leases running out at once are removed, counted and released."""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as aioredis

from registry_server.model import InstanceRegistration
from registry_server.store.keys import KeyLayout
from registry_server.store.redis_connect import connect
from registry_server.store.redis_store import RedisStore
from registry_server.store.redis_url import parse_redis_url

NOW = 1_795_000_000_000
TTL = 10_000


async def test_two_thousand_leases_running_out_at_once_are_all_removed_and_their_ids_released(
        redis_url: str) -> None:
    layout = KeyLayout(prefix=f"m{uuid.uuid4().hex[:10]}")
    store = RedisStore(connect(parse_redis_url(redis_url), max_connections=64), layout=layout, op_timeout_s=20)
    raw = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        for start in range(0, 2000, 50):  # well inside the pool: it is the expiry that must not exhaust it
            await asyncio.gather(*(store.register(InstanceRegistration(id=f"i-{n}", name=f"s{n % 4}", host="h", port=1),
                                                  NOW, TTL) for n in range(start, start + 50)))
        removed = []
        while batch := await store.expire(NOW + TTL, 1000):
            removed.extend(batch)
        assert len(removed) == 2000
        assert len({inst.id for inst in removed}) == 2000
        owners = [key async for key in raw.scan_iter(match=f"{layout.prefix}:id:*", count=1000)]
        assert owners == [], "every removed instance's id is released"
    finally:
        await store.close()
        await raw.aclose()
