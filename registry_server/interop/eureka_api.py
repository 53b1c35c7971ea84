"""The Eureka REST API (``/eureka/apps/...`` and ``/eureka/v2/apps/...``) on the registry's core.

Register, renew, cancel, status override, fetch all / one application / one instance, and the delta
of the last three minutes; JSON or XML both ways. Mapping rules: :mod:`registry_server.interop.eureka`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from registry_server.api.access import Access, Role, ServiceNotInScopeError
from registry_server.api.body import BodyReader
from registry_server.errors import InstanceConflictError, LeaseTokenError
from registry_server.interop import eureka
from registry_server.interop.credentials import Dialect, authorized, interop_lease_hash, presented_lease
from registry_server.interop.negotiation import BodyError, decode_body, render, text
from registry_server.model import EventType, Instance, InstanceStatus, event_id_order
from registry_server.registry import Registry
from registry_server.schemas import document_size_error
from registry_server.settings import Settings

_EUREKA = Dialect.EUREKA
DELTA_WINDOW_MS = 180_000
"""Eureka servers keep the changes of the last three minutes for ``/apps/delta``."""


def registry_version(instances: list[Instance]) -> int:
    """A number that moves when membership, status or address moves (``versions__delta``)."""
    digest = hashlib.blake2b(digest_size=6)
    for inst in sorted(instances, key=lambda i: i.id):
        digest.update(f"{inst.id}|{inst.name}|{inst.status.value}|{inst.host}|{inst.port}\n".encode())
    return int.from_bytes(digest.digest(), "big")


def _unauthorized() -> Response:
    return text(401, "this registry needs its token (HTTP Basic password or bearer)",
                {"WWW-Authenticate": 'Basic realm="registry"'})


def _not_in_scope(exc: ServiceNotInScopeError) -> Response:
    return text(403, f"service_not_in_scope: {exc}")


class EurekaApi:
    def __init__(self, registry: Registry, settings: Settings, access: Access, body: BodyReader) -> None:
        self.registry = registry
        self.settings = settings
        self.access = access
        self.body = body
        self.ttl_s = max(1, round(settings.instance_ttl_s))

    def routes(self) -> list[Route]:
        routes: list[Route] = []
        for prefix in ("/eureka", "/eureka/v2"):
            routes += [
                Route(f"{prefix}/apps", self.get_apps, methods=["GET"]),
                Route(f"{prefix}/apps/", self.get_apps, methods=["GET"]),
                Route(f"{prefix}/apps/delta", self.get_delta, methods=["GET"]),
                Route(f"{prefix}/apps/{{app}}", self.get_app, methods=["GET"]),
                Route(f"{prefix}/apps/{{app}}", self.register, methods=["POST"]),
                Route(f"{prefix}/apps/{{app}}/{{instance_id}}", self.get_instance, methods=["GET"]),
                Route(f"{prefix}/apps/{{app}}/{{instance_id}}", self.renew, methods=["PUT"]),
                Route(f"{prefix}/apps/{{app}}/{{instance_id}}", self.cancel, methods=["DELETE"]),
                Route(f"{prefix}/apps/{{app}}/{{instance_id}}/status", self.override_status, methods=["PUT"]),
                Route(f"{prefix}/apps/{{app}}/{{instance_id}}/status", self.remove_override, methods=["DELETE"]),
                Route(f"{prefix}/instances/{{instance_id}}", self.get_instance, methods=["GET"]),
            ]
        return routes

    # ------------------------------------------------------------------------------- reads

    async def get_apps(self, request: Request) -> Response:
        if authorized(self.access, request, Role.READ) is None:
            return _unauthorized()
        instances = await self.registry.all_instances()
        return render(request, eureka.applications(instances, self.ttl_s, registry_version(instances)))

    async def get_delta(self, request: Request) -> Response:
        if authorized(self.access, request, Role.READ) is None:
            return _unauthorized()
        events = await self.registry.store.read_events(await self._delta_start(), count=10_000)
        live = await self.registry.all_instances()
        by_id = {inst.id: inst for inst in live}
        last = {}
        for event in sorted(events, key=lambda e: event_id_order(e.id)):
            last[event.instance.id] = event
        changed: list[Instance] = []
        actions: dict[str, str] = {}
        for instance_id, event in sorted(last.items()):
            current = by_id.get(instance_id)
            if current is not None:
                changed.append(current)
                actions[instance_id] = "ADDED" if event.type is EventType.REGISTERED else "MODIFIED"
            else:  # deregistered or expired (or registered and gone since)
                changed.append(event.instance)
                actions[instance_id] = "DELETED"
        document = eureka.applications(changed, self.ttl_s, registry_version(live), hashed=live, actions=actions)
        return render(request, document)

    async def _delta_start(self) -> str:
        """Events after this id make the delta: those of the last three minutes when event ids are stream
        ids (``<ms>-<seq>``, Redis); every held event when they are counters (the memory store)."""
        newest_ms = event_id_order(await self.registry.store.last_event_id())[0]
        if newest_ms < 10**12:
            return "0-0"
        return f"{self.registry.clock.now_ms() - DELTA_WINDOW_MS}-0"

    async def _application(self, app: str) -> list[Instance]:
        names = [s.name for s in await self.registry.services() if s.name.upper() == app.upper()]
        instances: list[Instance] = []
        for name in names:
            instances.extend((await self.registry.service(name)).instances)
        return instances

    async def get_app(self, request: Request) -> Response:
        if authorized(self.access, request, Role.READ) is None:
            return _unauthorized()
        app = request.path_params["app"]
        instances = await self._application(app)
        if not instances:
            return text(404, f"application {app.upper()} is not registered")
        document = eureka.application(app.upper(), [eureka.instance_to_eureka(i, self.ttl_s) for i in instances])
        return render(request, {"application": document})

    async def get_instance(self, request: Request) -> Response:
        if authorized(self.access, request, Role.READ) is None:
            return _unauthorized()
        inst = await self._owned(request)
        if inst is None:
            return self._not_found(request)
        return render(request, {"instance": eureka.instance_to_eureka(inst, self.ttl_s)})

    async def _owned(self, request: Request) -> Instance | None:
        """The live instance of the path, when it belongs to the path's application (if one is given)."""
        inst = await self.registry.get(request.path_params["instance_id"])
        app = request.path_params.get("app")
        if inst is None or (app is not None and inst.name.upper() != app.upper()):
            return None
        return inst

    @staticmethod
    def _not_found(request: Request) -> Response:
        return text(404, f"instance {request.path_params['instance_id']!r} is not registered"
                         + (f" under {request.path_params['app'].upper()}" if "app" in request.path_params else ""))

    # ------------------------------------------------------------------------------ writes

    async def register(self, request: Request) -> Response:
        grant = authorized(self.access, request, Role.WRITE)
        if grant is None:
            return _unauthorized()
        raw = await self.body.read(request.scope, request.receive)
        try:
            body: Any = decode_body(raw, request.headers.get("content-type"))
            parsed = eureka.parse_instance(body, request.path_params["app"])
        except (BodyError, ValueError) as exc:
            return text(400, str(exc))
        existing = await self.registry.get(parsed.id)
        if existing is not None and existing.name.upper() == parsed.app.upper():
            service = existing.name
        else:
            service = eureka.resolve_service_name(parsed.app, [s.name for s in await self.registry.services()])
        registration = parsed.registration(service, interop_lease_hash(_EUREKA, parsed.id))
        oversize = document_size_error(registration.document())
        if oversize is not None:
            return text(400, oversize)
        try:
            grant.check(service)
            await self.registry.register(registration, lease_token_hash=presented_lease(grant, _EUREKA, parsed.id))
        except InstanceConflictError as exc:
            return text(409, str(exc))
        except LeaseTokenError:
            return self._foreign(parsed.id)
        except ServiceNotInScopeError as exc:
            return _not_in_scope(exc)
        return Response(status_code=204)

    @staticmethod
    def _foreign(instance_id: str) -> Response:
        return text(403, f"instance {instance_id!r} was registered through the registry's own API or another "
                         "dialect: it cannot be changed through Eureka")

    async def _heartbeat(self, request: Request, status: InstanceStatus | None) -> Response:
        grant = authorized(self.access, request, Role.WRITE)
        if grant is None:
            return _unauthorized()
        instance_id = request.path_params["instance_id"]
        try:
            await grant.check_instance(self.registry, instance_id)
            inst = await self.registry.heartbeat(instance_id, status,
                                                 lease_token_hash=presented_lease(grant, _EUREKA, instance_id))
        except LeaseTokenError:
            return self._foreign(instance_id)
        except ServiceNotInScopeError as exc:
            return _not_in_scope(exc)
        if inst is None or inst.name.upper() != request.path_params["app"].upper():
            return self._not_found(request)  # Eureka clients re-register on this 404
        return Response(status_code=200)

    async def renew(self, request: Request) -> Response:
        return await self._heartbeat(request, None)  # Eureka's renew never changes the status

    async def override_status(self, request: Request) -> Response:
        value = request.query_params.get("value")
        if not value:
            return text(400, "the status override needs ?value=UP|DOWN|STARTING|OUT_OF_SERVICE|UNKNOWN")
        try:
            status = eureka.status_from_eureka(value)
        except ValueError as exc:
            return text(400, str(exc))
        return await self._heartbeat(request, status)

    async def remove_override(self, request: Request) -> Response:
        try:
            status = eureka.status_from_eureka(request.query_params.get("value") or "UP")
        except ValueError as exc:
            return text(400, str(exc))
        return await self._heartbeat(request, status)

    async def cancel(self, request: Request) -> Response:
        grant = authorized(self.access, request, Role.WRITE)
        if grant is None:
            return _unauthorized()
        if await self._owned(request) is None:
            return self._not_found(request)
        instance_id = request.path_params["instance_id"]
        try:
            await grant.check_instance(self.registry, instance_id)
            removed = await self.registry.deregister(instance_id,
                                                     lease_token_hash=presented_lease(grant, _EUREKA, instance_id))
        except LeaseTokenError:
            return self._foreign(instance_id)
        except ServiceNotInScopeError as exc:
            return _not_in_scope(exc)
        return Response(status_code=200) if removed is not None else self._not_found(request)
