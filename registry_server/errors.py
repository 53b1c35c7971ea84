"""The registry's exceptions, one tree rooted at :class:`RegistryError`.

RegistryError
├── ConfigError            a setting is invalid (the CLI exits with status 2)
├── StoreError             the store failed an operation
│   └── StoreUnavailableError   the store cannot be reached (answered as 503)
├── InstanceConflictError  an id is already registered under another service name (409)
└── LeaseTokenError        a lease token missing or not the instance's own (403)
"""

from __future__ import annotations


class RegistryError(Exception):
    """Root of every error raised by ``registry_server``."""


class ConfigError(RegistryError):
    """A configuration value is invalid; the message names the setting."""


class StoreError(RegistryError):
    """The instance store failed an operation."""

    def __init__(self, operation: str, message: str) -> None:
        super().__init__(f"{operation}: {message}")
        self.operation = operation


class StoreUnavailableError(StoreError):
    """The instance store cannot be reached (connection refused, timed out, loading)."""


class InstanceConflictError(RegistryError):
    """The instance id is registered under another service name."""

    def __init__(self, instance_id: str, owner: str) -> None:
        super().__init__(f"instance id {instance_id!r} is registered under service {owner!r}")
        self.instance_id = instance_id
        self.owner = owner


class LeaseTokenError(RegistryError):
    """The caller did not present the instance's lease token (nor the admin token)."""

    def __init__(self, instance_id: str) -> None:
        super().__init__(f"instance {instance_id!r} belongs to another lease: send its lease token in "
                         "X-Lease-Token (or the admin bearer token)")
        self.instance_id = instance_id
