"""Consul's data model and ours, both ways (pure; the HTTP side is :mod:`consul_api`).

- Every instance is a Consul service instance on a node named after its host (address = host), in
  datacenter ``dc1``; ``Meta`` is our metadata (plus ``version`` when set); ``Tags`` are not kept.
- Each instance has one check, ``service:<id>``, whose status is ours: ``UP`` passing, ``STARTING``
  warning, ``DOWN`` and ``STOPPING`` critical. Updating that check (pass / warn / fail) sets ``UP`` /
  ``STARTING`` / ``DOWN`` and renews the lease, like a heartbeat.
- An HTTP check (``HTTP``, ``Interval``, ``Timeout``, ``DeregisterCriticalServiceAfter``) becomes the
  registry's own active check of the instance: its path is the health endpoint, and it is run against
  the service's own address and port (a URL naming another port is refused). Its status is then what the
  checks found: ``passing`` or ``critical``.
- Indexes: a service's ``X-Consul-Index`` is its revision + 1 (Consul indexes are never 0); the
  catalog's is a digest of every service's name and revision, so it moves whenever one of them does.
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from registry_server.interop.eureka import INSTANCE_ID
from registry_server.model import (
    HealthCheckRequest,
    HealthCheckSpec,
    HealthStatus,
    Instance,
    InstanceRegistration,
    InstanceStatus,
)
from registry_server.schemas import NAME_PATTERN, plain_text, valid_host

DATACENTER = "dc1"
AGENT_NODE = "service-registry"
_NAME = re.compile(NAME_PATTERN)
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)?")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
MAX_WAIT_S = 300.0
DEFAULT_WAIT_S = 300.0
_TO_CHECK = {InstanceStatus.UP: "passing", InstanceStatus.STARTING: "warning", InstanceStatus.DOWN: "critical",
             InstanceStatus.STOPPING: "critical"}
_FROM_CHECK = {"passing": InstanceStatus.UP, "warning": InstanceStatus.STARTING, "critical": InstanceStatus.DOWN}


class ConsulInputError(ValueError):
    """A Consul request that cannot be mapped (answered ``400``)."""


def check_status(status: InstanceStatus) -> str:
    return _TO_CHECK[status]


def status_from_check(value: str) -> InstanceStatus:
    try:
        return _FROM_CHECK[value.strip().lower()]
    except KeyError:
        raise ConsulInputError(f"Invalid check status: {value!r}") from None


def check_id(instance_id: str) -> str:
    return f"service:{instance_id}"


def instance_of_check(check: str) -> str:
    """The instance id a check id names (``service:<id>``; a bare id is taken as it is)."""
    return check.removeprefix("service:")


def service_index(revision: int) -> int:
    return revision + 1


def catalog_index(revisions: dict[str, int]) -> int:
    digest = hashlib.blake2b(digest_size=6)
    for name in sorted(revisions):
        digest.update(f"{name}={revisions[name]}\n".encode())
    return int.from_bytes(digest.digest(), "big") or 1


def parse_index(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        raise ConsulInputError("Invalid index")
    return int(raw)


def parse_wait(raw: str | None) -> float:
    """Consul's ``wait`` (``10s``, ``5m``, ``120000ms``); capped at :data:`MAX_WAIT_S`."""
    if raw is None or raw == "":
        return DEFAULT_WAIT_S
    match = _DURATION.fullmatch(raw.strip())
    if match is None:
        raise ConsulInputError("Invalid wait time")
    return min(float(match.group(1)) * _UNITS[match.group(2)], MAX_WAIT_S)


def parse_duration(raw: Any) -> float:
    match = _DURATION.fullmatch(str(raw).strip()) if isinstance(raw, str | int) else None
    if match is None:
        raise ConsulInputError(f"Invalid duration {raw!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


# ---------------------------------------------------------------------------------------- out


def _meta(inst: Instance) -> dict[str, str]:
    meta = dict(inst.metadata)
    if inst.version and "version" not in meta:
        meta["version"] = inst.version
    return meta


def node(inst: Instance) -> dict[str, Any]:
    return {"ID": "", "Node": inst.host, "Address": inst.host, "Datacenter": DATACENTER,
            "TaggedAddresses": {"lan": inst.host, "wan": inst.host}, "Meta": {}}


def agent_service(inst: Instance, index: int) -> dict[str, Any]:
    return {"ID": inst.id, "Service": inst.name, "Tags": [], "Address": inst.host, "Port": inst.port,
            "Meta": _meta(inst), "Weights": {"Passing": 1, "Warning": 1}, "EnableTagOverride": False,
            "Datacenter": DATACENTER, "CreateIndex": index, "ModifyIndex": index}


def check(inst: Instance, index: int) -> dict[str, Any]:
    health = inst.health
    if health.status is HealthStatus.UNCHECKED:
        status, output, kind = check_status(inst.status), f"registry status {inst.status.value}", "ttl"
    else:  # what the registry's own HTTP checks found decides, whatever the instance reports
        critical = health.status is HealthStatus.CRITICAL or inst.status is not InstanceStatus.UP
        status, output, kind = ("critical" if critical else "passing"), health.output, "http"
    return {"Node": inst.host, "CheckID": check_id(inst.id), "Name": f"Service '{inst.name}' check",
            "Status": status, "Notes": "", "Output": output,
            "ServiceID": inst.id, "ServiceName": inst.name, "ServiceTags": [], "Type": kind,
            "CreateIndex": index, "ModifyIndex": index}


def health_entry(inst: Instance, index: int) -> dict[str, Any]:
    """One entry of ``/v1/health/service/<name>``."""
    return {"Node": node(inst), "Service": agent_service(inst, index), "Checks": [check(inst, index)]}


def catalog_entry(inst: Instance, index: int) -> dict[str, Any]:
    """One entry of ``/v1/catalog/service/<name>``."""
    return {"ID": "", "Node": inst.host, "Address": inst.host, "Datacenter": DATACENTER,
            "TaggedAddresses": {"lan": inst.host, "wan": inst.host}, "NodeMeta": {},
            "ServiceKind": "", "ServiceID": inst.id, "ServiceName": inst.name, "ServiceTags": [],
            "ServiceAddress": inst.host, "ServicePort": inst.port, "ServiceMeta": _meta(inst),
            "ServiceWeights": {"Passing": 1, "Warning": 1}, "ServiceEnableTagOverride": False,
            "CreateIndex": index, "ModifyIndex": index}


def agent_self() -> dict[str, Any]:
    """What ``/v1/agent/self`` answers: enough for clients that ask for the datacenter (Prometheus)."""
    return {"Config": {"Datacenter": DATACENTER, "NodeName": AGENT_NODE, "Server": True,
                       "Version": "1.0.0-service-registry"},
            "Member": {"Name": AGENT_NODE, "Addr": "127.0.0.1", "Port": 8301, "Status": 1, "Tags": {"dc": DATACENTER}}}


# ----------------------------------------------------------------------------------------- in


@dataclass(frozen=True, slots=True)
class ConsulRegistration:
    id: str
    name: str
    host: str | None
    port: int
    status: InstanceStatus
    metadata: dict[str, str]
    http_check: HttpCheck | None = None

    def registration(self, host: str, lease_token_hash: str) -> InstanceRegistration:
        checked = self.http_check
        health_check: HealthCheckRequest = None if checked is None else checked.spec
        return InstanceRegistration(id=self.id, name=self.name, host=host, port=self.port,
                                    version=self.metadata.get("version", ""), status=self.status,
                                    metadata=self.metadata, lease_token_hash=lease_token_hash,
                                    scheme=checked.scheme if checked else "http",
                                    health_endpoint=checked.endpoint if checked else "/health",
                                    health_check=health_check)


@dataclass(frozen=True, slots=True)
class HttpCheck:
    """A Consul HTTP check, as the registry runs it: against the service's own address and port."""

    scheme: str
    endpoint: str
    spec: HealthCheckSpec


_ACTIVE_KINDS = ("tcp", "grpc", "args", "script", "h2ping", "udp", "docker_container_id", "alias_service")


def _seconds(chk: dict[str, Any], field: str, default: float) -> float:
    raw = chk.get(field.lower())
    if raw in (None, ""):
        return default
    value = parse_duration(raw)
    if not 0 < value <= 86400 * 365:
        raise ConsulInputError(f"{field} must be a positive duration")
    return value


def _http_check(chk: dict[str, Any], port: int) -> HttpCheck:
    url = urllib.parse.urlsplit(str(chk["http"]))
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConsulInputError("HTTP must be an http:// or https:// URL")
    try:
        url_port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        raise ConsulInputError("HTTP names an invalid port") from None
    if url_port != port:
        raise ConsulInputError(f"HTTP must name the service's own port ({port}): the registry only checks "
                               "the address and port it registers")
    endpoint = (url.path or "/") + (f"?{url.query}" if url.query else "")
    if len(endpoint) > 1024 or any(c.isspace() for c in endpoint):
        raise ConsulInputError("HTTP path must be at most 1024 characters, without spaces")
    interval = _seconds(chk, "Interval", 10.0)
    spec = HealthCheckSpec(interval, _seconds(chk, "Timeout", min(10.0, interval)), 1,
                           _seconds(chk, "DeregisterCriticalServiceAfter", 0.0)
                           if chk.get("deregistercriticalserviceafter") else 0.0)
    return HttpCheck(url.scheme, endpoint, spec)


def _keys(body: dict[str, Any]) -> dict[str, Any]:
    """Consul decodes field names case-insensitively."""
    return {str(key).lower(): value for key, value in body.items()}


def _checks(checks: list[Any], service_id: str, port: int) -> tuple[InstanceStatus, HttpCheck | None]:
    """No check: passing. A TTL check starts critical unless it says otherwise (as in Consul); an HTTP
    check starts unchecked, the instance ``UP`` until its checks fail."""
    status, http = InstanceStatus.UP, None
    for raw in checks:
        if not isinstance(raw, dict):
            raise ConsulInputError("Check must be an object")
        chk = _keys(raw)
        if any(chk.get(kind) for kind in _ACTIVE_KINDS):
            raise ConsulInputError("only TTL and HTTP checks are supported; renew a TTL check with "
                                   "PUT /v1/agent/check/pass/service:<id>")
        given_id = chk.get("checkid") or chk.get("id")
        if given_id and given_id != check_id(service_id):
            raise ConsulInputError(f"check ids other than {check_id(service_id)!r} are not supported")
        if chk.get("http"):
            if http is not None:
                raise ConsulInputError("at most one HTTP check per service is supported")
            http = _http_check(chk, port)
            continue
        if not chk.get("ttl"):
            raise ConsulInputError("a check needs a TTL")
        parse_duration(chk["ttl"])
        status = InstanceStatus.DOWN if not chk.get("status") else status_from_check(str(chk["status"]))
    return status, http


def parse_registration(body: Any) -> ConsulRegistration:
    """A ``PUT /v1/agent/service/register`` body."""
    if not isinstance(body, dict):
        raise ConsulInputError("Request decode failed: the body must be a JSON object")
    fields = _keys(body)
    name = fields.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConsulInputError("Missing or invalid service name: 1-128 of A-Z a-z 0-9 . _ -")
    service_id = fields.get("id") or name
    if not isinstance(service_id, str) or not INSTANCE_ID.fullmatch(service_id):
        raise ConsulInputError(f"Invalid service ID {service_id!r}")
    port = fields.get("port")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ConsulInputError("Port must be an integer between 1 and 65535")
    address = fields.get("address") or None
    if address is not None:
        try:
            address = valid_host(str(address))
        except ValueError:
            raise ConsulInputError(f"Invalid Address {address!r}") from None
    meta = fields.get("meta") or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ConsulInputError("Meta must be an object of strings")
    if len(meta) > 64 or any(not 1 <= len(str(k)) <= 128 for k in meta) or any(len(v) > 1024 for v in meta.values()):
        raise ConsulInputError("Meta: at most 64 keys of 1-128 characters, values of at most 1024")
    try:
        for key, value in meta.items():
            plain_text(str(key))
            plain_text(value)
    except ValueError as exc:
        raise ConsulInputError(f"Meta: {exc}") from None
    checks = [fields["check"]] if fields.get("check") else []
    extra = fields.get("checks") or []
    if not isinstance(extra, list):
        raise ConsulInputError("Checks must be a list")
    status, http = _checks(checks + extra, service_id, port)
    return ConsulRegistration(id=service_id, name=name, host=address, port=port, status=status,
                              metadata={str(k): v for k, v in meta.items()}, http_check=http)
