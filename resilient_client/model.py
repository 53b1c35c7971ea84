"""Values the registry hands out: :class:`ServiceInstance` and its :class:`Status`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class Status(StrEnum):
    """An instance's status as the registry stores it."""

    UP = "UP"
    DOWN = "DOWN"
    STARTING = "STARTING"
    STOPPING = "STOPPING"


def parse_timestamp(value: str | None) -> datetime | None:
    """An RFC 3339 timestamp (``Z`` suffix allowed) as an aware ``datetime``; ``None`` stays ``None``."""
    if not value:
        return None
    return datetime.fromisoformat(value)


@dataclass(frozen=True, slots=True)
class ServiceInstance:
    """One registered instance of a service, as the registry's JSON describes it."""

    id: str
    name: str
    host: str
    port: int
    status: Status = Status.UP
    scheme: str = "http"
    url: str = ""
    health_endpoint: str = "/health"
    health_url: str = ""
    version: str = ""
    description: str = ""
    metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    registered_at: datetime | None = None
    last_heartbeat: datetime | None = None
    expires_at: datetime | None = None

    @property
    def address(self) -> str:
        """``host:port``, the label instance metrics use."""
        return f"{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Where requests go: the registered ``url``, else ``scheme://host:port``."""
        return self.url or f"{self.scheme}://{self.host}:{self.port}"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServiceInstance:
        """Build from the registry's JSON; unknown fields are ignored."""
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            host=str(data["host"]),
            port=int(data["port"]),
            status=Status(data.get("status", "UP")),
            scheme=str(data.get("scheme", "http")),
            url=str(data.get("url", "")).rstrip("/"),
            health_endpoint=str(data.get("health_endpoint", "/health")),
            health_url=str(data.get("health_url", "")),
            version=str(data.get("version", "")),
            description=str(data.get("description", "")),
            metadata=MappingProxyType(dict(data.get("metadata") or {})),
            registered_at=parse_timestamp(data.get("registered_at")),
            last_heartbeat=parse_timestamp(data.get("last_heartbeat")),
            expires_at=parse_timestamp(data.get("expires_at")),
        )


@dataclass(frozen=True, slots=True)
class ServiceAnswer:
    """One discovery answer of the registry: the instances and the service's revision.

    ``revision`` is the ``X-Registry-Index`` header; ``None`` from a registry that does not send one (no
    blocking-query support).
    """

    instances: tuple[ServiceInstance, ...]
    revision: int | None = None
