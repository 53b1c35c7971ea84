"""The embedded store: one process, nothing persists. Same semantics as the Redis store."""

from __future__ import annotations

import asyncio
import heapq
from collections import Counter, deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace

from registry_server.errors import InstanceConflictError, LeaseTokenError
from registry_server.model import (
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
    event_id_order,
)
from registry_server.store.documents import instance_footprint


@dataclass(slots=True)
class _Checked:
    """What the checks of one instance count beside its :class:`Health`."""

    failures: int = 0
    reported: InstanceStatus = InstanceStatus.UP
    """The status the instance itself last reported, shown again once it passes a check."""
    critical_since_ms: int = 0


@dataclass(slots=True)
class _Service:
    revision: int = 0
    members: dict[str, Instance] = field(default_factory=dict)
    empty_since_ms: int | None = None
    """When its last instance left (``None`` while it has one)."""


class MemoryStore:
    """Instances in dictionaries. Operations are atomic because they never await."""

    kind = "memory"
    undecodable_documents = 0
    """Never more: this store keeps instances as values, not as documents to decode."""

    def __init__(self, *, event_history: int = 10_000, event_bytes: int = 32 * 1024 * 1024) -> None:
        self._services: dict[str, _Service] = {}
        self._occupied: dict[str, None] = {}
        """The names of the services with an instance: all that sweeps and listings visit."""
        self._emptied: list[tuple[int, str]] = []
        """A heap of (when it became empty, name): the idle services by time, found without visiting each
        (an entry whose service came back since is passed over when due)."""
        self._owners: dict[str, str] = {}  # instance id -> service name
        self._tokens: dict[str, str] = {}  # instance id -> lease token hash
        self._checked: dict[str, _Checked] = {}  # instance id -> its checks' counts
        self._due: dict[tuple[str, str], int] = {}  # (service, instance id) -> when its next check is due
        self._events: deque[ChangeEvent] = deque(maxlen=event_history)
        self._event_sizes: deque[int] = deque(maxlen=event_history)
        self._event_bytes = 0
        self._event_bytes_limit = event_bytes
        """The history also holds at most about this many bytes of instances (as :func:`instance_footprint`
        counts)."""
        self._event_seq = 0
        self._trimmed_upto = "0-0"
        self._new_event = asyncio.Event()
        self._revision_floor = 0
        """The highest revision of a dropped service: a service (re)created starts above it."""
        self.next_expiry_ms: int | None = None
        self._fleet_mark_ms: int | None = None

    def __repr__(self) -> str:
        return f"MemoryStore(instances={len(self._owners)})"

    def _service(self, name: str) -> _Service:
        svc = self._services.get(name)
        if svc is None:
            svc = self._services[name] = _Service(revision=self._revision_floor)
        return svc

    def _live(self, instance_id: str, now_ms: int) -> tuple[_Service, Instance] | None:
        owner = self._owners.get(instance_id)
        if owner is None:
            return None
        svc = self._services[owner]
        inst = svc.members.get(instance_id)
        if inst is None or not inst.is_live(now_ms):
            return None
        return svc, inst

    def _emit(self, kind: EventType, svc: _Service, inst: Instance) -> None:
        size = instance_footprint(inst)
        while self._events and (self._event_bytes + size > self._event_bytes_limit
                                or len(self._events) == self._events.maxlen):
            self._trimmed_upto = self._events.popleft().id
            self._event_bytes -= self._event_sizes.popleft()
        self._event_seq += 1
        self._events.append(ChangeEvent(f"{self._event_seq}-0", kind, inst.name, svc.revision, inst))
        self._event_sizes.append(size)
        self._event_bytes += size
        self._new_event.set()
        self._new_event = asyncio.Event()

    def _check_lease(self, instance_id: str, presented: str | None) -> None:
        if presented is not None and (not presented or presented != self._tokens.get(instance_id)):
            raise LeaseTokenError(instance_id)

    async def register(self, registration: InstanceRegistration, now_ms: int, ttl_ms: int, *,
                       lease_token_hash: str | None = None) -> RegisterResult:
        owner = self._owners.get(registration.id)
        if owner is not None and owner != registration.name:
            raise InstanceConflictError(registration.id, owner)
        svc = self._service(registration.name)
        old = svc.members.get(registration.id)
        if old is not None and old.is_live(now_ms):
            self._check_lease(registration.id, lease_token_hash)
        replaced_expired = old is not None and not old.is_live(now_ms)
        created = old is None or replaced_expired
        registered_at = now_ms if created or old is None else old.registered_at_ms
        inst = Instance.from_document(registration.id, registration.document(), registration.status,
                                      registered_at, now_ms, now_ms + ttl_ms)
        if not created and old is not None and _document(old) == _document(inst):
            inst.health = old.health  # the same instance registering again: its checks' findings stand
            if old.health.status is HealthStatus.CRITICAL:
                self._checked[inst.id].reported = inst.status
                inst.status = InstanceStatus.DOWN
        else:
            self._checked.pop(inst.id, None)
        svc.members[registration.id] = inst
        svc.empty_since_ms = None
        self._occupied[registration.name] = None
        self._owners[registration.id] = registration.name
        self._tokens[registration.id] = registration.lease_token_hash
        kind: EventType | None = EventType.REGISTERED
        if not created and old is not None:
            if _document(old) != _document(inst):
                kind = EventType.UPDATED
            elif old.status != inst.status:
                kind = EventType.STATUS_CHANGED
            else:
                kind = None
        if kind is not None:
            svc.revision += 1
            if replaced_expired and old is not None:
                self._emit(EventType.EXPIRED, svc, old)
            self._emit(kind, svc, inst)
        return RegisterResult(inst, created, svc.revision, replaced_expired)

    async def heartbeat(self, instance_id: str, status: InstanceStatus | None, now_ms: int, ttl_ms: int, *,
                        lease_token_hash: str | None = None) -> Renewal | None:
        found = self._live(instance_id, now_ms)
        if found is None:
            return None
        self._check_lease(instance_id, lease_token_hash)
        svc, inst = found
        if status is not None and inst.health.status is HealthStatus.CRITICAL:
            self._checked[instance_id].reported = status  # shown again once a check passes
            status = None
        new_status = inst.status if status is None else status
        # Never shortens a lease: a heartbeat that waited in the server must not undo a longer one given since.
        renewed = replace(inst, status=new_status, last_heartbeat_ms=now_ms,
                          expires_at_ms=max(inst.expires_at_ms, now_ms + ttl_ms))
        svc.members[instance_id] = renewed
        if new_status != inst.status:
            svc.revision += 1
            self._emit(EventType.STATUS_CHANGED, svc, renewed)
        return Renewal(renewed, new_status != inst.status)

    async def deregister(self, instance_id: str, now_ms: int, *,
                         lease_token_hash: str | None = None) -> Instance | None:
        found = self._live(instance_id, now_ms)
        if found is None:
            return None
        self._check_lease(instance_id, lease_token_hash)
        svc, inst = found
        self._remove(svc, inst, now_ms)
        svc.revision += 1
        self._emit(EventType.DEREGISTERED, svc, inst)
        return inst

    def _remove(self, svc: _Service, inst: Instance, now_ms: int) -> None:
        del svc.members[inst.id]
        del self._owners[inst.id]
        self._tokens.pop(inst.id, None)
        self._checked.pop(inst.id, None)
        if not svc.members:
            svc.empty_since_ms = now_ms
            del self._occupied[inst.name]
            heapq.heappush(self._emptied, (now_ms, inst.name))

    async def get(self, instance_id: str, now_ms: int) -> Instance | None:
        found = self._live(instance_id, now_ms)
        return None if found is None else found[1]

    async def get_many(self, instances: Sequence[tuple[str, str]], now_ms: int) -> list[Instance | None]:
        found = [self._live(instance_id, now_ms) for _name, instance_id in instances]
        return [None if hit is None or hit[1].name != name else hit[1]
                for (name, _id), hit in zip(instances, found, strict=True)]

    async def service(self, name: str, now_ms: int) -> ServiceSnapshot:
        svc = self._services.get(name)
        if svc is None:
            return ServiceSnapshot(name, self._revision_floor, [])
        live = [i for i in svc.members.values() if i.is_live(now_ms)]
        return ServiceSnapshot(name, svc.revision, sorted(live, key=lambda i: i.id))

    def _occupied_services(self) -> list[_Service]:
        return [self._services[name] for name in self._occupied]

    async def all_instances(self, now_ms: int) -> list[Instance]:
        live = [i for svc in self._occupied_services() for i in svc.members.values() if i.is_live(now_ms)]
        return sorted(live, key=lambda i: i.id)

    async def services(self, now_ms: int) -> list[ServiceSummary]:
        out = []
        for name in sorted(self._occupied):
            live = [i for i in self._services[name].members.values() if i.is_live(now_ms)]
            if live:
                statuses = Counter(i.status.value for i in live)
                out.append(ServiceSummary(name, len(live), dict(sorted(statuses.items()))))
        return out

    async def expire(self, now_ms: int, limit: int) -> list[Expired]:
        removed: list[Expired] = []
        for svc in self._occupied_services():
            gone = sorted((i for i in svc.members.values() if not i.is_live(now_ms)),
                          key=lambda i: (i.expires_at_ms, i.id))[:limit]
            if not gone:
                continue
            svc.revision += 1  # one move per sweep of a service, as in the Redis store
            for inst in gone:
                self._remove(svc, inst, now_ms)
                self._emit(EventType.EXPIRED, svc, inst)
            removed.extend(Expired(inst.id, inst.name) for inst in gone)
        self.next_expiry_ms = min((i.expires_at_ms for svc in self._occupied_services() for i in svc.members.values()),
                                  default=None)
        return removed

    async def extend_leases(self, since_ms: int, until_ms: int, *, heard_since_ms: int | None = None) -> int:
        extended = 0
        for svc in self._occupied_services():
            for iid, inst in list(svc.members.items()):
                if since_ms < inst.expires_at_ms < until_ms and (heard_since_ms is None
                                                                 or inst.last_heartbeat_ms >= heard_since_ms):
                    svc.members[iid] = replace(inst, expires_at_ms=until_ms)
                    extended += 1
        return extended

    async def record_health(self, name: str, instance_id: str, passed: bool, output: str, now_ms: int, *,
                            failures: int, deregister_after_ms: int) -> HealthRecord | None:
        found = self._live(instance_id, now_ms)
        if found is None or found[1].name != name:
            return None
        svc, inst = found
        checked = self._checked.setdefault(instance_id, _Checked())
        health, status = inst.health.status, inst.status
        transition: HealthStatus | None = None
        if passed:
            checked.failures = 0
            if health is HealthStatus.CRITICAL:
                transition, status = HealthStatus.PASSING, checked.reported
            health = HealthStatus.PASSING
        else:
            checked.failures += 1
            if health is not HealthStatus.CRITICAL and checked.failures >= failures:
                transition, health = HealthStatus.CRITICAL, HealthStatus.CRITICAL
                checked.reported, checked.critical_since_ms, status = inst.status, now_ms, InstanceStatus.DOWN
            elif (health is HealthStatus.CRITICAL and deregister_after_ms > 0
                  and now_ms - checked.critical_since_ms >= deregister_after_ms):
                self._remove(svc, inst, now_ms)
                svc.revision += 1
                self._emit(EventType.DEREGISTERED, svc, replace(inst, health=Health(health, now_ms, output)))
                return HealthRecord(inst, None, True)
        checked_inst = replace(inst, status=status, health=Health(health, now_ms, output))
        svc.members[instance_id] = checked_inst
        if transition is not None:  # a change even when the status shown stays (it reported DOWN itself)
            svc.revision += 1
            self._emit(EventType.STATUS_CHANGED, svc, checked_inst)
        return HealthRecord(checked_inst, transition, False)

    async def schedule_health_check(self, name: str, instance_id: str, due_ms: int) -> None:
        self._due.setdefault((name, instance_id), due_ms)

    async def reschedule_health_check(self, name: str, instance_id: str, due_ms: int) -> None:
        if (name, instance_id) in self._due:
            self._due[name, instance_id] = due_ms

    async def unschedule_health_check(self, name: str, instance_id: str) -> None:
        self._due.pop((name, instance_id), None)

    async def claim_health_checks(self, now_ms: int, hold_ms: int, limit: int, *,
                                  done: Sequence[tuple[str, str, int]] = ()) -> list[tuple[str, str]]:
        for name, instance_id, due_ms in done:
            if (name, instance_id) in self._due:
                self._due[name, instance_id] = due_ms
        due = sorted((at, key) for key, at in self._due.items() if at <= now_ms)[:limit]
        for _at, key in due:
            self._due[key] = now_ms + hold_ms
        return [key for _at, key in due]

    async def mark_alive(self, now_ms: int, gap_ms: int) -> int | None:
        prev = self._fleet_mark_ms
        if prev is not None and prev >= now_ms:
            return None
        self._fleet_mark_ms = now_ms
        return prev if prev is not None and now_ms - prev > gap_ms else None

    async def revision(self, name: str) -> int:
        svc = self._services.get(name)
        return self._revision_floor if svc is None else svc.revision

    async def drop_idle(self, now_ms: int, retention_ms: int) -> list[str]:
        cutoff = now_ms - retention_ms
        idle = []
        while self._emptied and self._emptied[0][0] <= cutoff:
            since, name = heapq.heappop(self._emptied)
            svc = self._services.get(name)
            if svc is not None and not svc.members and svc.empty_since_ms == since:
                idle.append(name)
                self._revision_floor = max(self._revision_floor, self._services.pop(name).revision)
        return idle

    async def last_event_id(self) -> str:
        return self._events[-1].id if self._events else f"{self._event_seq}-0"

    async def read_events(self, after: str, *, count: int = 500) -> list[ChangeEvent]:
        key = event_id_order(after)
        return [e for e in self._events if event_id_order(e.id) > key][:count]

    async def changes(self) -> AsyncIterator[ChangeNotice | None]:
        after = await self.last_event_id()
        yield None
        while True:
            signal = self._new_event  # taken before reading, so no event slips between read and wait
            events = await self.read_events(after, count=len(self._events))
            if not events:
                await signal.wait()
            for event in events:
                after = event.id
                yield ChangeNotice.of(event)

    async def history_complete(self, after: str) -> bool:
        key = event_id_order(after)
        return event_id_order(self._trimmed_upto) <= key <= event_id_order(await self.last_event_id())

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


def _document(inst: Instance) -> tuple[object, ...]:
    return (inst.host, inst.port, inst.scheme, inst.health_endpoint, inst.version, inst.description,
            inst.metadata, inst.health_check)
