"""The Redis store, for standalone Redis, Sentinel and Cluster alike.

Every change to a service is one Lua script on the service's keys (one hash tag, one Cluster slot):
atomic, one round trip, safe with any number of replicas. The keys that span services — an instance
id's owner, the index of services — are touched on their own, always before the instance: an id is
claimed and its service indexed before its instance is written, and the id released after the instance is
removed (a claim left behind by a crash is taken over, see :meth:`RedisStore._claim_id`).

A service found without instances (by a sweep, or by the deregistration of its last one) is set aside:
moved from the index that sweeps and listings visit to an index of idle services sorted by when they
became idle (:meth:`RedisStore._set_aside`). An idle name so costs nothing until
:meth:`RedisStore.drop_idle` finds it, by its time, after the retention period; its revisions then go on
above the store's revision floor when it comes back.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from importlib import resources
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

from registry_server.errors import InstanceConflictError, LeaseTokenError, StoreError, StoreUnavailableError
from registry_server.model import (
    DOCUMENT_DEFAULTS,
    ChangeEvent,
    ChangeNotice,
    EventType,
    Expired,
    Health,
    HealthRecord,
    HealthStatus,
    Instance,
    InstanceRegistration,
    InstanceStatus,
    RegisterResult,
    Renewal,
    ServiceSnapshot,
    ServiceSummary,
    compact_document,
    event_id_order,
)
from registry_server.store.deadline import LoopDeadline
from registry_server.store.documents import DocumentDecoder, UndecodableDocumentError
from registry_server.store.keys import KeyLayout
from registry_server.store.redis_batch import ScriptBatcher
from registry_server.store.redis_connect import connect

__all__ = ["RedisStore", "connect"]

T = TypeVar("T")
log = logging.getLogger("registry_server.store")

_UNAVAILABLE = (rexc.ConnectionError, rexc.TimeoutError, rexc.BusyLoadingError, rexc.ReadOnlyError,
                rexc.TryAgainError, rexc.ClusterDownError, rexc.MasterDownError, TimeoutError, OSError)
_NAME_CACHE_LIMIT = 200_000
_NAME_CACHE_BYTES = 16 * 1024 * 1024
_SERVICE_KEYS_CACHED = 4096
"""Services whose heartbeat keys are kept built (the most recently used)."""
STREAM_BYTES = 1024 * 1024
"""A service's event stream keeps about this many bytes of events (see lua/_emit.lua, which holds the
number): each event trims it to at least 16 and at most ``event_history`` events of its own size."""
_SERVICES_PER_ROUND = 25
_EXPIRE_SERVICES_PER_ROUND = 10
_EXPIRE_PER_CALL = 8
"""A round removes at most 10 x 8 instances: about 3 ms of Redis's time (every heartbeat waits behind it).
Measured against 25 x 8 and 15 x 8 (bench_scale --parts expiry): as fast a sweep, p99 moved 1.2x not 1.7x."""
_EMIT = resources.files("registry_server.store").joinpath("lua", "_emit.lua").read_text()
_CHANGE_SCRIPTS = {"register", "heartbeat", "deregister", "expire", "record_health"}


def _script_source(name: str) -> str:
    source = resources.files("registry_server.store").joinpath("lua", f"{name}.lua").read_text()
    return _EMIT + source if name in _CHANGE_SCRIPTS else source


def _event_id(stream_id: str, service: str) -> str:
    return f"{stream_id}/{service}"


def _event(documents: DocumentDecoder, stream_id: str, fields: dict[str, Any]) -> ChangeEvent:
    """An event as recorded (a stream entry) or announced (its JSON); a checked instance's carries its health."""
    inst = Instance.from_document(str(fields["id"]), documents.decode(fields["doc"]), str(fields["status"]),
                                  int(fields["reg"]), int(fields["hb"]), int(fields["exp"]),
                                  _health(fields.get("hs"), fields.get("hat"), fields.get("hout")))
    service = str(fields["service"])
    return ChangeEvent(_event_id(stream_id, service), EventType(fields["type"]), service, int(fields["rev"]), inst)


def _unreleased(count: int, error: BaseException) -> None:
    log.warning("could not release %d expired ids (%s); they are taken over when registered again", count, error)


def _presented(lease_token_hash: str | None) -> str:
    return "*" if lease_token_hash is None else lease_token_hash


def _owned(instance_id: str, row: Sequence[Any]) -> Sequence[Any]:
    if row[0] == "forbidden":
        raise LeaseTokenError(instance_id)
    return row


_UNCHECKED = Health()
_HEALTH_STATUSES = {status.value: status for status in HealthStatus}
"""By stored value: a dict read, where ``HealthStatus(value)`` is an enum call on every checked heartbeat."""
_INSTANCE_FIELDS = ["doc", "status", "reg", "hb", "exp", "hs", "hat", "hout"]
"""An instance's fields as :func:`_instance` reads them."""


def _health(status: Any, checked_at: Any, output: Any) -> Health:
    """The stored health fields (empty or missing: never checked)."""
    if not status:
        return _UNCHECKED
    return Health(_HEALTH_STATUSES[status], int(checked_at) if checked_at else None, str(output or ""))


def _instance(documents: DocumentDecoder, instance_id: str, row: Sequence[Any], health_at: int = 5) -> Instance:
    """The instance of a script's row: its :data:`_INSTANCE_FIELDS`, the health fields from ``health_at``."""
    doc, status, reg, hb, exp = row[:5]
    health = _health(*row[health_at:health_at + 3]) if len(row) >= health_at + 3 else _UNCHECKED
    return Instance.from_document(instance_id, documents.decode(doc), status, int(reg), int(hb), int(exp), health)


class RedisStore:
    """Instances in Redis, laid out by :class:`KeyLayout`."""

    kind = "redis"

    def __init__(self, client: aioredis.Redis | RedisCluster, *, layout: KeyLayout | None = None,
                 op_timeout_s: float = 1.5, event_history: int = 500) -> None:
        self._client = client
        self._cluster = isinstance(client, RedisCluster)
        self._keys = layout or KeyLayout()
        self._op_timeout_s = op_timeout_s
        self._event_history = event_history
        """Events kept per service at most (fewer when they are large: see lua/_emit.lua)."""
        self._names: dict[str, str] = {}
        self._names_bytes = 0
        self._documents = DocumentDecoder()
        self._heartbeat_keys = functools.lru_cache(maxsize=_SERVICE_KEYS_CACHED)(self._service_keys)
        self._epoch_set = False
        self.next_expiry_ms: int | None = None
        self._register = self._script("register")
        self._heartbeat = self._script("heartbeat")
        self._deregister = self._script("deregister")
        self._expire = self._script("expire")
        self._list = self._script("list")
        self._summary = self._script("summary")
        self._extend = self._script("extend")
        self._fleet_mark = self._script("fleet_mark")
        self._claim = self._script("claim")
        self._release = self._script("release")
        self._release_many = self._script("release_many")
        self._record_health = self._script("record_health")
        self._claim_checks = self._script("claim_checks")
        self._drop = self._script("drop")
        self._raise_floor = self._script("raise_floor")
        self._set_idle = self._script("set_idle")
        self._unidle = self._script("unidle")
        self._floor: int | None = None
        """The store's revision floor as last read (``None``: not yet); read again by each
        :meth:`drop_idle`, so it is never older than a retired marker's lifetime."""
        # The hot path: concurrent heartbeats share pipelines (a Cluster spreads them over nodes instead).
        self._heartbeat_batch = (None if isinstance(client, RedisCluster)
                                 else ScriptBatcher(client.connection_pool, self._heartbeat, timeout_s=op_timeout_s))
        # The sweep's own connection: a round of expiries is one write, sent behind no heartbeat batch.
        self._sweep_batch = (None if isinstance(client, RedisCluster)
                             else ScriptBatcher(client.connection_pool, self._expire, timeout_s=op_timeout_s))
        # The checks' own connection: the outcomes of checks finishing together go as one write.
        self._health_batch = (None if isinstance(client, RedisCluster)
                              else ScriptBatcher(client.connection_pool, self._record_health, timeout_s=op_timeout_s))

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self._keys.prefix!r}, cluster={self._cluster})"

    def _script(self, name: str) -> AsyncScript:
        return self._client.register_script(_script_source(name))

    async def _run(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``, given ``op_timeout_s`` of the loop's running time (:class:`LoopDeadline`)."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(None) as scope:
                deadline = LoopDeadline(loop, loop.time() + self._op_timeout_s, self._op_timeout_s,
                                        lambda: scope.reschedule(loop.time()))
                try:
                    return await call()
                finally:
                    deadline.cancel()
        except (*_UNAVAILABLE, rexc.RedisError) as exc:
            raise self._store_error(operation, exc) from exc

    def _store_error(self, operation: str, exc: BaseException) -> StoreError:
        """Redis's exception as the store's: unavailable (503, protection) or failed."""
        if isinstance(exc, _UNAVAILABLE):
            self._epoch_set = False  # it may come back empty: record the new history's start again
            return StoreUnavailableError(operation, str(exc) or type(exc).__name__)
        return StoreError(operation, str(exc))

    # -- instance ids and their services ------------------------------------------------------------

    def _remember(self, instance_id: str, name: str) -> None:
        if len(self._names) >= _NAME_CACHE_LIMIT or self._names_bytes >= _NAME_CACHE_BYTES:
            self._names.clear()
            self._names_bytes = 0
        if instance_id not in self._names:
            self._names_bytes += len(instance_id) + len(name)
        self._names[instance_id] = name

    async def _owner(self, instance_id: str) -> str | None:
        raw = await self._client.get(self._keys.owner(instance_id))
        if raw is None:
            self._names.pop(instance_id, None)
            return None
        name = str(raw)
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
            return await self._recheck(instance_id, cached, call)
        return result

    async def _recheck(self, instance_id: str, cached: str, call: Callable[[str], Awaitable[T | None]]) -> T | None:
        """After a miss under the cached name: ``call`` again if the id is now owned by another service."""
        fresh = await self._owner(instance_id)
        if fresh is not None and fresh != cached:
            return await call(fresh)
        return None

    async def _live_under(self, name: str, instance_id: str, now_ms: int) -> bool:
        expiry = await self._client.hget(self._keys.instance(name, instance_id), "exp")
        return expiry is not None and int(expiry) > now_ms

    async def _claim_id(self, instance_id: str, name: str, now_ms: int) -> None:
        """Own ``instance_id`` for ``name``; :class:`InstanceConflictError` if a live instance of another
        service holds it. A claim left behind by an instance that is gone (expired, or a registry that
        died between its two steps) is taken over."""
        key = self._keys.owner(instance_id)
        other = await self._claim(keys=[key], args=[name, ""])
        if other is None:
            return
        if await self._live_under(str(other), instance_id, now_ms):
            raise InstanceConflictError(instance_id, str(other))
        still = await self._claim(keys=[key], args=[name, str(other)])  # compare-and-set over the dead one
        if still is not None:
            raise InstanceConflictError(instance_id, str(still))

    # -- changes ------------------------------------------------------------------------------------

    async def register(self, registration: InstanceRegistration, now_ms: int, ttl_ms: int, *,
                       lease_token_hash: str | None = None) -> RegisterResult:
        name, iid, k = registration.name, registration.id, self._keys
        doc = compact_document(registration.document())

        async def call() -> Any:
            if not self._epoch_set:
                await self._epoch_ms()  # the history's start is recorded before its first event
            if self._names.get(iid) != name:
                await self._claim_id(iid, name, now_ms)
            # The name is indexed before the instance is written, every time: a registry killed between
            # the two steps leaves at worst an indexed service with no instance, never an instance that
            # no listing or sweep can see; and a retried registration repairs what an older version left.
            await self._client.sadd(k.services, name)
            floor = self._floor if self._floor is not None else await self._read_floor()
            reply = await self._register(
                keys=[k.instance(name, iid), k.leases(name), k.revision(name), k.counts(name), k.events(name),
                      k.retired(name), k.idle_mark(name)],
                args=[iid, name, doc, registration.status.value, now_ms, now_ms + ttl_ms,
                      registration.lease_token_hash, self._event_history, _presented(lease_token_hash), k.channel,
                      floor])
            if reply[0] != "forbidden" and int(reply[5]):
                # The service was (re)created or idle: a drop_idle or _set_aside that ran meanwhile may have
                # unindexed it.
                await self._client.sadd(k.services, name)
            return reply

        reply = await self._run("register", call)
        if reply[0] == "forbidden":
            raise LeaseTokenError(iid)
        _, created, expired, registered_at, revision, _fresh, status, *health = reply
        self._remember(iid, name)
        inst = Instance.from_document(iid, registration.document(), str(status), int(registered_at),
                                      now_ms, now_ms + ttl_ms, _health(*health))
        return RegisterResult(inst, bool(created), int(revision), bool(expired))

    async def heartbeat(self, instance_id: str, status: InstanceStatus | None, now_ms: int, ttl_ms: int, *,
                        lease_token_hash: str | None = None) -> Renewal | None:
        presented = _presented(lease_token_hash)

        def call(name: str) -> tuple[list[Any], list[Any]]:
            instance_prefix, leases, revision, counts, events, channel = self._heartbeat_keys(name)
            return ([instance_prefix + instance_id, leases, revision, counts, events],
                    [instance_id, now_ms, now_ms + ttl_ms, status or "", name, self._event_history,  # a StrEnum: a str
                     presented, channel])

        async def renew(name: str) -> Renewal | None:
            keys, args = call(name)
            if self._heartbeat_batch is not None:
                return self._renewal(instance_id, await self._heartbeat_batch(keys, args))
            return self._renewal(instance_id, await self._heartbeat(keys=keys, args=args))

        batch = self._heartbeat_batch
        cached = self._names.get(instance_id) if batch is not None else None
        if cached is None or batch is None:
            return await self._run("heartbeat", lambda: self._by_id(instance_id, renew))
        # The steady state, one batched round trip: the batcher bounds the wait itself (one timer per batch),
        # awaited here rather than through ``renew``: no coroutine more on every heartbeat.
        try:
            renewal = self._renewal(instance_id, await batch(*call(cached)))
        except (*_UNAVAILABLE, rexc.RedisError) as exc:
            raise self._store_error("heartbeat", exc) from exc
        if renewal is not None:
            return renewal
        return await self._run("heartbeat", lambda: self._recheck(instance_id, cached, renew))

    def _service_keys(self, name: str) -> tuple[str, str, str, str, str, str]:
        """The keys a heartbeat of ``name`` names besides its instance's (and the instance's prefix): built
        once per service, not by seven calls on every heartbeat (see ``_heartbeat_keys``)."""
        k = self._keys
        return k.instance_prefix(name), k.leases(name), k.revision(name), k.counts(name), k.events(name), k.channel

    def _renewal(self, instance_id: str, row: Any) -> Renewal | None:
        """The heartbeat script's reply as the renewal (``None``: no such instance in that service)."""
        if row is None:
            return None
        row = _owned(instance_id, row)
        try:
            return Renewal(_instance(self._documents, instance_id, row, health_at=6), row[5] == 1)
        except UndecodableDocumentError as exc:
            # Answered as unknown (404): the owner registers again, and its registration replaces the
            # document that no reader can use.
            self._documents.skipped(f"instance {instance_id!r}", exc)
            return None

    async def deregister(self, instance_id: str, now_ms: int, *,
                         lease_token_hash: str | None = None) -> Instance | None:
        k = self._keys

        async def remove(name: str) -> Instance | None:
            row = await self._deregister(
                keys=[k.instance(name, instance_id), k.leases(name), k.revision(name), k.counts(name),
                      k.events(name)],
                args=[instance_id, name, now_ms, self._event_history, _presented(lease_token_hash), k.channel])
            if row is None:
                return None
            inst = self._removed(name, instance_id, _owned(instance_id, row)[:5])
            await self._release(keys=[k.owner(instance_id)], args=[name])
            if int(row[5]) == 0:
                try:
                    await self._set_aside([name], now_ms)
                except StoreError as exc:  # the instance is gone all the same: a sweep sets the service aside
                    log.warning("could not set service %r aside as idle (%s); a sweep will", name, exc)
            return inst

        found = await self._run("deregister", lambda: self._by_id(instance_id, remove))
        if found is not None:
            self._names.pop(instance_id, None)
        return found

    def _removed(self, name: str, instance_id: str, row: Sequence[Any]) -> Instance:
        """The instance a removal took out, as stored; one whose document cannot be decoded is removed
        all the same (it is what its owner asked for) and reported with its id, name and status alone."""
        try:
            return _instance(self._documents, instance_id, row)
        except UndecodableDocumentError as exc:
            self._documents.skipped(f"instance {instance_id!r}", exc)
            doc = {**DOCUMENT_DEFAULTS, "name": name, "host": "", "port": 0}
            return Instance.from_document(instance_id, doc, str(row[1]), int(row[2]), int(row[3]), int(row[4]))

    async def expire(self, now_ms: int, limit: int) -> list[Expired]:
        """Sweep the services in bounded rounds, each under its own store deadline.

        A round asks up to ``_EXPIRE_SERVICES_PER_ROUND`` services for at most ``_EXPIRE_PER_CALL`` expired
        instances each, so that no round keeps Redis (single-threaded: every heartbeat waits behind it)
        or the event loop busy for long; a service that still has more goes back in the queue, until
        ``limit`` of its instances were removed. What a round removed is returned even when a later round
        fails (the rest waits for the next sweep), so a removed instance is never left uncounted.

        On one Redis a round is one write on the sweep's own connection: its calls, and the release of
        the ids the previous round removed (no ``SCRIPT EXISTS`` first, no round trip of its own)."""
        k = self._keys
        per_call = min(limit, _EXPIRE_PER_CALL)

        def expire_call(name: str) -> tuple[list[Any], list[Any]]:
            return ([k.leases(name), k.revision(name), k.counts(name), k.events(name)],
                    [name, now_ms, per_call, k.instance_prefix(name), self._event_history, k.channel])

        self.next_expiry_ms = None
        queue = collections.deque(await self._run("expire", self._service_names))
        taken: collections.Counter[str] = collections.Counter()
        removed: list[Expired] = []
        emptied: list[str] = []
        releasing: list[tuple[int, asyncio.Future[Any]]] = []
        earliest: int | None = None
        try:
            while queue:
                part = [queue.popleft() for _ in range(min(len(queue), _EXPIRE_SERVICES_PER_ROUND))]
                try:
                    replies = await self._run("expire", lambda part=part: self._expire_round(part, expire_call))  # type: ignore[misc]
                except StoreError:
                    if not removed:
                        raise
                    log.warning("expiry sweep stopped after %d removals; the other services wait for the next "
                                "sweep", len(removed))
                    break
                for name, flat in replies:
                    count = len(flat) - 1
                    taken[name] += count
                    if count == per_call and taken[name] < limit:
                        queue.append(name)  # more of it may have run out: after the services not asked yet
                    elif (ends := int(flat[0])) < 0:
                        emptied.append(name)
                    elif earliest is None or ends < earliest:
                        earliest = ends
                round_removed = [Expired(instance_id, name) for name, flat in replies for instance_id in flat[1:]]
                for gone in round_removed:
                    self._names.pop(gone.id, None)
                removed.extend(round_removed)
                releasing.extend(await self._release_owners(round_removed))
            else:
                self.next_expiry_ms = earliest  # every service answered: the earliest lease left is known
        finally:
            await self._released(releasing)
        if emptied:
            try:
                await self._set_aside(emptied, now_ms)
            except StoreError as exc:
                log.warning("could not set %d services without instances aside (%s); the next sweep will",
                            len(emptied), exc)
        return removed

    async def _set_aside(self, names: list[str], now_ms: int) -> None:
        """Move services found without instances from the index every sweep and listing visits to the idle
        index, scored ``now_ms``; those that have an instance again are indexed again.

        In this order, against a registration of the same service: in the idle index first (a crash
        leaves a name in both, which the next sweep sets aside again), unindexed, then marked idle only
        if it still has no instance, atomically with its keys (set_idle.lua); a registration that finds
        the mark indexes the service again. No service with an instance is left out of the index.

        In bounded rounds, each under its own store deadline: the names a round set aside stay so."""
        for start in range(0, len(names), _SERVICES_PER_ROUND):
            await self._run("set_aside", functools.partial(self._set_aside_round,
                                                           names[start:start + _SERVICES_PER_ROUND], now_ms))

    async def _set_aside_round(self, names: list[str], now_ms: int) -> None:
        k = self._keys
        await self._client.zadd(k.idle, dict.fromkeys(names, now_ms))
        await self._client.srem(k.services, *names)
        outcomes = await self._round(names, lambda name, client: self._set_idle(
            keys=[k.leases(name), k.idle_mark(name)], args=[now_ms], client=client))
        kept = [name for name, since in outcomes if int(since) < 0]
        if kept:
            await self._client.sadd(k.services, *kept)
            await self._unidle(keys=[k.idle], args=[arg for name in kept for arg in (name, now_ms)])

    async def _expire_round(self, names: list[str],
                            call: Callable[[str], tuple[list[Any], list[Any]]]) -> list[tuple[str, Any]]:
        if self._sweep_batch is None:  # a Cluster: each service's slot may live on another node
            return await self._round(names, lambda name, _client: self._expire(*call(name)))
        outcomes = await asyncio.gather(*(self._sweep_batch.submit(*call(name)) for name in names),
                                        return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return list(zip(names, outcomes, strict=True))

    async def _release_owners(self, removed: list[Expired], *,
                              chunk: int = 500) -> list[tuple[int, asyncio.Future[Any]]]:
        """Release the owner keys of removed instances in bounded calls (a mass expiry removes thousands
        at once: one call each would open as many connections as there are ids).

        On one Redis, ``chunk`` ids per script call, submitted to the sweep's connection and returned
        unawaited, as (ids, future): they go in the next round's write. On a Cluster, where the keys live
        on every node, a few concurrent calls, awaited here."""
        k = self._keys
        if self._sweep_batch is not None:
            return [(len(part), self._sweep_batch.submit([k.owner(gone.id) for gone in part],
                                                         [gone.name for gone in part], script=self._release_many))
                    for part in (removed[start:start + chunk] for start in range(0, len(removed), chunk))]
        try:
            for sub in range(0, len(removed), 32):
                await self._run("expire", lambda sub=sub: asyncio.gather(*(  # type: ignore[misc]
                    self._release(keys=[k.owner(gone.id)], args=[gone.name]) for gone in removed[sub:sub + 32])))
        except StoreError as exc:
            _unreleased(len(removed), exc)
        return []

    async def _released(self, releasing: list[tuple[int, asyncio.Future[Any]]]) -> None:
        """Wait for the releases submitted (each bounded by the sweep connection's deadline)."""
        outcomes = await asyncio.gather(*(future for _n, future in releasing), return_exceptions=True)
        failed = [(n, outcome) for (n, _future), outcome in zip(releasing, outcomes, strict=True)
                  if isinstance(outcome, BaseException)]
        if failed:
            _unreleased(sum(n for n, _exc in failed), failed[0][1])

    async def extend_leases(self, since_ms: int, until_ms: int, *, heard_since_ms: int | None = None) -> int:
        k = self._keys
        heard = "" if heard_since_ms is None else heard_since_ms
        replies = await self._run("extend", lambda: self._each_service(lambda name, client: self._extend(
            keys=[k.leases(name)], args=[since_ms, until_ms, k.instance_prefix(name), heard], client=client)))
        return sum(int(n) for _name, n in replies)

    async def mark_alive(self, now_ms: int, gap_ms: int) -> int | None:
        stale = await self._run("mark_alive", lambda: self._fleet_mark(keys=[self._keys.fleet],
                                                                         args=[now_ms, gap_ms]))
        return None if stale is None else int(stale)

    # -- reads --------------------------------------------------------------------------------------

    async def get(self, instance_id: str, now_ms: int) -> Instance | None:
        async def read(name: str) -> Instance | None:
            row = await self._client.hmget(self._keys.instance(name, instance_id), _INSTANCE_FIELDS)
            if row[0] is None or int(row[4] or 0) <= now_ms:
                return None
            try:
                return _instance(self._documents, instance_id, row)
            except UndecodableDocumentError as exc:
                self._documents.skipped(f"instance {instance_id!r}", exc)
                return None

        return await self._run("get", lambda: self._by_id(instance_id, read))

    async def get_many(self, instances: Sequence[tuple[str, str]], now_ms: int) -> list[Instance | None]:
        async def read() -> list[Instance | None]:
            pipe = self._client.pipeline(transaction=False)
            for name, instance_id in instances:
                pipe.hmget(self._keys.instance(name, instance_id), _INSTANCE_FIELDS)
            rows = await pipe.execute() if instances else []
            found: list[Instance | None] = []
            for (_name, instance_id), row in zip(instances, rows, strict=True):
                try:
                    live = row[0] is not None and int(row[4] or 0) > now_ms
                    found.append(_instance(self._documents, instance_id, row) if live else None)
                except UndecodableDocumentError as exc:
                    self._documents.skipped(f"instance {instance_id!r}", exc)
                    found.append(None)
            return found

        return await self._run("get", read)

    def _list_call(self, name: str, now_ms: int, client: Any = None) -> Any:
        k = self._keys
        return self._list(keys=[k.leases(name), k.revision(name), k.retired(name)],
                          args=[now_ms, k.instance_prefix(name), self._floor or 0], client=client)

    @property
    def undecodable_documents(self) -> int:
        return self._documents.undecodable

    def _view(self, name: str, reply: Sequence[Any]) -> ServiceSnapshot:
        documents = self._documents
        rows = []
        for i in range(1, len(reply), 9):
            try:
                rows.append(_instance(documents, reply[i], reply[i + 1:i + 9]))
            except UndecodableDocumentError as exc:  # one bad document never fails the listing
                documents.skipped(f"instance {reply[i]!r}", exc)
        rows.sort(key=lambda inst: inst.id)
        return ServiceSnapshot(name, int(reply[0]), rows)

    async def service(self, name: str, now_ms: int) -> ServiceSnapshot:
        reply = await self._run("service", lambda: self._list_call(name, now_ms))
        return self._view(name, reply)

    async def _service_names(self, *, idle: bool = False) -> list[str]:
        """The services that may have instances; with ``idle``, also those set aside without any."""
        names = {str(name) for name in await self._client.smembers(self._keys.services)}
        if idle:
            names.update(str(name) for name in await self._client.zrange(self._keys.idle, 0, -1))
        return sorted(names)

    async def _each_service(self, call: Callable[[str, Any], Awaitable[Any]], *,
                            idle: bool = False) -> list[tuple[str, Any]]:
        """``call(name, client)`` for every service that may have instances (with ``idle``, every known
        service), in bounded rounds (other requests run between them): each round pipelined in one round
        trip on a single Redis; concurrently on a Cluster, where each service's slot may live on another
        node."""
        names = await self._service_names(idle=idle)
        out: list[tuple[str, Any]] = []
        for start in range(0, len(names), _SERVICES_PER_ROUND):
            out.extend(await self._round(names[start:start + _SERVICES_PER_ROUND], call))
        return out

    async def _round(self, names: list[str], call: Callable[[str, Any], Awaitable[Any]]) -> list[tuple[str, Any]]:
        if self._cluster:
            replies = await asyncio.gather(*(call(name, None) for name in names))
        else:
            async with self._client.pipeline(transaction=False) as pipe:
                for name in names:
                    await call(name, pipe)  # queues the EVALSHA; the pipeline loads missing scripts
                replies = await pipe.execute()
        return list(zip(names, replies, strict=True))

    async def all_instances(self, now_ms: int) -> list[Instance]:
        replies = await self._run("all_instances", lambda: self._each_service(
            lambda name, client: self._list_call(name, now_ms, client)))
        out = [inst for name, reply in replies for inst in self._view(name, reply).instances]
        out.sort(key=lambda inst: inst.id)
        return out

    async def services(self, now_ms: int) -> list[ServiceSummary]:
        k = self._keys
        replies = await self._run("services", lambda: self._each_service(lambda name, client: self._summary(
            keys=[k.leases(name), k.counts(name)], args=[now_ms, k.instance_prefix(name)], client=client)))
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

    async def revision(self, name: str) -> int:
        k = self._keys

        async def read() -> int:
            value = await self._client.get(k.revision(name))
            if value is not None:
                return int(value)
            retired = await self._client.get(k.retired(name))
            floor = self._floor if self._floor is not None else await self._read_floor()
            return max(int(retired or 0), floor)

        return await self._run("revision", read)

    async def _read_floor(self) -> int:
        self._floor = int(await self._client.get(self._keys.revision_floor) or 0)
        return self._floor

    async def drop_idle(self, now_ms: int, retention_ms: int) -> list[str]:
        """Drop the services set aside idle for ``retention_ms``, found by their time in the idle index (the
        others are not visited), in bounded rounds (:meth:`_drop_round`)."""
        k = self._keys
        cutoff_ms = now_ms - retention_ms
        due = await self._run("drop", lambda: self._client.zcount(k.idle, "-inf", cutoff_ms))
        dropped: list[str] = []
        for _ in range(-(-int(due) // _SERVICES_PER_ROUND)):  # each round takes its names out of the index
            part: list[Any] = await self._run("drop", lambda: self._client.zrangebyscore(
                k.idle, "-inf", cutoff_ms, start=0, num=_SERVICES_PER_ROUND, withscores=True))
            if not part:
                break
            entries = [(str(name), int(score)) for name, score in part]
            dropped.extend(await self._run("drop", functools.partial(self._drop_round, entries, cutoff_ms,
                                                                     retention_ms)))
        await self._run("drop", self._read_floor)
        return dropped

    async def _drop_round(self, entries: list[tuple[str, int]], cutoff_ms: int, retention_ms: int) -> list[str]:
        """Raise the store's revision floor to the revisions of the idle services of ``entries`` (name,
        score), drop each (drop.lua re-checks, atomically, that it is still empty, idle since ``cutoff_ms``
        and at the revision the floor was raised to), index again those kept (they came back), and take
        them all out of the idle index unless set aside again meanwhile."""
        k = self._keys
        names = [name for name, _score in entries]

        def revision(name: str, client: Any) -> Any:
            return (client or self._client).get(k.revision(name))

        expected = {name: int(rev or 0) for name, rev in await self._round(names, revision)}
        await self._raise_floor(keys=[k.revision_floor], args=[max(expected.values())])

        def drop(name: str, client: Any) -> Any:
            return self._drop(keys=[k.leases(name), k.revision(name), k.counts(name), k.events(name),
                                    k.retired(name), k.idle_mark(name)],
                              args=[cutoff_ms, retention_ms, expected[name]], client=client)

        outcomes = await self._round(names, drop)
        kept = [name for name, outcome in outcomes if int(outcome) < 0]
        if kept:
            await self._client.sadd(k.services, *kept)
        await self._unidle(keys=[k.idle], args=[arg for entry in entries for arg in entry])
        return [name for name, outcome in outcomes if int(outcome) >= 0]

    # -- health checks ------------------------------------------------------------------------------

    async def record_health(self, name: str, instance_id: str, passed: bool, output: str, now_ms: int, *,
                            failures: int, deregister_after_ms: int) -> HealthRecord | None:
        k = self._keys

        async def record() -> HealthRecord | None:
            keys = [k.instance(name, instance_id), k.leases(name), k.revision(name), k.counts(name), k.events(name)]
            args = [instance_id, name, "1" if passed else "0", output, now_ms, failures, deregister_after_ms,
                    self._event_history, k.channel]
            script = self._record_health if self._health_batch is None else self._health_batch
            row = await script(keys=keys, args=args)
            if row is None:
                return None
            inst = _instance(self._documents, instance_id, row[:8])
            if row[9] == 1:
                await self._release(keys=[k.owner(instance_id)], args=[name])
                self._names.pop(instance_id, None)
            return HealthRecord(inst, HealthStatus(row[8]) if row[8] else None, row[9] == 1)

        return await self._run("record_health", record)

    async def schedule_health_check(self, name: str, instance_id: str, due_ms: int) -> None:
        await self._run("health_schedule", lambda: self._client.zadd(
            self._keys.health_due, {f"{name}/{instance_id}": due_ms}, nx=True))

    async def reschedule_health_check(self, name: str, instance_id: str, due_ms: int) -> None:
        await self._run("health_schedule", lambda: self._client.zadd(
            self._keys.health_due, {f"{name}/{instance_id}": due_ms}, xx=True))

    async def unschedule_health_check(self, name: str, instance_id: str) -> None:
        await self._run("health_schedule", lambda: self._client.zrem(self._keys.health_due, f"{name}/{instance_id}"))

    async def claim_health_checks(self, now_ms: int, hold_ms: int, limit: int, *,
                                  done: Sequence[tuple[str, str, int]] = ()) -> list[tuple[str, str]]:
        finished = [part for name, instance_id, due_ms in done for part in (f"{name}/{instance_id}", due_ms)]
        members = await self._run("health_schedule", lambda: self._claim_checks(
            keys=[self._keys.health_due], args=[now_ms, hold_ms, limit, *finished]))
        claimed = []
        for member in members:
            name, _, instance_id = str(member).partition("/")
            claimed.append((name, instance_id))
        return claimed

    # -- event history and live changes ---------------------------------------------------------------

    async def _epoch_ms(self) -> int:
        """When this store's history began; set on first use, so a wiped store starts a new one."""
        key = self._keys.epoch
        seconds, micros = await self._client.time()
        now = int(seconds) * 1000 + int(micros) // 1000
        await self._client.set(key, now, nx=True)
        self._epoch_set = True
        return int(await self._client.get(key) or now)

    async def last_event_id(self) -> str:
        async def newest() -> str:
            replies = await self._each_service(
                lambda name, client: (client or self._client).xrevrange(self._keys.events(name), count=1), idle=True)
            ids = [_event_id(str(reply[0][0]), name) for name, reply in replies if reply]
            if not ids:
                return f"{await self._epoch_ms()}-0"
            return max(ids, key=event_id_order)

        return await self._run("events", newest)

    async def read_events(self, after: str, *, count: int = 500) -> list[ChangeEvent]:
        ms, seq, _service = event_id_order(after)
        start = f"{max(ms, 0)}-{max(seq, 0)}"
        position = event_id_order(after)

        async def read() -> list[ChangeEvent]:
            replies = await self._each_service(
                lambda name, client: (client or self._client).xrange(self._keys.events(name), min=start,
                                                                     count=count + 1), idle=True)
            events = []
            for _name, entries in replies:
                for sid, fields in entries:
                    try:
                        events.append(_event(self._documents, str(sid), fields))
                    except UndecodableDocumentError as exc:
                        self._documents.skipped(f"event {sid!s}", exc)
            later = [e for e in events if event_id_order(e.id) > position]
            later.sort(key=lambda e: event_id_order(e.id))
            return later[:count]

        return await self._run("events", read)

    async def history_complete(self, after: str) -> bool:
        position = event_id_order(after)

        async def complete() -> bool:
            if position[0] < await self._epoch_ms() and position[:2] != (0, 0):
                return False  # from before this store's history: it was wiped or replaced since
            seconds, _micros = await self._client.time()
            if position[0] > int(seconds) * 1000 + 1000:
                return False  # from the future: another store's history
            replies = await self._each_service(
                lambda name, client: (client or self._client).xinfo_stream(self._keys.events(name)), idle=True)
            for name, info in replies:
                trimmed = int(info["entries-added"]) - int(info["length"])
                first = info.get("first-entry")
                if trimmed and (first is None or position < event_id_order(_event_id(str(first[0]), name))):
                    return False
            return True

        try:
            return await self._run("events", complete)
        except StoreError as exc:
            if "no such key" in str(exc).lower():  # a service whose stream is gone entirely
                return False
            raise

    def _announced(self, stream_id: str, fields: dict[str, Any]) -> ChangeEvent:
        try:
            return _event(self._documents, stream_id, fields)
        except UndecodableDocumentError as exc:
            self._documents.skipped(f"event {stream_id}", exc)
            raise

    async def changes(self) -> AsyncIterator[ChangeNotice | None]:
        if isinstance(self._client, RedisCluster):
            await self._run("changes", self._client.initialize)  # the slot map, which its pub/sub needs
        pubsub = self._client.pubsub()
        try:
            try:
                async with asyncio.timeout(self._op_timeout_s):
                    await pubsub.subscribe(self._keys.channel)
            except _UNAVAILABLE as exc:
                raise StoreUnavailableError("changes", str(exc) or type(exc).__name__) from exc
            yield None  # subscribed: every change from here on is delivered
            while True:
                try:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                except _UNAVAILABLE as exc:
                    raise StoreUnavailableError("changes", str(exc) or type(exc).__name__) from exc
                if message is None or message.get("type") != "message":
                    continue
                announced = json.loads(message["data"])  # one change, or a script's many as an array
                for fields in announced if isinstance(announced, list) else (announced,):
                    build = functools.partial(self._announced, str(fields["sid"]), fields)
                    yield ChangeNotice(str(fields["service"]), build)
        finally:
            with contextlib.suppress(rexc.RedisError, OSError):
                # Typed through a Callable: whether redis-py annotates PubSub.aclose varies by release.
                close_pubsub: Callable[[], Awaitable[None]] = pubsub.aclose
                await close_pubsub()

    async def ping(self) -> None:
        async def ping() -> None:
            await self._client.ping()
            if not self._epoch_set:
                await self._epoch_ms()

        await self._run("ping", ping)

    async def close(self) -> None:
        for batcher in (self._heartbeat_batch, self._sweep_batch, self._health_batch):
            if batcher is not None:
                await batcher.aclose()
        await self._client.aclose()
        pool = getattr(self._client, "connection_pool", None)
        if pool is not None:
            await pool.disconnect()
