"""Eureka's data model and ours, both ways (pure; the HTTP side is :mod:`eureka_api`).

Names: Eureka clients upper-case application names. Responses group instances by the upper-cased
service name (``User`` answers as ``USER``); lookups and renewals compare case-insensitively. A Eureka
registration joins the existing service whose name matches case-insensitively (the exact spelling
first), otherwise it creates the service under the name as sent (``ORDERS``).

Statuses: ``UP``, ``DOWN`` and ``STARTING`` map to themselves; ``OUT_OF_SERVICE`` and ``UNKNOWN`` to
``DOWN`` (not routed). Our ``STOPPING`` answers as ``DOWN``, what Eureka clients send on shutdown.

Health: Eureka's instance has no field for a server's own checks. A critical instance already shows
``DOWN``; what the checks found is in its metadata, ``health`` (``passing`` or ``critical``) and
``health.output``, once it has been checked (the instance's own metadata keys of those names win).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from registry_server.model import HealthStatus, Instance, InstanceRegistration, InstanceStatus
from registry_server.schemas import NAME_PATTERN, plain_text, valid_host

INSTANCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,255}$")
_NAME = re.compile(NAME_PATTERN)
DATA_CENTER_CLASS = "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo"
_STATUS_IN = {"UP": InstanceStatus.UP, "DOWN": InstanceStatus.DOWN, "STARTING": InstanceStatus.STARTING,
              "OUT_OF_SERVICE": InstanceStatus.DOWN, "UNKNOWN": InstanceStatus.DOWN}
_STATUS_OUT = {InstanceStatus.UP: "UP", InstanceStatus.DOWN: "DOWN", InstanceStatus.STARTING: "STARTING",
               InstanceStatus.STOPPING: "DOWN"}


class EurekaInputError(ValueError):
    """A Eureka request that cannot be mapped (answered ``400``)."""


def status_from_eureka(value: str) -> InstanceStatus:
    try:
        return _STATUS_IN[value.strip().upper()]
    except KeyError:
        raise EurekaInputError(f"unknown status {value!r}; expected one of {', '.join(_STATUS_IN)}") from None


def status_to_eureka(status: InstanceStatus) -> str:
    return _STATUS_OUT[status]


def app_name(name: str) -> str:
    """The Eureka application name of a service."""
    return name.upper()


def resolve_service_name(app: str, existing: list[str]) -> str:
    """The service a registration for ``app`` joins: the exact name, else the first case-insensitive
    match, else ``app`` as sent."""
    if app in existing:
        return app
    matches = sorted(name for name in existing if name.upper() == app.upper())
    return matches[0] if matches else app


# ---------------------------------------------------------------------------------------- out


def _port(port: int, enabled: bool) -> dict[str, Any]:
    return {"$": port, "@enabled": "true" if enabled else "false"}


def instance_to_eureka(inst: Instance, ttl_s: int, action: str = "ADDED") -> dict[str, Any]:
    """An instance as Eureka's JSON codec writes it (XML is rendered from the same dict)."""
    secure = inst.scheme == "https"
    metadata = dict(inst.metadata)
    if inst.version and "version" not in metadata:
        metadata["version"] = inst.version
    if inst.health.status is not HealthStatus.UNCHECKED:
        metadata.setdefault("health", inst.health.status.value)
        metadata.setdefault("health.output", inst.health.output)
    home = inst.url + "/"
    return {
        "instanceId": inst.id,
        "hostName": inst.host,
        "app": app_name(inst.name),
        "ipAddr": inst.host,
        "status": status_to_eureka(inst.status),
        "overriddenstatus": "UNKNOWN",
        "port": _port(inst.port, not secure),
        "securePort": _port(inst.port if secure else 443, secure),
        "countryId": 1,
        "dataCenterInfo": {"@class": DATA_CENTER_CLASS, "name": "MyOwn"},
        "leaseInfo": {"renewalIntervalInSecs": max(1, ttl_s // 3), "durationInSecs": ttl_s,
                      "registrationTimestamp": inst.registered_at_ms,
                      "lastRenewalTimestamp": inst.last_heartbeat_ms, "evictionTimestamp": 0,
                      "serviceUpTimestamp": inst.registered_at_ms},
        "metadata": metadata,
        "homePageUrl": home,
        "statusPageUrl": home,
        "healthCheckUrl": inst.url + inst.health_endpoint,
        "vipAddress": inst.name,
        "secureVipAddress": inst.name,
        "isCoordinatingDiscoveryServer": "false",
        "lastUpdatedTimestamp": str(inst.registered_at_ms),
        "lastDirtyTimestamp": str(inst.registered_at_ms),
        "actionType": action,
    }


def application(app: str, instances: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": app, "instance": instances}


def apps_hashcode(statuses: list[str]) -> str:
    """Eureka's reconcile hash: ``<STATUS>_<count>_`` for each status, sorted (``DOWN_1_UP_2_``)."""
    return "".join(f"{status}_{count}_" for status, count in sorted(Counter(statuses).items()))


def applications(instances: list[Instance], ttl_s: int, version: int,
                 hashed: list[Instance] | None = None,
                 actions: dict[str, str] | None = None) -> dict[str, Any]:
    """``{"applications": ...}`` of ``instances`` grouped by application; the hash code is over
    ``hashed`` (the whole registry; default: ``instances``)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for inst in instances:
        action = (actions or {}).get(inst.id, "ADDED")
        grouped.setdefault(app_name(inst.name), []).append(instance_to_eureka(inst, ttl_s, action))
    everything = instances if hashed is None else hashed
    return {"applications": {
        "versions__delta": str(version),
        "apps__hashcode": apps_hashcode([status_to_eureka(inst.status) for inst in everything]),
        "application": [application(name, grouped[name]) for name in sorted(grouped)],
    }}


# ----------------------------------------------------------------------------------------- in


@dataclass(frozen=True, slots=True)
class EurekaRegistration:
    """A Eureka instance body, validated; ``name`` is the application name as sent."""

    id: str
    app: str
    host: str
    port: int
    scheme: str
    health_endpoint: str
    status: InstanceStatus
    metadata: dict[str, str]

    def registration(self, service: str, lease_token_hash: str) -> InstanceRegistration:
        return InstanceRegistration(id=self.id, name=service, host=self.host, port=self.port, scheme=self.scheme,
                            health_endpoint=self.health_endpoint, version=self.metadata.get("version", ""),
                            status=self.status, metadata=self.metadata, lease_token_hash=lease_token_hash)


def _text(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("$", "")
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value).strip()
    raise EurekaInputError(f"expected a text value, got {type(value).__name__}")


def _port_of(value: Any) -> tuple[int, bool] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        value = {"$": value}
    raw = _text(value.get("$"))
    enabled = _text(value.get("@enabled", "true")).lower() != "false"
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or not 0 <= int(raw) <= 65535:
        raise EurekaInputError(f"port must be an integer 1-65535, not {raw!r}")
    return int(raw), enabled


def _health_endpoint(url: str) -> str:
    if not url:
        return "/health"
    path = urlsplit(url).path if "://" in url else url
    usable = path.startswith("/") and len(path) <= 1024 and not any(c.isspace() for c in path)
    try:
        return plain_text(path) if usable else "/health"
    except ValueError:
        return "/health"


def _metadata(value: Any) -> dict[str, str]:
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise EurekaInputError("metadata must be an object of strings")
    out = {str(key): _text(item) for key, item in value.items() if key != "@class"}
    if len(out) > 64 or any(not 1 <= len(k) <= 128 for k in out) or any(len(v) > 1024 for v in out.values()):
        raise EurekaInputError("metadata: at most 64 keys of 1-128 characters, values of at most 1024")
    try:
        for key, item in out.items():
            plain_text(key)
            plain_text(item)
    except ValueError as exc:
        raise EurekaInputError(f"metadata: {exc}") from None
    return out


def parse_instance(body: Any, app: str) -> EurekaRegistration:
    """A Eureka registration body (``{"instance": {...}}`` or the instance itself) for ``app``."""
    if isinstance(body, dict) and isinstance(body.get("instance"), dict):
        body = body["instance"]
    if not isinstance(body, dict):
        raise EurekaInputError("the body must be a Eureka instance: {\"instance\": {...}}")
    if not _NAME.fullmatch(app):
        raise EurekaInputError(f"application name {app!r}: 1-128 of A-Z a-z 0-9 . _ -")
    sent_app = _text(body.get("app"))
    if sent_app and sent_app.upper() != app.upper():
        raise EurekaInputError(f"Mismatched appName, expecting {app.upper()} but was {sent_app.upper()}")
    host_name, ip_addr = _text(body.get("hostName")), _text(body.get("ipAddr"))
    instance_id = _text(body.get("instanceId")) or host_name
    if not INSTANCE_ID.fullmatch(instance_id):
        raise EurekaInputError(f"instanceId {instance_id!r}: 1-256 of A-Z a-z 0-9 . _ : @ + -")
    host = ""
    for candidate in (host_name, ip_addr):
        try:
            host = valid_host(candidate) if candidate else ""
        except ValueError:
            continue
        if host:
            break
    if not host:
        raise EurekaInputError("hostName or ipAddr must be a hostname or an IP address")
    port, secure_port = _port_of(body.get("port")), _port_of(body.get("securePort"))
    if port is not None and port[1] and port[0] > 0:
        scheme, number = "http", port[0]
    elif secure_port is not None and secure_port[1] and secure_port[0] > 0:
        scheme, number = "https", secure_port[0]
    else:
        raise EurekaInputError("no enabled port (port or securePort) between 1 and 65535")
    status = status_from_eureka(_text(body.get("status")) or "UP")
    health = _text(body.get("secureHealthCheckUrl" if scheme == "https" else "healthCheckUrl")) or _text(
        body.get("healthCheckUrl"))
    return EurekaRegistration(id=instance_id, app=app, host=host, port=number, scheme=scheme,
                              health_endpoint=_health_endpoint(health), status=status,
                              metadata=_metadata(body.get("metadata")))
