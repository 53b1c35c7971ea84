"""A service registry: a Starlette app on hypercorn with Redis (or embedded) storage and lease expiry."""

from registry_server.app import create_app
from registry_server.clock import Clock, SystemClock
from registry_server.errors import (
    ConfigError,
    InstanceConflictError,
    RegistryError,
    StoreError,
    StoreUnavailableError,
)
from registry_server.model import Instance, Registration, Status
from registry_server.settings import Settings, load_settings
from registry_server.store import InstanceStore, MemoryStore, RedisStore

__all__ = [
    "Clock",
    "ConfigError",
    "Instance",
    "InstanceConflictError",
    "InstanceStore",
    "MemoryStore",
    "RedisStore",
    "Registration",
    "RegistryError",
    "Settings",
    "Status",
    "StoreError",
    "StoreUnavailableError",
    "SystemClock",
    "create_app",
    "load_settings",
]
