"""A replica whose event loop stops (a garbage collection, a CPU limit) while Redis answers does not take
itself for one whose store is unreachable; a Redis that does not answer still fails the call, within a
bound. Both kinds of store call: a batched script and any other operation. With a real Redis, kept from
answering by a script of another client, and a real stop of the loop (``time.sleep`` in a callback)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from registry_server.errors import StoreUnavailableError
from registry_server.store.keys import KeyLayout
from registry_server.store.redis_batch import ScriptBatcher
from registry_server.store.redis_connect import connect
from registry_server.store.redis_store import RedisStore
from registry_server.store.redis_url import parse_redis_url

BUSY = """local t = redis.call('TIME') local start = t[1] * 1000000 + t[2]
repeat local n = redis.call('TIME') until n[1] * 1000000 + n[2] - start >= tonumber(ARGV[1])
return 1"""
"""Keeps Redis from answering anyone for ARGV[1] microseconds (a script runs alone)."""
ECHO = "return ARGV[1]"


@pytest.fixture
async def busy_redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    other = aioredis.Redis.from_url(redis_url)
    await other.ping()  # connected: its script goes out before the store's call
    yield other
    await other.aclose()


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStore]:
    store = RedisStore(connect(parse_redis_url(redis_url)), layout=KeyLayout(prefix=f"t{uuid.uuid4().hex[:12]}"),
                       op_timeout_s=0.3)
    await store.ping()
    yield store
    await store.close()


@pytest.fixture
async def batcher(redis_url: str) -> AsyncIterator[ScriptBatcher]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    batcher = ScriptBatcher(client.connection_pool, client.register_script(ECHO), timeout_s=0.3)
    assert await batcher([], ["warm"]) == "warm"
    yield batcher
    await batcher.aclose()
    await client.aclose()


def _busy_then_stopped(busy_redis: aioredis.Redis, busy_us: int) -> asyncio.Task[object]:
    """Redis kept from answering for ``busy_us``, and the loop stopped for 0.6 s from 50 ms on, past the
    0.3 s of the call made next (in a task of its own, so that the busy script goes out first). The busy
    script's task, to await at the end."""
    loop = asyncio.get_running_loop()
    busy = loop.create_task(busy_redis.eval(BUSY, 0, busy_us))
    loop.call_later(0.05, time.sleep, 0.6)
    return busy


async def test_a_batch_answered_while_the_loop_was_stopped_is_not_given_up(
        batcher: ScriptBatcher, busy_redis: aioredis.Redis) -> None:
    busy = _busy_then_stopped(busy_redis, 200_000)  # the reply comes while the loop is stopped
    assert await batcher([], ["through a stall"]) == "through a stall"
    assert await busy == 1


async def test_a_redis_that_does_not_answer_still_fails_the_batch_when_the_loop_also_stopped(
        batcher: ScriptBatcher, busy_redis: aioredis.Redis) -> None:
    busy = _busy_then_stopped(busy_redis, 1_200_000)  # longer than 0.3 s, the stop and 0.3 s more
    with pytest.raises(TimeoutError):
        await batcher([], ["never in time"])
    assert await busy == 1
    assert await batcher([], ["thawed"]) == "thawed"


async def test_a_store_call_answered_while_the_loop_was_stopped_is_not_an_unreachable_store(
        store: RedisStore, busy_redis: aioredis.Redis) -> None:
    busy = _busy_then_stopped(busy_redis, 200_000)  # the reply comes while the loop is stopped
    await asyncio.ensure_future(store.ping())  # a task of its own: it goes out after the busy script
    assert await busy == 1


async def test_a_redis_that_does_not_answer_still_fails_the_call_when_the_loop_also_stopped(
        store: RedisStore, busy_redis: aioredis.Redis) -> None:
    busy = _busy_then_stopped(busy_redis, 1_200_000)  # longer than 0.3 s, the stop and 0.3 s more
    with pytest.raises(StoreUnavailableError):
        await asyncio.ensure_future(store.ping())
    assert await busy == 1
