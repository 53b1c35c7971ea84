"""The ecosystem's discovery protocols on the registry's core: Prometheus HTTP SD, a Eureka-compatible
REST API and a Consul-compatible API subset (see ``docs/interop.md``)."""

from __future__ import annotations

from starlette.routing import Route

from registry_server.api.access import Access
from registry_server.change_hub import ChangeHub
from registry_server.interop.consul_api import ConsulApi
from registry_server.interop.credentials import InteropAccess
from registry_server.interop.eureka_api import EurekaApi
from registry_server.interop.prometheus_api import PrometheusSdApi
from registry_server.registry import Registry
from registry_server.settings import Settings

__all__ = ["ConsulApi", "EurekaApi", "InteropAccess", "PrometheusSdApi", "interop_routes"]


def interop_routes(registry: Registry, hub: ChangeHub, settings: Settings, access: Access) -> list[Route]:
    """Every interop route, for the app's route list."""
    interop_access = InteropAccess(access, settings.admin_token)
    return [*PrometheusSdApi(registry, interop_access).routes(),
            *EurekaApi(registry, settings, interop_access).routes(),
            *ConsulApi(registry, hub, settings, interop_access).routes()]
