"""What the client core reports; metrics (and anything else) subscribe to these events.

The core never imports Prometheus: it calls :meth:`EventBus.emit`, and
:mod:`resilient_client.metrics` is one subscriber.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
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


class Channel:
    """One kind of event reported over and over (:meth:`EventBus.channel`): ``fire(*rest)`` reports
    ``event_type(*fixed, *rest)`` to the bus's subscribers, as ``emit`` would, building the event only for
    a subscriber that takes events (the metrics take the fields themselves). Kept current by its bus."""

    __slots__ = ("event_type", "fire", "fixed")

    def __init__(self, event_type: type, fixed: tuple[object, ...]) -> None:
        self.event_type = event_type
        self.fixed = fixed
        self.fire: Callable[..., None] = _nothing

    def __repr__(self) -> str:
        return f"Channel({self.event_type.__name__}, {', '.join(map(repr, self.fixed))})"


def _nothing(*rest: object) -> None:
    """A channel nobody listens to."""


class EventBus:
    """Calls every subscriber with every event; a failing subscriber is logged, never raised.

    A subscriber that has a ``handler_for(event_type)`` method (the metrics do) is asked once per event
    type for the callable that handles it (``None``: not interested), so an event costs one call per
    interested subscriber. The events of every call (a discovery hit, a finished request) go through
    :meth:`channel`s instead: when the only subscriber interested is one with a ``recorder(event_type,
    *fixed)`` (the metrics: the series to update, bound once), a channel calls that and builds no event.
    """

    __slots__ = ("_by_type", "_channels", "_subscribers")

    def __init__(self, subscribers: Iterable[Subscriber] = ()) -> None:
        self._subscribers: tuple[Subscriber, ...] = tuple(subscribers)
        self._by_type: dict[type, tuple[Subscriber, ...]] = {}
        self._channels: dict[tuple[object, ...], Channel] = {}

    def subscribe(self, subscriber: Subscriber) -> None:
        if subscriber not in self._subscribers:
            self._subscribers = (*self._subscribers, subscriber)
            self._by_type.clear()
            for channel in self._channels.values():
                self._tune(channel)

    def emit(self, event: Event) -> None:
        handlers = self._by_type.get(type(event))
        if handlers is None:
            handlers = self._by_type[type(event)] = self._handlers(type(event))
        for handler in handlers:
            try:
                handler(event)
            except Exception:
                log.exception("event subscriber %r failed on %r", handler, event)

    def channel(self, event_type: type, *fixed: object) -> Channel:
        """The channel of the events ``event_type(*fixed, *rest)`` (one per ``(event_type, *fixed)``, made on
        first use): ``channel(...).fire(*rest)`` is ``emit(event_type(*fixed, *rest))``."""
        key = (event_type, *fixed)
        found = self._channels.get(key)
        if found is None:
            found = self._channels[key] = Channel(event_type, fixed)
            self._tune(found)
        return found

    def _tune(self, channel: Channel) -> None:
        """Set what ``channel.fire`` calls, for the subscribers of now."""
        event_type, fixed = channel.event_type, channel.fixed
        interested = [subscriber for subscriber in self._subscribers if _handles(subscriber, event_type)]
        if not interested:
            channel.fire = _nothing
            return
        recorder = getattr(interested[0], "recorder", None)
        direct = recorder(event_type, *fixed) if recorder is not None and len(interested) == 1 else None
        if direct is not None:
            channel.fire = direct  # (ours, the metrics': it does not raise)
        elif len(fixed) == len(fields(event_type)):  # always the same event: built once
            event = event_type(*fixed)
            channel.fire = lambda: self.emit(event)
        else:
            channel.fire = lambda *rest: self.emit(event_type(*fixed, *rest))

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


def _handles(subscriber: Subscriber, event_type: type) -> bool:
    handler_for = getattr(subscriber, "handler_for", None)
    return handler_for is None or handler_for(event_type) is not None
