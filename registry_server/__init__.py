"""A service registry: a Starlette app on hypercorn with Redis (or embedded) storage and lease expiry."""

from registry_server.app import create_app
from registry_server.clock import SystemWallClock, WallClock
from registry_server.errors import ConfigError, RegistryError, StoreError
from registry_server.model import Instance, InstanceRegistration, InstanceStatus
from registry_server.settings import Settings, load_settings
from registry_server.store import InstanceStore, MemoryStore, RedisStore

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
