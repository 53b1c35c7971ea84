"""The embedded store: one process, nothing persists. Same semantics as the Redis store."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

from registry_server.errors import InstanceConflictError
from registry_server.model import Instance, RegisterResult, Registration, ServiceSummary, ServiceView, Status


@dataclass(slots=True)
class _Service:
    revision: int = 0
    instances: dict[str, Instance] | None = None

    def members(self) -> dict[str, Instance]:
        if self.instances is None:
            self.instances = {}
        return self.instances


class MemoryStore:
    """Instances in dictionaries. Operations are atomic because they never await."""

    kind = "memory"

    def __init__(self) -> None:
        self._services: dict[str, _Service] = {}
        self._owners: dict[str, str] = {}  # instance id -> service name

    def __repr__(self) -> str:
        return f"MemoryStore(instances={len(self._owners)})"

    def _service(self, name: str) -> _Service:
        svc = self._services.get(name)
        if svc is None:
            svc = self._services[name] = _Service()
        return svc

    def _live(self, instance_id: str, now_ms: int) -> tuple[_Service, Instance] | None:
        owner = self._owners.get(instance_id)
        if owner is None:
            return None
        svc = self._services[owner]
        inst = svc.members().get(instance_id)
        if inst is None or not inst.is_live(now_ms):
            return None
        return svc, inst

    async def register(self, registration: Registration, now_ms: int, ttl_ms: int) -> RegisterResult:
        owner = self._owners.get(registration.id)
        if owner is not None and owner != registration.name:
            raise InstanceConflictError(registration.id, owner)
        svc = self._service(registration.name)
        members = svc.members()
        old = members.get(registration.id)
        replaced_expired = old is not None and not old.is_live(now_ms)
        created = old is None or replaced_expired
        inst = Instance.from_document(registration.id, registration.document(), registration.status,
                                      now_ms if created else old.registered_at_ms,  # type: ignore[union-attr]
                                      now_ms, now_ms + ttl_ms)
        changed = created or old is None or _fields_differ(old, inst)
        members[registration.id] = inst
        self._owners[registration.id] = registration.name
        if changed:
            svc.revision += 1
        return RegisterResult(inst, created, svc.revision, replaced_expired)

    async def heartbeat(self, instance_id: str, status: Status | None, now_ms: int,
                        ttl_ms: int) -> Instance | None:
        found = self._live(instance_id, now_ms)
        if found is None:
            return None
        svc, inst = found
        new_status = inst.status if status is None else status
        renewed = replace(inst, status=new_status, last_heartbeat_ms=now_ms, expires_at_ms=now_ms + ttl_ms)
        svc.members()[instance_id] = renewed
        if new_status != inst.status:
            svc.revision += 1
        return renewed

    async def deregister(self, instance_id: str, now_ms: int) -> Instance | None:
        found = self._live(instance_id, now_ms)
        if found is None:
            return None
        svc, inst = found
        self._remove(svc, inst)
        svc.revision += 1
        return inst

    def _remove(self, svc: _Service, inst: Instance) -> None:
        del svc.members()[inst.id]
        del self._owners[inst.id]

    async def get(self, instance_id: str, now_ms: int) -> Instance | None:
        found = self._live(instance_id, now_ms)
        return None if found is None else found[1]

    async def service(self, name: str, now_ms: int) -> ServiceView:
        svc = self._services.get(name)
        if svc is None:
            return ServiceView(name, 0, [])
        live = [i for i in svc.members().values() if i.is_live(now_ms)]
        return ServiceView(name, svc.revision, sorted(live, key=lambda i: i.id))

    async def all_instances(self, now_ms: int) -> list[Instance]:
        live = [i for svc in self._services.values() for i in svc.members().values() if i.is_live(now_ms)]
        return sorted(live, key=lambda i: i.id)

    async def services(self, now_ms: int) -> list[ServiceSummary]:
        out = []
        for name in sorted(self._services):
            live = [i for i in self._services[name].members().values() if i.is_live(now_ms)]
            if live:
                statuses = Counter(i.status.value for i in live)
                out.append(ServiceSummary(name, len(live), dict(sorted(statuses.items()))))
        return out

    async def expire(self, now_ms: int, limit: int) -> list[Instance]:
        removed: list[Instance] = []
        for svc in self._services.values():
            gone = sorted((i for i in svc.members().values() if not i.is_live(now_ms)),
                          key=lambda i: (i.expires_at_ms, i.id))[:limit]
            for inst in gone:
                self._remove(svc, inst)
            if gone:
                svc.revision += 1  # one move per sweep of a service, as in the Redis store
            removed.extend(gone)
        return removed

    async def revision(self, name: str) -> int:
        svc = self._services.get(name)
        return 0 if svc is None else svc.revision

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


def _fields_differ(old: Instance, new: Instance) -> bool:
    return (old.status, old.host, old.port, old.scheme, old.health_endpoint, old.version, old.description,
            old.metadata) != (new.status, new.host, new.port, new.scheme, new.health_endpoint, new.version,
                              new.description, new.metadata)
