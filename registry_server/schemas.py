"""Request and response schemas: one definition validates bodies and renders ``/openapi.json``."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from registry_server.model import compact_document

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_HOST_PATTERN = r"^[A-Za-z0-9._:-]{1,253}$"
_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")

# Characters no text field takes: C0 and C1 controls, UTF-16 surrogates (a lone one cannot be encoded as
# UTF-8, so one stored would fail every answer that includes it) and the two noncharacters XML 1.0 refuses.
_NOT_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
# The same, but for text that documents tab and newline as allowed (the description).
_NOT_PROSE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
MAX_DOCUMENT_BYTES = 16 * 1024
"""The most an instance's registered document (everything but its lease and status) may take as stored."""


def document_size_error(document: dict[str, Any]) -> str | None:
    """Why ``document`` (:meth:`InstanceRegistration.document`) is too large to register, or ``None``."""
    size = len(compact_document(document))
    if size > MAX_DOCUMENT_BYTES:
        return f"the registration takes {size} bytes as stored, over the limit of {MAX_DOCUMENT_BYTES}"
    return None


def plain_text(value: str) -> str:
    """``value`` when it is text every dialect can carry (JSON and XML): no control characters, no
    surrogates, no noncharacters; else :class:`ValueError`. Every dialect validates its text with it."""
    return _checked(_NOT_TEXT, value)


def prose(value: str) -> str:
    """:func:`plain_text` that also allows tab and newline."""
    return _checked(_NOT_PROSE, value)


def _checked(pattern: re.Pattern[str], value: str) -> str:
    bad = pattern.search(value)
    if bad is not None:
        raise ValueError(f"character U+{ord(bad.group()):04X} at position {bad.start()} is not allowed")
    return value


Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, min_length=1, max_length=128)]
StatusName = Literal["UP", "DOWN", "STARTING", "STOPPING"]
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=128), AfterValidator(plain_text)]
MetadataValue = Annotated[str, StringConstraints(max_length=1024), AfterValidator(plain_text)]


def valid_host(value: str) -> str:
    """An IP literal or a DNS hostname (labels of letters, digits, ``-`` and ``_``).

    An unspecified address (``0.0.0.0``, ``::``) is a bind address, reachable by nobody: refused. An IPv6
    zone (``fe80::1%eth0``) is refused: it names an interface of one host, and it may hold any text.
    """
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        pass
    else:
        if "%" in value:
            raise ValueError("must be a hostname or an IP address without a zone")
        if address.is_unspecified:
            raise ValueError("must be an address others can reach, not an unspecified (bind) address")
        return value
    labels = value[:-1].split(".") if value.endswith(".") else value.split(".")
    if len(value) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError("must be a hostname or an IP address")
    return value


class HealthCheckIn(BaseModel):
    """A registration's own active health checks (``health_check`` of ``POST /instances``)."""

    model_config = ConfigDict(strict=True, extra="forbid", title="HealthCheck")

    interval: float = Field(gt=0, le=3600, description="seconds between checks")
    timeout: float = Field(default=2.0, gt=0, le=300, description="seconds a check may take")
    failures: int = Field(default=2, ge=1, le=100, description="failed checks in a row before critical")
    deregister_after: float = Field(default=0.0, ge=0, le=86400 * 365,
                                    description="seconds critical before deregistration (0: never)")


class RegisterRequest(BaseModel):
    """Body of ``POST /instances``."""

    model_config = ConfigDict(strict=True, extra="ignore", title="RegisterRequest")

    name: Name = Field(description="Service name: 1-128 of A-Z a-z 0-9 . _ -, starting with a letter or digit")
    port: Annotated[int, Field(ge=1, le=65535)]
    host: Annotated[str, StringConstraints(pattern=_HOST_PATTERN, max_length=253)] | None = Field(
        default=None, description="Hostname or IP literal; default: the request's peer address")
    scheme: Literal["http", "https"] = "http"
    health_endpoint: Annotated[str, StringConstraints(pattern=r"^/[^\s]*$", max_length=1024),
                               AfterValidator(plain_text)] = "/health"
    version: Annotated[str, StringConstraints(max_length=128), AfterValidator(plain_text)] = ""
    description: Annotated[str, StringConstraints(max_length=1024), AfterValidator(prose)] = Field(
        default="", description="Free text; tab and newline are the only control characters allowed")
    status: StatusName = "UP"
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=64)] = Field(default_factory=dict)
    id: Name | None = Field(default=None, description="Client-chosen instance id; same charset as name")
    lease_token: Annotated[str, StringConstraints(min_length=16, max_length=256)] | None = None
    health_check: HealthCheckIn | bool | None = Field(
        default=None, description="Active health checks: own settings, false for none, absent or true for "
                                  "the registry's default")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        return None if value is None else valid_host(value)


class HeartbeatRequest(BaseModel):
    """Optional body of ``PUT /instances/{id}/heartbeat``."""

    model_config = ConfigDict(strict=True, extra="ignore", title="HeartbeatRequest")

    status: StatusName | None = None


class InstanceHealthOut(BaseModel):
    """What the registry's own checks of an instance found."""

    model_config = ConfigDict(title="InstanceHealth")

    status: Literal["unchecked", "passing", "critical"]
    checked_at: str | None = Field(description="RFC 3339, UTC, milliseconds; null before the first check")
    output: str


class InstanceOut(BaseModel):
    """An instance as the registry returns it."""

    model_config = ConfigDict(title="Instance")

    id: str
    name: str
    host: str
    port: int
    scheme: Literal["http", "https"]
    url: str
    health_endpoint: str
    health_url: str
    version: str
    description: str
    status: StatusName
    metadata: dict[str, str]
    registered_at: str = Field(description="RFC 3339, UTC, milliseconds")
    last_heartbeat: str
    expires_at: str
    health: InstanceHealthOut


class RegisteredInstanceOut(InstanceOut):
    """The register response: the instance and its lease token (only ever returned here)."""

    model_config = ConfigDict(title="RegisteredInstance")

    lease_token: str


class InstanceListOut(BaseModel):
    model_config = ConfigDict(title="InstanceList")

    instances: list[InstanceOut]


class ServiceInstancesOut(BaseModel):
    model_config = ConfigDict(title="ServiceInstances")

    name: str
    instances: list[InstanceOut]


class ServiceSummaryOut(BaseModel):
    model_config = ConfigDict(title="ServiceSummary")

    name: str
    instances: int
    statuses: dict[str, int]


class ServiceListOut(BaseModel):
    model_config = ConfigDict(title="ServiceList")

    services: list[ServiceSummaryOut]


class ErrorDetail(BaseModel):
    field: str
    message: str
    type: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] | None = None


class FleetRevivalOut(BaseModel):
    model_config = ConfigDict(title="FleetRevival")

    absent_since_ms: int
    at_ms: int
    extended: int


class HealthOut(BaseModel):
    model_config = ConfigDict(title="Health")

    status: Literal["ok", "unavailable"]
    store: str
    expiry_protection: bool = Field(description="true while a store outage pauses expiry and protects leases")
    shedding: bool = Field(description="true while overload holds expiry: writes beyond the in-flight limit "
                                       "are refused with 503 + Retry-After")
    holding: bool = Field(description="true while every live lease of an instance heard within six TTLs is "
                                      "held from expiring: the replica sheds, its event loop runs late "
                                      "(heartbeats may wait unread) or its accept queue is half full (connection "
                                      "attempts may be dropped), and for a second after")
    heartbeat_spacing_s: float | None = Field(
        description="while the replica is saturated, how far apart (seconds) it tells instances to send "
                    "heartbeats, with Retry-After on each; null when it does not")
    fleet_revival: FleetRevivalOut | None = Field(
        description="the last time this replica found that no replica had served for longer than the gap, "
                    "and how many leases it extended by a full TTL")
    error: ErrorBody | None = None


class ErrorOut(BaseModel):
    model_config = ConfigDict(title="Error")

    error: ErrorBody


def schema_models() -> list[type[BaseModel]]:
    return [RegisterRequest, HeartbeatRequest, InstanceOut, RegisteredInstanceOut, InstanceListOut,
            ServiceInstancesOut, ServiceSummaryOut, ServiceListOut, HealthOut, ErrorOut]


def error_details(errors: list[Any]) -> list[dict[str, str]]:
    """Pydantic errors as ``{"field", "message", "type"}``, the field as a dotted path."""
    out = []
    for err in errors:
        field = ".".join(str(part) for part in err.get("loc", ())) or "body"
        out.append({"field": field, "message": str(err.get("msg", "invalid")), "type": str(err.get("type"))})
    return out
