"""The ecosystem's discovery protocols on the registry's core: Prometheus HTTP SD, a Eureka-compatible
REST API and a Consul-compatible API subset (see ``docs/interop.md``)."""

from __future__ import annotations

from starlette.routing import Route

from registry_server.api.access import Access
from registry_server.api.body import BodyReader
from registry_server.change_hub import ChangeHub
from registry_server.interop.consul_api import ConsulApi
from registry_server.interop.eureka_api import EurekaApi
from registry_server.interop.prometheus_api import PrometheusSdApi
from registry_server.registry import Registry
from registry_server.settings import Settings

__all__ = ["ConsulApi", "EurekaApi", "PrometheusSdApi", "interop_routes"]


def interop_routes(registry: Registry, hub: ChangeHub, settings: Settings, access: Access,
                   body: BodyReader) -> list[Route]:
    """Every interop route, for the app's route list."""
    return [*PrometheusSdApi(registry, access).routes(),
            *EurekaApi(registry, settings, access, body).routes(),
            *ConsulApi(registry, hub, settings, access, body).routes()]
