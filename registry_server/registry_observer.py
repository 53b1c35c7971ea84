"""What the registry core reports as it works; metrics (and later change streams) subscribe to it."""

from __future__ import annotations

from typing import Protocol

from registry_server.model import Instance, ServiceSummary


class RegistryObserver(Protocol):
    def registered(self, instance: Instance, created: bool) -> None: ...

    def deregistered(self, instance: Instance) -> None: ...

    def expired(self, service: str, count: int = 1) -> None:
        """``count`` instances of ``service`` expired (their leases ran out with no heartbeat)."""
        ...

    def heartbeat(self, instance: Instance) -> None: ...

    def unknown_heartbeat(self, instance_id: str) -> None: ...

    def store_error(self, operation: str) -> None: ...

    def inventory(self, summaries: list[ServiceSummary]) -> None:
        """The current instance counts by service and status (after each sweep)."""
        ...

    def protection(self, active: bool, extended: int = 0) -> None:
        """Expiry protection switched on (store unreachable) or off (``extended`` leases extended)."""
        ...
