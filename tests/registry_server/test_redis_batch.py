"""Concurrent calls of one script share pipelines, and each caller still gets its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from registry_server.store.redis_batch import ScriptBatcher

ECHO = "if ARGV[1] == 'boom' then return redis.error_reply('boom') end return ARGV[1]"


class CountingBatcher(ScriptBatcher):
    sends = 0
    lingered = 0

    async def _send(self, batch: list[Any]) -> list[Any]:
        self.sends += 1
        return await super()._send(batch)

    async def _linger(self) -> None:
        self.lingered += 1
        await super()._linger()


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield c
    await c.aclose()


async def test_concurrent_calls_share_pipelines_and_get_their_own_answers(client: aioredis.Redis) -> None:
    batcher = CountingBatcher(client.connection_pool, client.register_script(ECHO), timeout_s=2.0)
    answers = await asyncio.gather(*(batcher([], [f"call-{n}"]) for n in range(100)))
    assert answers == [f"call-{n}" for n in range(100)]
    assert batcher.sends < 10, "calls made in one turn of the loop go together"


async def test_one_calls_error_is_that_callers_alone(client: aioredis.Redis) -> None:
    batcher = ScriptBatcher(client.connection_pool, client.register_script(ECHO), timeout_s=2.0)
    results = await asyncio.gather(batcher([], ["a"]), batcher([], ["boom"]), batcher([], ["c"]),
                                   return_exceptions=True)
    assert results[0] == "a"
    assert isinstance(results[1], ResponseError)
    assert results[2] == "c"


async def test_a_caller_that_gives_up_does_not_disturb_the_others(client: aioredis.Redis) -> None:
    batcher = ScriptBatcher(client.connection_pool, client.register_script(ECHO), timeout_s=2.0)
    gone = asyncio.ensure_future(batcher([], ["gone"]))
    staying = asyncio.ensure_future(batcher([], ["staying"]))
    gone.cancel()
    assert await staying == "staying"
    with pytest.raises(asyncio.CancelledError):
        await gone


async def test_a_lone_call_is_sent_on_its_own(client: aioredis.Redis) -> None:
    batcher = CountingBatcher(client.connection_pool, client.register_script(ECHO), timeout_s=2.0)
    assert await batcher([], ["alone"]) == "alone"
    assert batcher.sends == 1
    assert batcher.lingered == 0, "an idle batcher sends at once"


async def test_a_busy_batcher_gathers_calls_that_come_one_turn_apart(client: aioredis.Redis) -> None:
    # Busy for a minute after each batch, and lingering long enough for any machine: the test counts
    # batches, not time.
    batcher = CountingBatcher(client.connection_pool, client.register_script(ECHO), timeout_s=5.0,
                              linger_s=0.2, busy_s=60.0)
    assert await batcher([], ["first"]) == "first"
    calls = []
    for n in range(5):  # one call a turn of the loop, as heartbeats arriving one by one
        calls.append(asyncio.ensure_future(batcher([], [f"call-{n}"])))
        await asyncio.sleep(0)
    assert await asyncio.gather(*calls) == [f"call-{n}" for n in range(5)]
    assert (batcher.sends, batcher.lingered) == (2, 1), "the five went together, after one wait"


async def test_a_script_the_server_forgot_is_loaded_again(client: aioredis.Redis) -> None:
    batcher = CountingBatcher(client.connection_pool, client.register_script(ECHO), timeout_s=2.0)
    assert await batcher([], ["before"]) == "before"
    await client.script_flush()
    assert await asyncio.gather(batcher([], ["x"]), batcher([], ["y"])) == ["x", "y"]
    await batcher.aclose()


async def test_a_dropped_connection_fails_its_batch_and_the_next_one_reconnects(client: aioredis.Redis) -> None:
    batcher = ScriptBatcher(client.connection_pool, client.register_script(ECHO), timeout_s=2.0)
    assert await batcher([], ["first"]) == "first"
    killed = await client.client_kill_filter(skipme=True)
    assert killed >= 1, "the batcher's own connection was open"
    outcome = await asyncio.gather(batcher([], ["lost"]), return_exceptions=True)
    assert isinstance(outcome[0], ConnectionError | RedisConnectionError), outcome
    assert await batcher([], ["again"]) == "again"
    await batcher.aclose()


async def test_a_frozen_redis_fails_the_batch_at_its_deadline_and_the_next_call_works(client: aioredis.Redis) -> None:
    batcher = ScriptBatcher(client.connection_pool, client.register_script(ECHO), timeout_s=0.3)
    assert await batcher([], ["warm"]) == "warm"
    await client.execute_command("CLIENT", "PAUSE", "10000", "WRITE")  # scripts wait; CLIENT UNPAUSE does not
    try:
        outcome = await asyncio.gather(batcher([], ["frozen-1"]), batcher([], ["frozen-2"]), return_exceptions=True)
    finally:
        await client.execute_command("CLIENT", "UNPAUSE")
    assert all(isinstance(result, TimeoutError) for result in outcome), outcome
    assert await batcher([], ["thawed"]) == "thawed"
    await batcher.aclose()


async def test_calls_of_other_scripts_share_the_write_and_are_reloaded_each(client: aioredis.Redis) -> None:
    batcher = CountingBatcher(client.connection_pool, client.register_script(ECHO), timeout_s=2.0)
    upper = client.register_script("return string.upper(ARGV[1])")
    await client.script_flush()  # neither script is known to the server
    futures = [batcher.submit([], ["own"]), batcher.submit([], ["other"], script=upper), batcher.submit([], ["again"])]
    assert await asyncio.gather(*futures) == ["own", "OTHER", "again"]
    assert batcher.sends == 1, "submitted in one turn of the loop: one batch"
    assert await client.script_exists(batcher._script.sha, upper.sha) == [True, True]
    await batcher.aclose()


async def test_closing_before_the_sender_starts_cancels_what_is_queued(client: aioredis.Redis) -> None:
    batcher = ScriptBatcher(client.connection_pool, client.register_script(ECHO), timeout_s=5.0)
    queued = batcher([], ["queued"])
    await batcher.aclose()  # in the same turn: the sender's task never ran
    assert queued.cancelled()
