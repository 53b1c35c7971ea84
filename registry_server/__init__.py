"""A service registry: a Starlette app on hypercorn with Redis (or embedded) storage and lease expiry.

The names below load on first use, so that importing the package (as the ``registry-server`` console
script does) works without the server's dependencies, which come with the ``[server]`` extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registry_server.app import create_app
    from registry_server.clock import SystemWallClock, WallClock
    from registry_server.errors import ConfigError, RegistryError, StoreError
    from registry_server.model import Instance, InstanceRegistration, InstanceStatus
    from registry_server.settings import Settings, load_settings
    from registry_server.store import InstanceStore, MemoryStore, RedisStore

_HOMES = {
    "ConfigError": "registry_server.errors",
    "Instance": "registry_server.model",
    "InstanceRegistration": "registry_server.model",
    "InstanceStatus": "registry_server.model",
    "InstanceStore": "registry_server.store",
    "MemoryStore": "registry_server.store",
    "RedisStore": "registry_server.store",
    "RegistryError": "registry_server.errors",
    "Settings": "registry_server.settings",
    "StoreError": "registry_server.errors",
    "SystemWallClock": "registry_server.clock",
    "WallClock": "registry_server.clock",
    "create_app": "registry_server.app",
    "load_settings": "registry_server.settings",
}

__all__ = [
    "ConfigError",
    "Instance",
    "InstanceRegistration",
    "InstanceStatus",
    "InstanceStore",
    "MemoryStore",
    "RedisStore",
    "RegistryError",
    "Settings",
    "StoreError",
    "SystemWallClock",
    "WallClock",
    "create_app",
    "load_settings",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'registry_server' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
