"""What the client core reports; metrics (and anything else) subscribe to these events.

The core never imports Prometheus: it calls :meth:`EventBus.emit`, and
:mod:`resilient_client.metrics` is one subscriber.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum, StrEnum

log = logging.getLogger(__name__)


class RequestOutcome(StrEnum):
    SUCCESS = "success"
    """An HTTP response below 500 was returned."""
    FAILURE = "failure"
    """A 5xx was returned as the last response, or every attempt failed below HTTP."""
    CIRCUIT_OPEN = "circuit_open"
    """Every instance's breaker was open: failed at once, without I/O."""
    NO_INSTANCES = "no_instances"
    """Discovery found no UP instance (or could not reach the registry and had nothing cached)."""


class BreakerState(IntEnum):
    """The value of the ``resilient_client_circuit_breaker_state`` gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


class DiscoveryResult(StrEnum):
    HIT = "hit"
    MISS = "miss"
    STALE = "stale"
    ERROR = "error"
    PROTECTED = "protected"
    """Served the last known instances in place of an empty answer (empty-set protection)."""


class ProtectionOutcome(StrEnum):
    """What an answer did to empty-set protection."""

    STARTED = "started"
    """An empty answer was not believed: the last known instances are kept."""
    RECOVERED = "recovered"
    """Instances came back while protecting."""
    EMPTIED = "emptied"
    """Protection ended with the empty set: the grace period ran out, or the revision moved past the
    kept instances' (a real deregistration or expiry after all)."""


class WatchState(StrEnum):
    WATCHING = "watching"
    """A blocking query answered: the cached answer is kept current by the registry."""
    POLLING = "polling"
    """Blocking queries fail (or are not supported): the cache falls back to TTL polling meanwhile."""
    STOPPED = "stopped"
    """Not watched any more (unused for a while, or closed)."""


class RegistrationOutcome(StrEnum):
    OK = "ok"
    FAILED = "failed"


class HeartbeatOutcome(StrEnum):
    OK = "ok"
    REREGISTERED = "reregistered"
    FAILED = "failed"


@dataclass(slots=True, unsafe_hash=True)
class RequestFinished:
    """One per call. Treat it as read-only: it is not ``frozen`` only because a frozen dataclass costs
    several times as much to build (hashable all the same, as the frozen events are)."""

    service: str
    outcome: RequestOutcome
    duration_s: float


@dataclass(frozen=True, slots=True)
class FailedOver:
    """A call moved from one instance to the next."""

    service: str
    from_instance: str


@dataclass(frozen=True, slots=True)
class Retried:
    """A call started another pass over the instances after a backoff wait."""

    service: str
    delay_s: float


@dataclass(frozen=True, slots=True)
class BreakerStateChanged:
    """``transition`` is ``False`` for the state a breaker is created in."""

    service: str
    instance: str
    state: BreakerState
    transition: bool = True


@dataclass(frozen=True, slots=True)
class BreakerRejected:
    """An open breaker (or a full set of half-open probes) turned a call away without I/O."""

    service: str
    instance: str


@dataclass(frozen=True, slots=True)
class BreakerRemoved:
    """An instance left discovery: its breaker is dropped, and its state gauge series goes with it."""

    service: str
    instance: str


@dataclass(frozen=True, slots=True)
class DiscoveryLookedUp:
    service: str
    result: DiscoveryResult


@dataclass(frozen=True, slots=True)
class DiscoveryProtected:
    """Empty-set protection started or ended for a service (``service`` of ``*`` never protects)."""

    service: str
    outcome: ProtectionOutcome


@dataclass(frozen=True, slots=True)
class WatchStateChanged:
    service: str
    state: WatchState


@dataclass(frozen=True, slots=True)
class RegistrationAttempted:
    service: str
    outcome: RegistrationOutcome


@dataclass(frozen=True, slots=True)
class HeartbeatSent:
    service: str
    outcome: HeartbeatOutcome


Event = (RequestFinished | FailedOver | Retried | BreakerStateChanged | BreakerRejected | BreakerRemoved
         | DiscoveryLookedUp | DiscoveryProtected | WatchStateChanged | RegistrationAttempted | HeartbeatSent)
Subscriber = Callable[[Event], None]


class EventBus:
    """Calls every subscriber with every event; a failing subscriber is logged, never raised.

    A subscriber that has a ``handler_for(event_type)`` method (the metrics do) is asked once per event
    type for the callable that handles it (``None``: not interested), so an event costs one call per
    interested subscriber: two events are emitted on every request.
    """

    __slots__ = ("_by_type", "_subscribers")

    def __init__(self, subscribers: Iterable[Subscriber] = ()) -> None:
        self._subscribers: tuple[Subscriber, ...] = tuple(subscribers)
        self._by_type: dict[type, tuple[Subscriber, ...]] = {}

    def subscribe(self, subscriber: Subscriber) -> None:
        if subscriber not in self._subscribers:
            self._subscribers = (*self._subscribers, subscriber)
            self._by_type.clear()

    def emit(self, event: Event) -> None:
        handlers = self._by_type.get(type(event))
        if handlers is None:
            handlers = self._by_type[type(event)] = self._handlers(type(event))
        for handler in handlers:
            try:
                handler(event)
            except Exception:
                log.exception("event subscriber %r failed on %r", handler, event)

    def _handlers(self, event_type: type) -> tuple[Subscriber, ...]:
        found: list[Subscriber] = []
        for subscriber in self._subscribers:
            handler_for = getattr(subscriber, "handler_for", None)
            handler = subscriber if handler_for is None else handler_for(event_type)
            if handler is not None:
                found.append(handler)
        return tuple(found)

    def __repr__(self) -> str:
        return f"EventBus(subscribers={len(self._subscribers)})"
