"""The registry's core: leases over a store, with every outcome announced to its observer. No HTTP here."""

from __future__ import annotations

import collections
import logging
import zlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from registry_server.clock import WallClock
from registry_server.errors import StoreError, StoreUnavailableError
from registry_server.expiry_protection import ExpiryProtection
from registry_server.model import (
    Expired,
    HealthCheckSpec,
    HealthRecord,
    Instance,
    InstanceRegistration,
    InstanceStatus,
    RegisterResult,
    ServiceSnapshot,
    ServiceSummary,
    effective_health_check,
)
from registry_server.registry_observer import RegistryObserver
from registry_server.store.base import InstanceStore

T = TypeVar("T")
log = logging.getLogger("registry_server.registry")


class Registry:
    def __init__(self, store: InstanceStore, clock: WallClock, ttl_ms: int, observer: RegistryObserver, *,
                 health_default: HealthCheckSpec | None = None, fleet_gap_ms: int | None = None) -> None:
        """``fleet_gap_ms``: see :class:`ExpiryProtection` (``create_app`` derives it from the settings)."""
        self.store = store
        self.clock = clock
        self.ttl_ms = ttl_ms
        self.observer = observer
        self.health_default = health_default or HealthCheckSpec(0.0, 2.0, 2)
        """The checks of instances that ask for none of their own (``interval_s`` 0: none)."""
        self.protection = ExpiryProtection(store, clock, ttl_ms, observer, fleet_gap_ms=fleet_gap_ms)

    def __repr__(self) -> str:
        return f"Registry(store={self.store!r}, ttl_ms={self.ttl_ms})"

    async def _store(self, operation: Callable[[int], Awaitable[T]]) -> T:
        """Run ``operation(now_ms)`` on the store: after an outage, only once the leases are protected."""
        try:
            if self.protection.pending:
                await self.protection.recover()
            result = await operation(self.clock.now_ms())
        except StoreError as exc:
            self._failed(exc)
            raise
        self.protection.reached()
        return result

    def _failed(self, exc: StoreError) -> None:
        if isinstance(exc, StoreUnavailableError):
            self.protection.unreachable()
        self.observer.store_error(exc.operation)

    async def register(self, registration: InstanceRegistration, *,
                       lease_token_hash: str | None = None) -> RegisterResult:
        """``lease_token_hash``: what the caller presented, ``None`` for the admin (see InstanceStore)."""
        checks = effective_health_check(registration.health_check, self.health_default)
        if checks is not None:
            # Scheduled before the instance is written (a crash between leaves a check that finds nothing),
            # at a point in the interval of the id's own: a fleet starting at once is checked spread out.
            offset_ms = zlib.crc32(registration.id.encode()) % max(1, round(checks.interval_s * 1000))
            await self._store(lambda now: self.store.schedule_health_check(registration.name, registration.id,
                                                                           now + offset_ms))
        result = await self._store(lambda now: self.store.register(registration, now, self.ttl_ms,
                                                                   lease_token_hash=lease_token_hash))
        if result.replaced_expired:
            self.observer.expired(result.instance.name)
        self.observer.registered(result.instance, result.created)
        if result.created:
            inst = result.instance
            log.info("registered %s (%s at %s:%d)", inst.id, inst.name, inst.host, inst.port)
        return result

    async def heartbeat(self, instance_id: str, status: InstanceStatus | None, *,
                        lease_token_hash: str | None = None, lease_ms: int | None = None) -> Instance | None:
        """Renew the lease for ``lease_ms`` (default: the TTL)."""
        # :meth:`_store`'s steps, taken here: on every heartbeat, neither a closure nor a coroutine more.
        try:
            if self.protection.pending:
                await self.protection.recover()
            renewal = await self.store.heartbeat(instance_id, status, self.clock.now_ms(),
                                                 self.ttl_ms if lease_ms is None else lease_ms,
                                                 lease_token_hash=lease_token_hash)
        except StoreError as exc:
            self._failed(exc)
            raise
        self.protection.reached()
        if renewal is None:
            self.observer.unknown_heartbeat(instance_id)
            return None
        inst = renewal.instance
        self.observer.heartbeat(inst, renewal.status_changed)
        return inst

    async def deregister(self, instance_id: str, *, lease_token_hash: str | None = None) -> Instance | None:
        inst = await self._store(lambda now: self.store.deregister(instance_id, now,
                                                                   lease_token_hash=lease_token_hash))
        if inst is not None:
            self.observer.deregistered(inst)
            log.info("deregistered %s (%s)", inst.id, inst.name)
        return inst

    async def record_health(self, instance: Instance, passed: bool, output: str, checks: HealthCheckSpec,
                            seconds: float) -> HealthRecord | None:
        """Record one check of ``instance`` that took ``seconds``, and announce what it changed."""
        record = await self._store(lambda now: self.store.record_health(
            instance.name, instance.id, passed, output, now, failures=checks.failures,
            deregister_after_ms=round(checks.deregister_after_s * 1000)))
        self.observer.health_checked(instance.name, passed, seconds)
        if record is None:
            return None
        if record.transition is not None:
            self.observer.health_transition(record.instance, record.transition)
            log.info("%s (%s) is %s: %s", instance.id, instance.name, record.transition.value, output)
        if record.deregistered:
            self.observer.health_deregistered(record.instance)
            log.info("deregistered %s (%s): critical for longer than %.3gs", instance.id, instance.name,
                     checks.deregister_after_s)
        return record

    async def get(self, instance_id: str) -> Instance | None:
        return await self._store(lambda now: self.store.get(instance_id, now))

    async def get_many(self, instances: Sequence[tuple[str, str]]) -> list[Instance | None]:
        """Each live instance of (service, instance id), read together."""
        return await self._store(lambda now: self.store.get_many(instances, now))

    async def service(self, name: str) -> ServiceSnapshot:
        return await self._store(lambda now: self.store.service(name, now))

    async def all_instances(self) -> list[Instance]:
        return await self._store(self.store.all_instances)

    async def services(self) -> list[ServiceSummary]:
        return await self._store(self.store.services)

    async def drop_idle(self, retention_ms: int) -> list[str]:
        """Drop the services that have had no instance for ``retention_ms`` (see ``InstanceStore``)."""
        dropped = await self._store(lambda now: self.store.drop_idle(now, retention_ms))
        for name in dropped:
            self.observer.dropped(name)
        if dropped:
            log.info("dropped %d services without instances for %.0fs: %s", len(dropped), retention_ms / 1000,
                     ", ".join(dropped[:10]) + (", ..." if len(dropped) > 10 else ""))
        return dropped

    async def ping(self) -> None:
        await self._store(lambda _now: self.store.ping())

    async def sweep(self, limit: int = 1000) -> list[Expired]:
        """Expire every lease that ran out (in batches of ``limit`` per service) and refresh the inventory."""
        removed: list[Expired] = []
        upto_ms = await self._store(lambda _now: self.protection.before_sweep())
        while True:
            batch = await self._store(lambda now: self.store.expire(min(now, upto_ms), limit))
            for service, count in collections.Counter(gone.name for gone in batch).items():
                self.observer.expired(service, count)
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
