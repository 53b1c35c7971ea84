"""What the registry core announces as it works: the one way it tells metrics, caches and the sweeper.

An observer overrides the announcements it cares about; the others do nothing. :class:`RegistryObservers`
tells several, in the order given (``create_app`` wires them).
"""

from __future__ import annotations

from registry_server.model import HealthStatus, Instance, ServiceSummary


class RegistryObserver:
    def registered(self, instance: Instance, created: bool) -> None:
        """``instance`` was registered (``created``) or re-registered; its lease ends at ``expires_at_ms``."""

    def deregistered(self, instance: Instance) -> None:
        """``instance`` was removed by its owner (or the admin)."""

    def expired(self, service: str, count: int = 1) -> None:
        """``count`` instances of ``service`` expired (their leases ran out with no heartbeat)."""

    def heartbeat(self, instance: Instance, status_changed: bool) -> None:
        """``instance``'s lease was renewed; ``status_changed`` when the heartbeat also changed its status."""

    def unknown_heartbeat(self, instance_id: str) -> None:
        """A heartbeat for an id with no live instance."""

    def store_error(self, operation: str) -> None:
        """A store operation failed."""

    def inventory(self, summaries: list[ServiceSummary]) -> None:
        """The current instance counts by service and status (after each sweep)."""

    def protection(self, active: bool, extended: int = 0) -> None:
        """Expiry protection switched on (store unreachable) or off (``extended`` leases extended)."""

    def health_checked(self, service: str, passed: bool, seconds: float) -> None:
        """One health check of an instance of ``service`` ran (``seconds`` long)."""

    def health_transition(self, instance: Instance, to: HealthStatus) -> None:
        """``instance``'s checks moved it to ``to`` (critical, or passing again)."""

    def health_deregistered(self, instance: Instance) -> None:
        """``instance`` was removed for having been critical too long."""

    def dropped(self, service: str) -> None:
        """``service`` had no instance for the retention period and was dropped from the store."""


class RegistryObservers(RegistryObserver):
    """Tells each of ``observers`` every announcement, in order."""

    def __init__(self, *observers: RegistryObserver) -> None:
        self._observers = observers
        self._heartbeat = tuple(o.heartbeat for o in observers if type(o).heartbeat is not RegistryObserver.heartbeat)
        """Only those that hear heartbeats: one for every heartbeat answered is the registry's busiest call."""

    def __repr__(self) -> str:
        return f"RegistryObservers({', '.join(type(o).__name__ for o in self._observers)})"

    def registered(self, instance: Instance, created: bool) -> None:
        for observer in self._observers:
            observer.registered(instance, created)

    def deregistered(self, instance: Instance) -> None:
        for observer in self._observers:
            observer.deregistered(instance)

    def expired(self, service: str, count: int = 1) -> None:
        for observer in self._observers:
            observer.expired(service, count)

    def heartbeat(self, instance: Instance, status_changed: bool) -> None:
        for heard in self._heartbeat:
            heard(instance, status_changed)

    def unknown_heartbeat(self, instance_id: str) -> None:
        for observer in self._observers:
            observer.unknown_heartbeat(instance_id)

    def store_error(self, operation: str) -> None:
        for observer in self._observers:
            observer.store_error(operation)

    def inventory(self, summaries: list[ServiceSummary]) -> None:
        for observer in self._observers:
            observer.inventory(summaries)

    def protection(self, active: bool, extended: int = 0) -> None:
        for observer in self._observers:
            observer.protection(active, extended)

    def health_checked(self, service: str, passed: bool, seconds: float) -> None:
        for observer in self._observers:
            observer.health_checked(service, passed, seconds)

    def health_transition(self, instance: Instance, to: HealthStatus) -> None:
        for observer in self._observers:
            observer.health_transition(instance, to)

    def health_deregistered(self, instance: Instance) -> None:
        for observer in self._observers:
            observer.health_deregistered(instance)

    def dropped(self, service: str) -> None:
        for observer in self._observers:
            observer.dropped(service)
