"""Coalescing concurrent calls of Lua scripts into pipelines on one connection of their own.

Under load many requests reach the same script within one turn of the event loop. Sent one by one,
each costs a write, a read and redis-py's per-command bookkeeping (a pooled connection taken and given
back under a lock, retries, observability hooks); even redis-py's own pipeline asks ``SCRIPT EXISTS``
before every batch, a second round trip. Here the calls queue while the previous batch is on the wire and
go as one packed write of ``EVALSHA`` commands on a connection the batcher keeps; a script the server
does not know (``NOSCRIPT``: a restarted or flushed Redis) is loaded and its calls sent again.

A lone call waits for nothing but the loop turn that starts the sender. A busy batcher's batch waits a
millisecond before it goes (:data:`LINGER_S`): heartbeats that come one by one, as a fleet sends them,
would otherwise go one to a batch, each paying a whole round trip (a write, a read, a wake-up of the
loop), which a replica near its limit cannot afford. Each call has a deadline (``timeout_s`` after it
was made) and a batch is given up at the earliest deadline among its calls, so no caller waits longer
than its own deadline, with one timer per batch rather than one per call; a deadline that passes while
the loop itself is stopped gives back that time, up to one more timeout (:class:`LoopDeadline`). Every
failure of the connection disconnects it (the next batch reconnects, through Sentinel to the current
master) and fails the calls of that batch with it; a reply that is a Redis error fails its caller only.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from typing import Any

from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

from registry_server.store.deadline import LoopDeadline

LINGER_S = 0.001
"""How long a batch waits for more calls when the batcher is busy: a few calls a batch at a thousand a
second, at a cost no heartbeat notices."""
BUSY_S = 0.005
"""The batcher is busy when its last batch went less than this long ago."""

_Call = tuple[AsyncScript, tuple[Any, ...], "asyncio.Future[Any]", float]
"""The script, the command, its caller's future, its deadline (loop time)."""


def _settle(future: asyncio.Future[Any], result: Any) -> None:
    if future.done():  # its caller gave up (timeout, cancellation): nobody waits for the answer
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


class ScriptBatcher:
    def __init__(self, pool: ConnectionPool, script: AsyncScript, *, timeout_s: float,
                 max_batch: int = 256, linger_s: float = LINGER_S, busy_s: float = BUSY_S) -> None:
        self._pool = pool
        self._script = script
        self._timeout_s = timeout_s
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._busy_s = busy_s
        self._sent_at = -math.inf
        """When the last batch went (loop time)."""
        self._pending: list[_Call] = []
        self._sender: asyncio.Task[None] | None = None
        self._conn: AbstractConnection | None = None
        self._late = False
        """The batch on the wire ran out of time (its timer cancelled the sender)."""

    def __repr__(self) -> str:
        return f"ScriptBatcher(pending={len(self._pending)}, sending={self._sender is not None})"

    def __call__(self, keys: list[Any], args: list[Any]) -> asyncio.Future[Any]:
        """The script's reply, to await; :class:`TimeoutError` when it is not there within ``timeout_s``.
        (The future itself, not a coroutine awaiting it: no coroutine of its own for every call.)"""
        return self.submit(keys, args)

    def submit(self, keys: list[Any], args: list[Any], *, script: AsyncScript | None = None) -> asyncio.Future[Any]:
        """Queue a call of ``script`` (by default the batcher's own) and return its future at once: calls
        submitted before the loop's next turn go in one write."""
        script = script or self._script
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((script, ("EVALSHA", script.sha, len(keys), *keys, *args), future,
                              loop.time() + self._timeout_s))
        if self._sender is None:
            self._sender = loop.create_task(self._drain())
        return future

    async def _drain(self) -> None:
        batch: list[_Call] = []
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        give_up = functools.partial(self._give_up, task)
        try:
            while self._pending:
                if loop.time() - self._sent_at < self._busy_s:
                    await self._linger()
                self._sent_at = loop.time()
                batch = self._pending[:self._max_batch]
                del self._pending[:len(batch)]
                # The first call's deadline is the earliest (calls queue in order, each given timeout_s). One
                # timer that cancels this task, not asyncio.timeout_at: on every batch, its context manager
                # costs as much as the rest of a lone heartbeat's batch.
                self._late = False
                deadline = LoopDeadline(loop, batch[0][3], self._timeout_s, give_up)
                try:
                    replies = await self._send(batch)
                except asyncio.CancelledError:
                    if not self._late or task.uncancel() > 0:
                        raise  # cancelled from outside (too)
                    for _script, _command, future, _deadline in batch:
                        _settle(future, TimeoutError())
                    continue
                except Exception as exc:  # the connection failed: every call in the batch fails
                    for _script, _command, future, _deadline in batch:
                        _settle(future, exc)
                    continue
                finally:
                    deadline.cancel()
                for (_script, _command, future, _deadline), reply in zip(batch, replies, strict=True):
                    _settle(future, reply)
        except asyncio.CancelledError:  # closing: aclose cancels what is still queued
            for _script, _command, future, _deadline in batch:
                future.cancel()
            raise
        finally:
            self._sender = None

    async def _linger(self) -> None:
        """Let more calls join the batch about to go."""
        await asyncio.sleep(self._linger_s)

    def _give_up(self, task: asyncio.Task[None]) -> None:
        """The batch on the wire has run out of time: cancel its exchange (which disconnects)."""
        self._late = True
        task.cancel()

    async def _send(self, batch: list[_Call]) -> list[Any]:
        replies = await self._exchange([command for _script, command, _future, _deadline in batch])
        again = [n for n, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if again:
            for script in {id(batch[n][0]): batch[n][0] for n in again}.values():
                await self._load_script(script)
            for n, reply in zip(again, await self._exchange([batch[n][1] for n in again]), strict=True):
                replies[n] = reply
        return replies

    async def _exchange(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """One write of every command, then their replies in order (a Redis error reply as its exception)."""
        if self._conn is None:
            self._conn = self._pool.make_connection()  # type: ignore[no-untyped-call]
            # No socket timeout of its own: the batch's deadline bounds the whole exchange, and with one,
            # redis-py wraps every write in asyncio.wait_for (a task and a timer more on every batch).
            self._conn.socket_timeout = None
        conn = self._conn
        try:
            if not conn.is_connected:
                await conn.connect()  # the connection's own connect: through Sentinel, to the current master
            await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
            replies: list[Any] = []
            for _command in commands:
                try:  # no timer per reply: the batch's deadline bounds the whole exchange
                    replies.append(await conn.read_response(timeout=math.inf))
                except ResponseError as exc:
                    replies.append(exc)
            return replies
        except BaseException:  # a half-read batch leaves the stream out of step: start afresh
            await conn.disconnect(nowait=True)
            raise

    async def _load_script(self, script: AsyncScript) -> None:
        (reply,) = await self._exchange([("SCRIPT", "LOAD", script.script)])
        if isinstance(reply, BaseException):
            raise reply
        script.sha = str(reply)

    async def aclose(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        # Queued calls are cancelled here, not by the sender: one cancelled before its first step never runs.
        for _script, _command, future, _deadline in self._pending:
            future.cancel()
        self._pending = []
        if self._conn is not None:
            await self._conn.disconnect()
            self._conn = None
