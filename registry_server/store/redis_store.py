"""The Redis store: every write is one Lua script (one round trip, atomic, safe with many replicas)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Any, TypeVar

import hiredis
import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript

from registry_server.errors import InstanceConflictError, LeaseTokenError, StoreError, StoreUnavailableError
from registry_server.model import (
    ChangeEvent,
    EventType,
    Instance,
    RegisterResult,
    Registration,
    ServiceSummary,
    ServiceView,
    Status,
    event_id_order,
)
from registry_server.store.keys import KeyLayout
from registry_server.store.redis_url import RedisMode, RedisTarget

T = TypeVar("T")

_UNAVAILABLE = (rexc.ConnectionError, rexc.TimeoutError, rexc.BusyLoadingError, rexc.ReadOnlyError,
                rexc.TryAgainError, TimeoutError, OSError)
_NAME_CACHE_LIMIT = 200_000


def _script_source(name: str) -> str:
    return resources.files("registry_server.store").joinpath("lua", f"{name}.lua").read_text()


class _HiredisPackingConnection(aioredis.Connection):
    """Packs commands with hiredis (C) instead of redis-py's pure-Python packer: on a heartbeat's
    ten-argument EVALSHA this is most of redis-py's own CPU time."""

    def pack_command(self, *args: Any) -> list[bytes]:
        head = args[0]
        if isinstance(head, str) and " " in head:  # e.g. "SCRIPT LOAD": the server wants separate words
            args = (*head.split(), *args[1:])
        return [hiredis.pack_command(args)]


def connect(target: RedisTarget, *, max_connections: int = 512, timeout_s: float = 1.0) -> aioredis.Redis:
    """A client for ``target`` with bounded waits: a slow or dead Redis fails fast instead of hanging.

    The pool does not block for a free connection (redis-py's blocking pool costs ~80 us per command in
    its condition variable); it is sized well above the concurrency one replica serves, and running out
    answers 503 at once rather than queueing.
    """
    common: dict[str, Any] = {"decode_responses": True, "socket_timeout": timeout_s,
                              "socket_connect_timeout": timeout_s, "retry": Retry(NoBackoff(), 1),
                              "health_check_interval": 0}
    if target.mode is RedisMode.STANDALONE:
        if target.url.startswith("redis://"):
            common["connection_class"] = _HiredisPackingConnection
        pool = aioredis.ConnectionPool.from_url(target.url, max_connections=max_connections, **common)
        return aioredis.Redis(connection_pool=pool)
    if target.mode is RedisMode.SENTINEL:
        from redis.asyncio.sentinel import Sentinel

        sentinel_options = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s,
                            "password": target.password}
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(target.nodes), sentinel_kwargs=sentinel_options, **common)
        master: aioredis.Redis = sentinel.master_for(target.master_name, db=target.db,
                                                     password=target.password,
                                                     max_connections=max_connections)
        return master
    raise StoreError("connect", "Redis Cluster is not supported yet: its cross-slot indexes arrive with "
                                "the scale-out work; use standalone or Sentinel")


def _event(entry_id: str, fields: dict[str, str]) -> ChangeEvent:
    inst = Instance.from_document(fields["id"], json.loads(fields["doc"]), fields["status"], int(fields["reg"]),
                                  int(fields["hb"]), int(fields["exp"]))
    return ChangeEvent(entry_id, EventType(fields["type"]), fields["service"], int(fields["rev"]), inst)


def _presented(lease_token_hash: str | None) -> str:
    return "*" if lease_token_hash is None else lease_token_hash


def _owned(instance_id: str, row: Sequence[Any]) -> Sequence[Any]:
    if row[0] == "forbidden":
        raise LeaseTokenError(instance_id)
    return row


def _instance(instance_id: str, row: Sequence[Any]) -> Instance:
    doc, status, reg, hb, exp = row[:5]
    return Instance.from_document(instance_id, json.loads(doc), status, int(reg), int(hb), int(exp))


class RedisStore:
    """Instances in Redis, laid out by :class:`KeyLayout`."""

    kind = "redis"

    def __init__(self, client: aioredis.Redis, *, layout: KeyLayout | None = None,
                 op_timeout_s: float = 1.5, event_history: int = 10_000) -> None:
        self._client = client
        self._event_history = event_history
        self._keys = layout or KeyLayout()
        self._op_timeout_s = op_timeout_s
        self._names: dict[str, str] = {}
        self._register = self._script("register")
        self._heartbeat = self._script("heartbeat")
        self._deregister = self._script("deregister")
        self._expire = self._script("expire")
        self._list = self._script("list")
        self._summary = self._script("summary")
        self._extend = self._script("extend")

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self._keys.prefix!r})"

    def _script(self, name: str) -> AsyncScript:
        return self._client.register_script(_script_source(name))

    async def _run(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self._op_timeout_s):
                return await call()
        except _UNAVAILABLE as exc:
            raise StoreUnavailableError(operation, str(exc) or type(exc).__name__) from exc
        except rexc.RedisError as exc:
            raise StoreError(operation, str(exc)) from exc

    def _remember(self, instance_id: str, name: str) -> None:
        if len(self._names) >= _NAME_CACHE_LIMIT:
            self._names.clear()
        self._names[instance_id] = name

    async def _owner(self, instance_id: str) -> str | None:
        raw = await self._client.hget(self._keys.ids, instance_id)
        name = None if raw is None else str(raw)
        if name is None:
            self._names.pop(instance_id, None)
        else:
            self._remember(instance_id, name)
        return name

    async def _by_id(self, instance_id: str, call: Callable[[str], Awaitable[T | None]]) -> T | None:
        """Run ``call(name)`` for the service owning ``instance_id``.

        The id's service name is cached: ids keep their name while registered, so in steady state a
        heartbeat costs one round trip. A miss through a cached name re-checks ownership once, in case
        the id was deregistered and registered again under another name.
        """
        cached = self._names.get(instance_id)
        name = cached or await self._owner(instance_id)
        if name is None:
            return None
        result = await call(name)
        if result is None and cached is not None:
            fresh = await self._owner(instance_id)
            if fresh is not None and fresh != cached:
                result = await call(fresh)
        return result

    async def register(self, registration: Registration, now_ms: int, ttl_ms: int, *,
                       lease_token_hash: str | None = None) -> RegisterResult:
        name, iid, k = registration.name, registration.id, self._keys
        doc = json.dumps(registration.document(), separators=(",", ":"), sort_keys=True)

        async def call() -> Any:
            return await self._register(
                keys=[k.ids, k.services, k.instance(name, iid), k.leases(name), k.revision(name),
                      k.counts(name), k.events],
                args=[iid, name, doc, registration.status.value, now_ms, now_ms + ttl_ms,
                      registration.lease_token_hash, self._event_history, _presented(lease_token_hash)])

        reply = await self._run("register", call)
        if reply[0] == "conflict":
            raise InstanceConflictError(iid, reply[1])
        if reply[0] == "forbidden":
            raise LeaseTokenError(iid)
        _, created, expired, registered_at, revision = reply
        self._remember(iid, name)
        inst = Instance.from_document(iid, registration.document(), registration.status, int(registered_at),
                                      now_ms, now_ms + ttl_ms)
        return RegisterResult(inst, bool(created), int(revision), bool(expired))

    async def heartbeat(self, instance_id: str, status: Status | None, now_ms: int, ttl_ms: int, *,
                        lease_token_hash: str | None = None) -> Instance | None:
        k = self._keys

        async def renew(name: str) -> Instance | None:
            row = await self._heartbeat(
                keys=[k.instance(name, instance_id), k.leases(name), k.revision(name), k.counts(name), k.events],
                args=[instance_id, now_ms, now_ms + ttl_ms, status.value if status else "", name,
                      self._event_history, _presented(lease_token_hash)])
            return None if row is None else _instance(instance_id, _owned(instance_id, row))

        return await self._run("heartbeat", lambda: self._by_id(instance_id, renew))

    async def deregister(self, instance_id: str, now_ms: int, *,
                         lease_token_hash: str | None = None) -> Instance | None:
        k = self._keys

        async def remove(name: str) -> Instance | None:
            row = await self._deregister(
                keys=[k.ids, k.services, k.instance(name, instance_id), k.leases(name), k.revision(name),
                      k.counts(name), k.events],
                args=[instance_id, name, now_ms, self._event_history, _presented(lease_token_hash)])
            return None if row is None else _instance(instance_id, _owned(instance_id, row))

        found = await self._run("deregister", lambda: self._by_id(instance_id, remove))
        if found is not None:
            self._names.pop(instance_id, None)
        return found

    async def get(self, instance_id: str, now_ms: int) -> Instance | None:
        async def read(name: str) -> Instance | None:
            row = await self._client.hmget(self._keys.instance(name, instance_id),
                                           ["doc", "status", "reg", "hb", "exp"])
            if row[0] is None or int(row[4] or 0) <= now_ms:
                return None
            return _instance(instance_id, row)

        return await self._run("get", lambda: self._by_id(instance_id, read))

    def _list_call(self, name: str, now_ms: int, client: Any = None) -> Any:
        k = self._keys
        return self._list(keys=[k.leases(name), k.revision(name)], args=[now_ms, k.instance_prefix(name)],
                          client=client)

    @staticmethod
    def _view(name: str, reply: Sequence[Any]) -> ServiceView:
        rows = [_instance(reply[i], reply[i + 1:i + 6]) for i in range(1, len(reply), 6)]
        rows.sort(key=lambda inst: inst.id)
        return ServiceView(name, int(reply[0]), rows)

    async def service(self, name: str, now_ms: int) -> ServiceView:
        reply = await self._run("service", lambda: self._list_call(name, now_ms))
        return self._view(name, reply)

    async def _names_of_services(self) -> list[str]:
        names = await self._client.hkeys(self._keys.services)
        return sorted(str(name) for name in names)

    async def _per_service(self, operation: str,
                           queue: Callable[[str, Any], Awaitable[Any]]) -> list[tuple[str, Any]]:
        """One pipelined script call per known service: two round trips in all."""

        async def call() -> list[tuple[str, Any]]:
            names = await self._names_of_services()
            if not names:
                return []
            async with self._client.pipeline(transaction=False) as pipe:
                for name in names:
                    await queue(name, pipe)  # queues the EVALSHA; the pipeline loads missing scripts
                replies = await pipe.execute()
            return list(zip(names, replies, strict=True))

        return await self._run(operation, call)

    async def all_instances(self, now_ms: int) -> list[Instance]:
        replies = await self._per_service("all_instances",
                                          lambda name, pipe: self._list_call(name, now_ms, pipe))
        out = [inst for name, reply in replies for inst in self._view(name, reply).instances]
        out.sort(key=lambda inst: inst.id)
        return out

    async def services(self, now_ms: int) -> list[ServiceSummary]:
        k = self._keys
        replies = await self._per_service("services", lambda name, pipe: self._summary(
            keys=[k.leases(name), k.counts(name)], args=[now_ms, k.instance_prefix(name)], client=pipe))
        out = []
        for name, (live, flat_counts, stale) in replies:
            if int(live) <= 0:
                continue
            counts = {flat_counts[i]: int(flat_counts[i + 1]) for i in range(0, len(flat_counts), 2)}
            for status in stale:
                if status in counts:
                    counts[status] -= 1
            statuses = {s: n for s, n in sorted(counts.items()) if n > 0}
            out.append(ServiceSummary(name, int(live), statuses))
        return out

    async def expire(self, now_ms: int, limit: int) -> list[Instance]:
        k = self._keys
        replies = await self._per_service("expire", lambda name, pipe: self._expire(
            keys=[k.ids, k.services, k.leases(name), k.revision(name), k.counts(name), k.events],
            args=[name, now_ms, limit, k.instance_prefix(name), self._event_history], client=pipe))
        removed = []
        for _name, flat in replies:
            for i in range(0, len(flat), 6):
                self._names.pop(flat[i], None)
                removed.append(_instance(flat[i], flat[i + 1:i + 6]))
        return removed

    async def extend_leases(self, since_ms: int, until_ms: int) -> int:
        k = self._keys
        replies = await self._per_service("extend", lambda name, pipe: self._extend(
            keys=[k.leases(name)], args=[since_ms, until_ms, k.instance_prefix(name)], client=pipe))
        return sum(int(n) for _name, n in replies)

    async def revision(self, name: str) -> int:
        value = await self._run("revision", lambda: self._client.get(self._keys.revision(name)))
        return int(value or 0)

    async def last_event_id(self) -> str:
        newest = await self._run("events", lambda: self._client.xrevrange(self._keys.events, count=1))
        return str(newest[0][0]) if newest else "0-0"

    async def read_events(self, after: str, *, block_s: float, count: int = 500) -> list[ChangeEvent]:
        block_ms = max(0, round(block_s * 1000))
        reply: Any = await self._run("events", lambda: self._client.xread(
            {self._keys.events: after}, count=count, block=block_ms or None))
        if not reply:
            return []
        [(_key, entries)] = reply  # RESP2: [[stream key, [(id, fields), ...]]]
        return [_event(str(entry_id), fields) for entry_id, fields in entries]

    async def history_complete(self, after: str) -> bool:
        async def info() -> dict[str, Any]:
            try:
                data: dict[str, Any] = await self._client.xinfo_stream(self._keys.events)
            except rexc.ResponseError:  # no stream yet: nothing was ever recorded or trimmed
                return {}
            return data

        data = await self._run("events", info)
        if not data:
            return after == "0-0"
        position = event_id_order(after)
        if position > event_id_order(str(data["last-generated-id"])):
            return False  # an id from another history: the stream was reset (e.g. Redis restarted empty)
        trimmed = int(data["entries-added"]) - int(data["length"])
        first = data.get("first-entry")
        # Conservative: once anything was trimmed, only ids from the held entries on count as complete.
        return trimmed == 0 or (first is not None and position >= event_id_order(str(first[0])))

    async def ping(self) -> None:
        await self._run("ping", self._client.ping)

    async def close(self) -> None:
        await self._client.aclose()
        pool = getattr(self._client, "connection_pool", None)
        if pool is not None:
            await pool.disconnect()
