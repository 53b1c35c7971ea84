"""Query parameters shared by the read endpoints: filters, names, blocking-query index and wait."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request

from registry_server.api.errors import ApiError
from registry_server.model import Instance, InstanceStatus
from registry_server.schemas import NAME_PATTERN

NAME = re.compile(NAME_PATTERN)
_STATUSES = {s.value for s in InstanceStatus}
_WAIT = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m)?")
MAX_WAIT_S = 300.0
DEFAULT_WAIT_S = 60.0


def invalid(field: str, message: str, kind: str = "value_error") -> ApiError:
    return ApiError(422, "validation_error", f"invalid {field}",
                    details=[{"field": field, "message": message, "type": kind}])


def service_name(raw: str, field: str = "name") -> str:
    if not NAME.fullmatch(raw):
        raise invalid(field, "1-128 of A-Z a-z 0-9 . _ -, starting with a letter or digit", "string_pattern_mismatch")
    return raw


def status_filter(request: Request) -> set[str] | None:
    raw = request.query_params.get("status")
    if raw is None or raw == "":
        return None
    wanted = {part.strip().upper() for part in raw.split(",") if part.strip()}
    unknown = sorted(wanted - _STATUSES)
    if unknown:
        raise invalid("status", f"unknown status {', '.join(unknown)}; expected a comma list of "
                      f"{', '.join(sorted(_STATUSES))}", "enum")
    return wanted


def filtered(instances: list[Instance], statuses: set[str] | None, version: str | None) -> list[dict[str, Any]]:
    return [inst.to_json() for inst in instances
            if (statuses is None or inst.status.value in statuses) and (version is None or inst.version == version)]


def blocking_index(request: Request) -> int | None:
    raw = request.query_params.get("index")
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise invalid("index", "a revision number (a non-negative integer) from X-Registry-Index")
    return int(raw)


def wait_seconds(request: Request) -> float:
    """``wait`` as ``30s``, ``1m``, ``500ms`` or plain seconds; capped at :data:`MAX_WAIT_S`."""
    raw = request.query_params.get("wait")
    if raw is None or raw == "":
        return DEFAULT_WAIT_S
    match = _WAIT.fullmatch(raw.strip())
    if match is None:
        raise invalid("wait", "a duration such as 30s, 1m or 500ms")
    value = float(match.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[match.group(2)]
    return min(value, MAX_WAIT_S)
