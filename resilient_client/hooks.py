"""What a client and a manager report: pass callables as ``hooks=`` to receive one event per happening.

::

    def log_failovers(event: Event) -> None:
        if isinstance(event, FailedOver):
            log.warning("%s: failed over from %s", event.service, event.from_instance)

    client = ResilientClient(manager, hooks=[log_failovers])

A hook is called synchronously, in the call's own task, with one frozen event; an exception it raises is
logged and otherwise ignored. The Prometheus metrics (:mod:`resilient_client.metrics`) are kept without
hooks: an event is built only when there is a hook to receive it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum, StrEnum


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


class RegistrationState(StrEnum):
    """Where a manager's registration stands (:attr:`ServiceRegistryManager.registration_state`)."""

    UNREGISTERED = "unregistered"
    """Nothing registered: before the first registration, or after deregistering."""
    REGISTERING = "registering"
    """Trying to register, with backoff: the registry has not answered yet, or forgot the instance."""
    REGISTERED = "registered"
    """The registry accepted the registration; heartbeats keep the lease."""


class HeartbeatOutcome(StrEnum):
    OK = "ok"
    REREGISTERED = "reregistered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RequestFinished:
    """One per call, when it returns or raises."""

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
class RetryBudgetExhausted:
    """A call ended instead of retrying or failing over: the client's retry budget had none left."""

    service: str


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
class RegistrationStateChanged:
    """A manager's registration moved to ``state``."""

    service: str
    state: RegistrationState


@dataclass(frozen=True, slots=True)
class HeartbeatSent:
    service: str
    outcome: HeartbeatOutcome


Event = (RequestFinished | FailedOver | Retried | RetryBudgetExhausted | BreakerStateChanged | BreakerRejected
         | BreakerRemoved | DiscoveryLookedUp | DiscoveryProtected | WatchStateChanged | RegistrationAttempted
         | RegistrationStateChanged
         | HeartbeatSent)
Hook = Callable[[Event], None]
