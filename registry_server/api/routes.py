"""The REST endpoints of SPEC §1, as methods of one object holding the registry they serve."""

from __future__ import annotations

import asyncio
import secrets

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from registry_server.api.access import DERIVED_LEASE_PREFIX, Access, Role, UnauthorizedError, presented
from registry_server.api.admission import Admission
from registry_server.api.body import BodyReader, parse_body
from registry_server.api.errors import ApiError, instance_not_found
from registry_server.api.openapi import openapi_document
from registry_server.api.query import NAME, filtered, status_filter
from registry_server.api.responses import JSONResponse
from registry_server.errors import InstanceConflictError, StoreError
from registry_server.metrics import RegistryMetrics
from registry_server.model import (
    HealthCheckRequest,
    HealthCheckSpec,
    InstanceRegistration,
    InstanceStatus,
    lease_token_hash,
)
from registry_server.registry import Registry
from registry_server.schemas import HealthCheckIn, RegisterRequest, document_size_error
from registry_server.settings import Settings


class RegistryApi:
    def __init__(self, registry: Registry, settings: Settings, metrics: RegistryMetrics, access: Access,
                 body: BodyReader, admission: Admission) -> None:
        self.registry = registry
        self.admission = admission
        self.settings = settings
        self.metrics = metrics
        self.access = access
        self.body = body

    def routes(self) -> list[Route]:
        return [
            Route("/instances", self.register, methods=["POST"]),
            Route("/instances", self.list_instances, methods=["GET"]),
            Route("/instances/{id}", self.get_instance, methods=["GET"]),
            Route("/instances/{id}", self.deregister, methods=["DELETE"]),
            Route("/services", self.list_services, methods=["GET"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/metrics", self.metrics_endpoint, methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
        ]

    async def register(self, request: Request) -> Response:
        grant = self.access.authorize(presented(request), Role.WRITE)
        body = await parse_body(request, RegisterRequest, self.body)
        grant.check(body.name)
        host = body.host or (request.client.host if request.client else None)
        if not host:
            raise ApiError(422, "validation_error", "request body failed validation",
                           details=[{"field": "host", "message": "no host given and no peer address known",
                                     "type": "missing"}])
        if body.lease_token and body.lease_token.startswith(DERIVED_LEASE_PREFIX):
            raise ApiError(422, "validation_error", "request body failed validation",
                           details=[{"field": "lease_token", "type": "value_error",
                                     "message": f"a lease token may not begin with {DERIVED_LEASE_PREFIX!r}"}])
        lease_token = body.lease_token or secrets.token_urlsafe(24)
        registration = InstanceRegistration(
            id=body.id or f"{body.name}-{secrets.token_hex(8)}", name=body.name, host=host, port=body.port,
            scheme=body.scheme, health_endpoint=body.health_endpoint, version=body.version,
            description=body.description, status=InstanceStatus(body.status), metadata=body.metadata,
            lease_token_hash=lease_token_hash(lease_token), health_check=health_check_request(body.health_check))
        oversize = document_size_error(registration.document())
        if oversize is not None:
            raise ApiError(422, "validation_error", "request body failed validation",
                           details=[{"field": "body", "message": oversize, "type": "too_long"}])
        try:
            result = await self.registry.register(
                registration, lease_token_hash=grant.lease_hash(request.headers.get("x-lease-token")))
        except InstanceConflictError as exc:
            raise ApiError(409, "instance_id_conflict", str(exc)) from None
        payload = result.instance.to_json()
        payload["lease_token"] = lease_token
        if result.created:
            return JSONResponse(payload, status_code=201, headers={"Location": f"/instances/{registration.id}"})
        return JSONResponse(payload)

    async def deregister(self, request: Request) -> Response:
        grant = self.access.authorize(presented(request), Role.WRITE)
        instance_id = request.path_params["id"]
        await grant.check_instance(self.registry, instance_id)
        lease = grant.lease_hash(request.headers.get("x-lease-token"))
        if await self.registry.deregister(instance_id, lease_token_hash=lease) is None:
            raise instance_not_found(instance_id)
        return Response(status_code=204)

    async def get_instance(self, request: Request) -> Response:
        self.access.authorize(presented(request), Role.READ)
        instance_id = request.path_params["id"]
        inst = await self.registry.get(instance_id)
        if inst is None:
            raise instance_not_found(instance_id)
        return JSONResponse(inst.to_json())

    async def list_instances(self, request: Request) -> Response:
        self.access.authorize(presented(request), Role.READ)
        statuses = status_filter(request)  # bad filters answer 422 before any store work
        name = request.query_params.get("name")
        if name:
            instances = (await self.registry.service(name)).instances if NAME.fullmatch(name) else []
        else:
            instances = await self.registry.all_instances()
        return JSONResponse({"instances": filtered(instances, statuses, request.query_params.get("version"))})

    async def list_services(self, request: Request) -> Response:
        self.access.authorize(presented(request), Role.READ)
        summaries = await self.registry.services()
        return JSONResponse({"services": [s.to_json() for s in summaries]})

    async def healthz(self, request: Request) -> Response:
        store = self.registry.store
        try:
            async with asyncio.timeout(self.settings.store_timeout_s):
                await self.registry.ping()
        except (StoreError, TimeoutError) as exc:
            return JSONResponse({"status": "unavailable", "store": store.kind,
                                 **self._protection(),
                                 "error": {"code": "store_unavailable", "message": str(exc) or "timed out"}},
                                status_code=503)
        return JSONResponse({"status": "ok", "store": store.kind, **self._protection()})

    def _protection(self) -> dict[str, object]:
        protection = self.registry.protection
        revival = protection.revival
        return {"expiry_protection": protection.active,
                "shedding": protection.shedding_since_ms is not None,
                "holding": protection.holding_since_ms is not None,
                "heartbeat_spacing_s": self.admission.spacing_s,
                "fleet_revival": None if revival is None else {
                    "absent_since_ms": revival.absent_since_ms, "at_ms": revival.at_ms,
                    "extended": revival.extended}}

    async def metrics_endpoint(self, request: Request) -> Response:
        if not self.access.may_scrape(presented(request)):
            raise UnauthorizedError
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document())




def health_check_request(given: HealthCheckIn | bool | None) -> HealthCheckRequest:
    """``health_check`` as given: its own checks, ``False`` for none, else the registry's default."""
    if isinstance(given, HealthCheckIn):
        return HealthCheckSpec(given.interval, given.timeout, given.failures, given.deregister_after)
    return False if given is False else None
