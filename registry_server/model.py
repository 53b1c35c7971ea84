"""Values the registry deals in: statuses, registrations, instances and service summaries."""

from __future__ import annotations

import enum
import functools
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class InstanceStatus(enum.StrEnum):
    UP = "UP"
    DOWN = "DOWN"
    STARTING = "STARTING"
    STOPPING = "STOPPING"


STATUSES: dict[str, InstanceStatus] = {s.value: s for s in InstanceStatus}
"""Each status by its name: a dict lookup, where ``InstanceStatus(name)`` costs an enum call."""


@functools.lru_cache(maxsize=4096)
def _utc_second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def lease_token_hash(token: str) -> str:
    """128 bits of SHA-256 (hex): ample against guessing, and 32 bytes less per stored instance."""
    return hashlib.sha256(token.encode()).hexdigest()[:32]


@functools.lru_cache(maxsize=65536)
def format_timestamp(ms: int) -> str:
    """RFC 3339, UTC, millisecond precision, ``Z`` suffix (cached: discovery renders the same instants
    again and again between heartbeats)."""
    seconds, millis = divmod(ms, 1000)
    return f"{_utc_second(seconds)}.{millis:03d}Z"


DOCUMENT_DEFAULTS: dict[str, Any] = {"scheme": "http", "health_endpoint": "/health", "version": "",
                                     "description": "", "metadata": {}, "health_check": None}
"""Fields a stored document leaves out when they hold these values (a registry holds millions)."""


def compact_document(document: dict[str, Any]) -> str:
    """The document as stored: JSON without the fields at their defaults, keys sorted, no spaces."""
    kept = {k: v for k, v in document.items() if k not in DOCUMENT_DEFAULTS or DOCUMENT_DEFAULTS[k] != v}
    return json.dumps(kept, separators=(",", ":"), sort_keys=True)


@functools.lru_cache(maxsize=65536)
def base_url(scheme: str, host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host  # IPv6 literals need brackets in a URL
    return f"{scheme}://{shown}:{port}"


class HealthStatus(enum.StrEnum):
    """What the registry's own checks of an instance found."""

    UNCHECKED = "unchecked"
    PASSING = "passing"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class HealthCheckSpec:
    """How often and how strictly one instance is checked (``deregister_after_s`` 0: never removed)."""

    interval_s: float
    timeout_s: float
    failures: int
    deregister_after_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"interval": self.interval_s, "timeout": self.timeout_s, "failures": self.failures,
                "deregister_after": self.deregister_after_s}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> HealthCheckSpec:
        return cls(float(raw["interval"]), float(raw["timeout"]), int(raw["failures"]),
                   float(raw.get("deregister_after", 0.0)))


HealthCheckRequest = HealthCheckSpec | bool | None
"""A registration's wish: its own spec, ``False`` to opt out, ``None`` (or ``True``) for the registry's
default."""


@dataclass(frozen=True, slots=True)
class Health:
    """The outcome of the registry's checks of one instance, as every answer shows it."""

    status: HealthStatus = HealthStatus.UNCHECKED
    checked_at_ms: int | None = None
    output: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status.value,
                "checked_at": None if self.checked_at_ms is None else format_timestamp(self.checked_at_ms),
                "output": self.output}


UNCHECKED = Health()


def effective_health_check(request: HealthCheckRequest, default: HealthCheckSpec) -> HealthCheckSpec | None:
    """The checks an instance gets: its own spec, none when it opted out, else the registry's default
    (``interval_s`` 0: none)."""
    if isinstance(request, HealthCheckSpec):
        return request
    if request is False or default.interval_s <= 0:
        return None
    return default


def health_check_document(request: HealthCheckRequest) -> Any:
    """A registration's ``health_check`` as stored in its document (``None``: the registry's default)."""
    if isinstance(request, HealthCheckSpec):
        return request.to_json()
    return False if request is False else None


def health_check_request(stored: Any) -> HealthCheckRequest:
    if isinstance(stored, dict):
        return HealthCheckSpec.from_json(stored)
    return False if stored is False else None


@dataclass(frozen=True, slots=True)
class InstanceRegistration:
    """What a service asks to be registered as (already validated)."""

    id: str
    name: str
    host: str
    port: int
    scheme: str = "http"
    health_endpoint: str = "/health"
    version: str = ""
    description: str = ""
    status: InstanceStatus = InstanceStatus.UP
    metadata: dict[str, str] = field(default_factory=dict)
    lease_token_hash: str = ""
    """:func:`lease_token_hash` of the instance's lease token; the token itself is never stored."""
    health_check: HealthCheckRequest = None

    def document(self) -> dict[str, Any]:
        """The fields that change only on (re-)registration, as stored."""
        return {"name": self.name, "host": self.host, "port": self.port, "scheme": self.scheme,
                "health_endpoint": self.health_endpoint, "version": self.version,
                "description": self.description, "metadata": self.metadata,
                "health_check": health_check_document(self.health_check)}


@dataclass(slots=True)
class Instance:
    """A registered instance as readers see it. Read-only by convention: not frozen, because a frozen
    dataclass is built field by field through ``object.__setattr__`` (4.6 against 1.0 us here), and one
    is built for every heartbeat answered and every instance read."""

    id: str
    name: str
    host: str
    port: int
    scheme: str
    health_endpoint: str
    version: str
    description: str
    status: InstanceStatus
    metadata: dict[str, str]
    registered_at_ms: int
    last_heartbeat_ms: int
    expires_at_ms: int
    health: Health = UNCHECKED
    health_check: HealthCheckRequest = None
    """What the registration asked for (see :data:`HealthCheckRequest`)."""

    @classmethod
    def from_document(cls, instance_id: str, doc: dict[str, Any], status: str, registered_at_ms: int,
                      last_heartbeat_ms: int, expires_at_ms: int, health: Health = UNCHECKED) -> Instance:
        return cls(id=instance_id, name=doc["name"], host=doc["host"], port=int(doc["port"]),
                   scheme=doc["scheme"], health_endpoint=doc["health_endpoint"], version=doc["version"],
                   description=doc["description"], status=STATUSES[status], metadata=doc["metadata"],
                   registered_at_ms=registered_at_ms, last_heartbeat_ms=last_heartbeat_ms,
                   expires_at_ms=expires_at_ms, health=health,
                   health_check=health_check_request(doc["health_check"]))

    @property
    def url(self) -> str:
        return base_url(self.scheme, self.host, self.port)

    def is_live(self, now_ms: int) -> bool:
        """A lease is live strictly before its expiry time."""
        return now_ms < self.expires_at_ms

    def to_json(self) -> dict[str, Any]:
        url = self.url
        return {"id": self.id, "name": self.name, "host": self.host, "port": self.port,
                "scheme": self.scheme, "url": url, "health_endpoint": self.health_endpoint,
                "health_url": url + self.health_endpoint, "version": self.version,
                "description": self.description, "status": self.status.value, "metadata": self.metadata,
                "registered_at": format_timestamp(self.registered_at_ms),
                "last_heartbeat": format_timestamp(self.last_heartbeat_ms),
                "expires_at": format_timestamp(self.expires_at_ms), "health": self.health.to_json()}


class Expired(NamedTuple):
    """An instance the sweep removed because its lease ran out: all a sweep reports of it. (Building the
    whole instance of each of 10,000 expiring at once cost more CPU than the rest of the sweep.)"""

    id: str
    name: str


class Renewal(NamedTuple):
    """A heartbeat's outcome: the renewed instance, and whether it changed the status (a heartbeat that
    repeats the status it has changes nothing a reader sees but the lease)."""

    instance: Instance
    status_changed: bool


class HealthRecord(NamedTuple):
    """A check's outcome as recorded: the instance after it, the health status it moved to (``None``:
    no move), and whether it was deregistered for having been critical too long."""

    instance: Instance
    transition: HealthStatus | None
    deregistered: bool


@dataclass(frozen=True, slots=True)
class RegisterResult:
    instance: Instance
    created: bool
    revision: int
    replaced_expired: bool = False
    """The id's previous lease had run out unswept: that is an expiry, counted by whoever saw it."""


@dataclass(frozen=True, slots=True)
class ServiceSummary:
    name: str
    instances: int
    statuses: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "instances": self.instances, "statuses": self.statuses}


@dataclass(frozen=True, slots=True)
class ServiceSnapshot:
    """A service's live instances (sorted by id) and its revision."""

    name: str
    revision: int
    instances: list[Instance]


class EventType(enum.StrEnum):
    REGISTERED = "registered"
    UPDATED = "updated"
    """Re-registered with other fields (version, metadata, ...)."""
    STATUS_CHANGED = "status_changed"
    DEREGISTERED = "deregistered"
    EXPIRED = "expired"


def event_id_order(event_id: str) -> tuple[int, int, str]:
    """Change-event ids in their order: ``<ms>-<seq>`` and, for per-service histories, ``/<service>``.

    Events of one service are strictly ordered; across services the order follows the stream ids'
    times. Anything unparseable sorts first.
    """
    position, _, service = event_id.partition("/")
    ms, _, seq = position.partition("-")
    try:
        return int(ms), int(seq or 0), service
    except ValueError:
        return (-1, -1, "")


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One change of a service's membership or of an instance's status, as the change stream carries it."""

    id: str
    type: EventType
    service: str
    revision: int
    instance: Instance

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type.value, "service": self.service, "revision": self.revision,
                "instance": self.instance.to_json()}


class ChangeNotice:
    """A change as the live feed announces it: its service at once, the whole event only when asked for.

    A replica hears every change of every service; most only wake the watchers of that service. The
    event, with its instance, is built on first use (a mass expiry announces thousands nobody streams)."""

    __slots__ = ("_build", "_event", "service")

    def __init__(self, service: str, build: Callable[[], ChangeEvent]) -> None:
        self.service = service
        self._event: ChangeEvent | None = None
        self._build: Callable[[], ChangeEvent] | None = build

    @classmethod
    def of(cls, event: ChangeEvent) -> ChangeNotice:
        return cls(event.service, lambda: event)

    @property
    def event(self) -> ChangeEvent:
        if self._event is None:
            assert self._build is not None
            self._event, self._build = self._build(), None
        return self._event

    def __repr__(self) -> str:
        return f"ChangeNotice({self.service!r}, built={self._event is not None})"
