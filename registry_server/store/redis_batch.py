"""Coalescing concurrent calls of one Lua script into pipelines.

Under load many requests reach the same script within one turn of the event loop. Sent one by one,
each costs a write, a read and redis-py's per-command bookkeeping; queued for the end of the turn and
sent as one pipeline, they share them. A lone call waits one loop turn more, nothing else.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

_Call = tuple[list[Any], list[Any], "asyncio.Future[Any]"]


def _settle(future: asyncio.Future[Any], result: Any) -> None:
    if future.done():  # its caller gave up (timeout, cancellation): nobody waits for the answer
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


class ScriptBatcher:
    def __init__(self, client: aioredis.Redis, script: AsyncScript, *, max_batch: int = 256) -> None:
        self._client = client
        self._script = script
        self._max_batch = max_batch
        self._pending: list[_Call] = []
        self._sending: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"ScriptBatcher(pending={len(self._pending)}, in_flight={len(self._sending)})"

    async def __call__(self, keys: list[Any], args: list[Any]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((keys, args, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        elif len(self._pending) >= self._max_batch:
            self._flush()
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        task = asyncio.ensure_future(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Call]) -> None:
        try:
            if len(batch) == 1:
                keys, args, future = batch[0]
                _settle(future, await self._script(keys=keys, args=args))
                return
            async with self._client.pipeline(transaction=False) as pipe:
                for keys, args, _future in batch:
                    await self._script(keys=keys, args=args, client=pipe)
                results = await pipe.execute(raise_on_error=False)
        except asyncio.CancelledError:
            for _keys, _args, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # the connection failed: every call in the batch fails with it
            for _keys, _args, future in batch:
                _settle(future, exc)
            return
        for (_keys, _args, future), result in zip(batch, results, strict=True):
            _settle(future, result)

    async def aclose(self) -> None:
        for task in list(self._sending):
            task.cancel()
        await asyncio.gather(*self._sending, return_exceptions=True)
