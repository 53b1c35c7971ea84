"""``GET /prometheus/targets``: Prometheus ``http_sd_configs`` (mapping: :mod:`prometheus_sd`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from registry_server.api.access import Access, Role
from registry_server.api.query import service_name
from registry_server.api.responses import JSONResponse
from registry_server.interop.credentials import authorized
from registry_server.interop.negotiation import text
from registry_server.interop.prometheus_sd import targets
from registry_server.registry import Registry


class PrometheusSdApi:
    def __init__(self, registry: Registry, access: Access) -> None:
        self.registry = registry
        self.access = access

    def routes(self) -> list[Route]:
        return [Route("/prometheus/targets", self.targets, methods=["GET"])]

    async def targets(self, request: Request) -> Response:
        if authorized(self.access, request, Role.READ) is None:
            return text(401, "this registry needs its read token (authorization: credentials in http_sd_configs)",
                        {"WWW-Authenticate": 'Bearer realm="registry"'})
        raw = request.query_params.get("service")
        if raw:
            instances = (await self.registry.service(service_name(raw, "service"))).instances
        else:
            instances = await self.registry.all_instances()
        return JSONResponse(targets(instances))
