"""The Consul HTTP API subset (catalog, health, agent registration and TTL checks, blocking queries)
on the registry's core. Mapping rules: :mod:`registry_server.interop.consul`."""

from __future__ import annotations

import random
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from registry_server.api.access import Access, Role, ServiceNotInScopeError
from registry_server.api.body import BodyReader
from registry_server.api.middleware import watching
from registry_server.api.responses import JSONResponse
from registry_server.change_hub import ChangeHub, WatchLimitError
from registry_server.errors import InstanceConflictError, LeaseTokenError
from registry_server.interop import consul
from registry_server.interop.blocking import wait_for_any_change, wait_unless_gone
from registry_server.interop.credentials import Dialect, authorized, interop_lease_hash, presented_lease
from registry_server.interop.negotiation import BodyError, decode_body, text
from registry_server.model import Instance, InstanceStatus
from registry_server.registry import Registry
from registry_server.schemas import NAME_PATTERN, document_size_error
from registry_server.settings import Settings

_DENIED = "Permission denied: this registry needs its token (X-Consul-Token, ?token= or a bearer token)"
_NAME = re.compile(NAME_PATTERN)
_CONSUL = Dialect.CONSUL
_BOOL = {"": True, "1": True, "t": True, "true": True, "0": False, "f": False, "false": False}


def _json(payload: Any, index: int | None = None) -> Response:
    headers = {"X-Consul-KnownLeader": "true", "X-Consul-LastContact": "0"}
    if index is not None:
        headers["X-Consul-Index"] = str(index)
    return JSONResponse(payload, headers=headers)


def _not_in_scope(exc: ServiceNotInScopeError) -> Response:
    return text(403, f"Permission denied: service_not_in_scope: {exc}")


class ConsulApi:
    def __init__(self, registry: Registry, hub: ChangeHub, settings: Settings, access: Access,
                 body: BodyReader) -> None:
        self.registry = registry
        self.hub = hub
        self.settings = settings
        self.access = access
        self.body = body

    def routes(self) -> list[Route]:
        return [
            Route("/v1/catalog/services", self.catalog_services, methods=["GET"]),
            Route("/v1/catalog/service/{name}", self.catalog_service, methods=["GET"]),
            Route("/v1/health/service/{name}", self.health_service, methods=["GET"]),
            Route("/v1/agent/services", self.agent_services, methods=["GET"]),
            Route("/v1/agent/self", self.agent_self, methods=["GET"]),
            Route("/v1/status/leader", self.leader, methods=["GET"]),
            Route("/v1/agent/service/register", self.register, methods=["PUT"]),
            Route("/v1/agent/service/deregister/{id}", self.deregister, methods=["PUT"]),
            Route("/v1/agent/check/pass/{check_id}", self.check_pass, methods=["PUT"]),
            Route("/v1/agent/check/warn/{check_id}", self.check_warn, methods=["PUT"]),
            Route("/v1/agent/check/fail/{check_id}", self.check_fail, methods=["PUT"]),
            Route("/v1/agent/check/update/{check_id}", self.check_update, methods=["PUT"]),
        ]

    # ------------------------------------------------------------------------------- reads

    async def _catalog_index(self) -> int:
        names = [s.name for s in await self.registry.services()]
        return consul.catalog_index({name: await self.registry.store.revision(name) for name in names})

    async def _block(self, request: Request, waiting: Any) -> Response | None:
        """Hold a watcher slot while ``waiting``; an answer when none is free or the client left."""
        watching(request.scope, "blocking")
        try:
            async with self.hub.slot("blocking"):
                if not await wait_unless_gone(request, waiting):
                    return Response(status_code=499)  # nobody reads this; the slot is free again
        except WatchLimitError as exc:
            return text(503, str(exc), {"Retry-After": str(random.randint(1, 5))})
        return None

    @staticmethod
    def _blocking_args(request: Request) -> tuple[int | None, float]:
        index = consul.parse_index(request.query_params.get("index"))
        wait = consul.parse_wait(request.query_params.get("wait"))
        return index, wait + random.uniform(0, wait / 16)

    async def catalog_services(self, request: Request) -> Response:
        if authorized(self.access, request, Role.READ) is None:
            return text(403, _DENIED)
        try:
            index, wait = self._blocking_args(request)
        except ValueError as exc:
            return text(400, str(exc))
        if index:
            early = await self._block(request, wait_for_any_change(self.hub, index, self._catalog_index, wait))
            if early is not None:
                return early
        current = await self._catalog_index()
        services = await self.registry.services()
        return _json({s.name: [] for s in services}, current)

    async def _service(self, request: Request) -> tuple[list[Instance], int] | Response:
        if authorized(self.access, request, Role.READ) is None:
            return text(403, _DENIED)
        name = request.path_params["name"]
        try:
            index, wait = self._blocking_args(request)
        except ValueError as exc:
            return text(400, str(exc))
        if not _NAME.fullmatch(name):
            return [], consul.service_index(0)  # Consul knows no such service: an empty list
        if index:
            early = await self._block(request, self.hub.wait_for_change(name, index - 1, wait))
            if early is not None:
                return early
        view = await self.registry.service(name)
        return view.instances, consul.service_index(view.revision)

    async def catalog_service(self, request: Request) -> Response:
        found = await self._service(request)
        if isinstance(found, Response):
            return found
        instances, index = found
        return _json([consul.catalog_entry(inst, index) for inst in instances], index)

    async def health_service(self, request: Request) -> Response:
        raw = request.query_params.get("passing")
        if raw is not None and raw.lower() not in _BOOL:
            return text(400, f"Invalid value for passing: {raw!r}")
        found = await self._service(request)
        if isinstance(found, Response):
            return found
        instances, index = found
        if raw is not None and _BOOL[raw.lower()]:
            instances = [inst for inst in instances if inst.status is InstanceStatus.UP]
        return _json([consul.health_entry(inst, index) for inst in instances], index)

    async def agent_services(self, request: Request) -> Response:
        if authorized(self.access, request, Role.READ) is None:
            return text(403, _DENIED)
        instances = await self.registry.all_instances()
        return _json({inst.id: consul.agent_service(inst, 1) for inst in instances})

    async def agent_self(self, request: Request) -> Response:
        if authorized(self.access, request, Role.READ) is None:
            return text(403, _DENIED)
        return _json(consul.agent_self())

    async def leader(self, request: Request) -> Response:
        return _json("127.0.0.1:8300")

    # ------------------------------------------------------------------------------ writes

    async def register(self, request: Request) -> Response:
        grant = authorized(self.access, request, Role.WRITE)
        if grant is None:
            return text(403, _DENIED)
        raw = await self.body.read(request.scope, request.receive)
        try:
            parsed = consul.parse_registration(decode_body(raw, request.headers.get("content-type") or
                                                           "application/json"))
        except (BodyError, ValueError) as exc:
            return text(400, str(exc))
        host = parsed.host or (request.client.host if request.client else None)
        if not host:
            return text(400, "Address is required (no peer address known)")
        registration = parsed.registration(host, interop_lease_hash(_CONSUL, parsed.id))
        oversize = document_size_error(registration.document())
        if oversize is not None:
            return text(400, oversize)
        try:
            grant.check(parsed.name)
            await self.registry.register(registration, lease_token_hash=presented_lease(grant, _CONSUL, parsed.id))
        except InstanceConflictError as exc:
            return text(400, str(exc))
        except LeaseTokenError:
            return self._foreign(parsed.id)
        except ServiceNotInScopeError as exc:
            return _not_in_scope(exc)
        return Response(status_code=200)

    @staticmethod
    def _foreign(instance_id: str) -> Response:
        return text(403, f"Permission denied: service {instance_id!r} was registered through the registry's own "
                         "API or another dialect and cannot be changed through the Consul API")

    async def deregister(self, request: Request) -> Response:
        grant = authorized(self.access, request, Role.WRITE)
        if grant is None:
            return text(403, _DENIED)
        instance_id = request.path_params["id"]
        try:
            await grant.check_instance(self.registry, instance_id)
            removed = await self.registry.deregister(instance_id,
                                                     lease_token_hash=presented_lease(grant, _CONSUL, instance_id))
        except LeaseTokenError:
            return self._foreign(instance_id)
        except ServiceNotInScopeError as exc:
            return _not_in_scope(exc)
        if removed is None:
            return text(404, f'Unknown service ID "{instance_id}". Ensure that the service ID is passed, not the '
                             "service name.")
        return Response(status_code=200)

    async def _check(self, request: Request, status: InstanceStatus) -> Response:
        grant = authorized(self.access, request, Role.WRITE)
        if grant is None:
            return text(403, _DENIED)
        check = request.path_params["check_id"]
        instance_id = consul.instance_of_check(check)
        try:
            await grant.check_instance(self.registry, instance_id)
            inst = await self.registry.heartbeat(instance_id, status,
                                                 lease_token_hash=presented_lease(grant, _CONSUL, instance_id))
        except LeaseTokenError:
            return self._foreign(instance_id)
        except ServiceNotInScopeError as exc:
            return _not_in_scope(exc)
        if inst is None:
            return text(404, f'Unknown check ID "{check}". Ensure that the check ID is passed, not the check name.')
        return Response(status_code=200)

    async def check_pass(self, request: Request) -> Response:
        return await self._check(request, InstanceStatus.UP)

    async def check_warn(self, request: Request) -> Response:
        return await self._check(request, InstanceStatus.STARTING)

    async def check_fail(self, request: Request) -> Response:
        return await self._check(request, InstanceStatus.DOWN)

    async def check_update(self, request: Request) -> Response:
        raw = await self.body.read(request.scope, request.receive)
        try:
            body = decode_body(raw, "application/json")
            if not isinstance(body, dict):
                raise consul.ConsulInputError("Request decode failed: the body must be a JSON object")
            fields = {str(k).lower(): v for k, v in body.items()}
            status = consul.status_from_check(str(fields.get("status", "")))
        except (BodyError, ValueError) as exc:
            return text(400, str(exc))
        return await self._check(request, status)
