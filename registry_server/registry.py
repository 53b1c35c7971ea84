"""The registry's core: leases over a store, with every outcome reported to an observer. No HTTP here."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TypeVar

from registry_server.clock import Clock
from registry_server.errors import StoreError
from registry_server.events import RegistryObserver
from registry_server.model import Instance, RegisterResult, Registration, ServiceSummary, ServiceView, Status
from registry_server.store.base import InstanceStore

T = TypeVar("T")
log = logging.getLogger("registry_server.registry")


class Registry:
    def __init__(self, store: InstanceStore, clock: Clock, ttl_ms: int, observer: RegistryObserver) -> None:
        self.store = store
        self.clock = clock
        self.ttl_ms = ttl_ms
        self.observer = observer

    def __repr__(self) -> str:
        return f"Registry(store={self.store!r}, ttl_ms={self.ttl_ms})"

    async def _store(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except StoreError as exc:
            self.observer.store_error(exc.operation)
            raise

    async def register(self, registration: Registration) -> RegisterResult:
        now = self.clock.now_ms()
        result = await self._store(self.store.register(registration, now, self.ttl_ms))
        if result.replaced_expired:
            self.observer.expired(result.instance)
        self.observer.registered(result.instance, result.created)
        if result.created:
            inst = result.instance
            log.info("registered %s (%s at %s:%d)", inst.id, inst.name, inst.host, inst.port)
        return result

    async def heartbeat(self, instance_id: str, status: Status | None) -> Instance | None:
        inst = await self._store(self.store.heartbeat(instance_id, status, self.clock.now_ms(), self.ttl_ms))
        if inst is None:
            self.observer.unknown_heartbeat(instance_id)
        else:
            self.observer.heartbeat(inst)
        return inst

    async def deregister(self, instance_id: str) -> Instance | None:
        inst = await self._store(self.store.deregister(instance_id, self.clock.now_ms()))
        if inst is not None:
            self.observer.deregistered(inst)
            log.info("deregistered %s (%s)", inst.id, inst.name)
        return inst

    async def get(self, instance_id: str) -> Instance | None:
        return await self._store(self.store.get(instance_id, self.clock.now_ms()))

    async def service(self, name: str) -> ServiceView:
        return await self._store(self.store.service(name, self.clock.now_ms()))

    async def all_instances(self) -> list[Instance]:
        return await self._store(self.store.all_instances(self.clock.now_ms()))

    async def services(self) -> list[ServiceSummary]:
        return await self._store(self.store.services(self.clock.now_ms()))

    async def sweep(self, limit: int = 1000) -> list[Instance]:
        """Expire every lease that ran out (in batches of ``limit`` per service) and refresh the inventory."""
        removed: list[Instance] = []
        while True:
            batch = await self._store(self.store.expire(self.clock.now_ms(), limit))
            for inst in batch:
                self.observer.expired(inst)
            removed.extend(batch)
            if len(batch) < limit:
                break
        if len(removed) <= 20:
            for inst in removed:
                log.info("expired %s (%s): no heartbeat before its lease ran out", inst.id, inst.name)
        else:
            log.info("expired %d instances of %d services: no heartbeat before their leases ran out",
                     len(removed), len({inst.name for inst in removed}))
        self.observer.inventory(await self.services())
        return removed
