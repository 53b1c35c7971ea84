"""Heartbeats refused for overload still renew their leases: later, in bulk, and as far as they must.

A heartbeat the registry refused (``503`` + ``Retry-After``) came from a live instance, which will not
try again before the delay it was given, and that delay may be longer than a TTL. So each refused
heartbeat's lease is renewed until the delay given plus a full TTL: its owner finds it on coming back when
told (or one TTL after that, if that attempt is lost too). While the replica sheds, the expiry protection
also holds every live lease (heartbeats that wait unread in the server tell nothing of their instances);
this renewal is what carries a refused instance past the end of the overload.

The renewal is the heartbeat itself (:meth:`HeartbeatEndpoint.renew`: the same credentials and lease
rule, so a refused request renews nothing its sender could not renew when served), minus the HTTP
answer: collected per instance (the last request of each wins) and run every :data:`FLUSH_S` seconds,
at most :data:`CONCURRENCY` at a time, so an overload's renewals are a fraction of its heartbeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.exceptions import HTTPException
from starlette.types import Scope

from registry_server.api.access import ServiceNotInScopeError, UnauthorizedError
from registry_server.api.errors import ApiError
from registry_server.api.heartbeat import HeartbeatEndpoint
from registry_server.errors import LeaseTokenError, StoreError

log = logging.getLogger("registry_server.overload")

FLUSH_S = 0.25
"""How long refused heartbeats are collected before their leases are renewed: far below any TTL."""
CONCURRENCY = 32
MAX_PENDING_BYTES = 8 * 1024 * 1024
"""What the refused heartbeats waiting for their renewal may hold (their ids and credentials; twice this
while a flush runs). Beyond it a refused heartbeat renews nothing: while the replica refuses, every live
lease is held anyway; this only bounds what a flood of refused requests with large headers can pin."""
_ENTRY_BYTES = 200
"""What an entry takes beside its strings (the tuple, the dict slot, the objects' headers)."""
_REFUSED_RENEWAL = (ApiError, HTTPException, LeaseTokenError, UnauthorizedError, ServiceNotInScopeError, StoreError)
"""What a renewal may meet and leaves alone: the instance is gone, the credentials do not hold, or the
store is away (its own protection then holds every lease)."""


class RefusedHeartbeats:
    def __init__(self, endpoint: HeartbeatEndpoint, ttl_ms: int) -> None:
        self._endpoint = endpoint
        self._ttl_ms = ttl_ms
        self._pending: dict[str, tuple[bytes | None, bytes | None, int]] = {}
        self._pending_bytes = 0
        self._flushing: asyncio.Task[None] | None = None
        self.renewed = 0
        """Leases renewed for refused heartbeats, since the start."""

    def __repr__(self) -> str:
        return f"RefusedHeartbeats(pending={len(self._pending)}, renewed={self.renewed})"

    def refused(self, instance_id: str | None, scope: Scope, retry_after_s: float) -> None:
        """A request (``scope``) was refused and told to come back in ``retry_after_s``: if it was a
        heartbeat (of ``instance_id``), renew its lease soon, until then plus a TTL."""
        if instance_id is None:
            return
        headers = dict(scope["headers"])  # of a repeated header the last, as the endpoint reads them
        authorization, lease_token = headers.get(b"authorization"), headers.get(b"x-lease-token")
        size = _ENTRY_BYTES + len(instance_id) + len(authorization or b"") + len(lease_token or b"")
        if self._pending_bytes + size > MAX_PENDING_BYTES:
            return
        self._pending_bytes += size  # an instance refused twice is charged twice: a bound, not a count
        self._pending[instance_id] = (authorization, lease_token, round(retry_after_s * 1000) + self._ttl_ms)
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._flush_soon(),
                                                                    name="registry-refused-heartbeats")

    async def _flush_soon(self) -> None:
        try:
            while self._pending:  # and again for those refused while renewing
                await asyncio.sleep(FLUSH_S)  # collect: one renewal per instance however often it was refused
                await self.flush()
        finally:
            self._flushing = None

    async def flush(self) -> None:
        """Renew the leases of the heartbeats refused so far."""
        pending, self._pending, self._pending_bytes = self._pending, {}, 0
        gate = asyncio.Semaphore(CONCURRENCY)
        await asyncio.gather(*(self._renew(gate, iid, authorization, lease_token, lease_ms)
                               for iid, (authorization, lease_token, lease_ms) in pending.items()))

    async def _renew(self, gate: asyncio.Semaphore, instance_id: str, authorization: bytes | None,
                     lease_token: bytes | None, lease_ms: int) -> None:
        async with gate:
            try:
                renewed = await self._endpoint.renew(instance_id, authorization, lease_token, None, lease_ms=lease_ms)
            except _REFUSED_RENEWAL as exc:
                log.debug("refused heartbeat of %s renewed nothing: %s", instance_id, exc)
                return
            if renewed is None:
                log.debug("refused heartbeat of %s renewed nothing: no such instance", instance_id)
                return
        self.renewed += 1

    async def stop(self) -> None:
        task, self._flushing = self._flushing, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
