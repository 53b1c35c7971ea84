"""Human-readable output: aligned tables and durations. Pure functions; ``now`` is passed in (ms)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

STATUSES = ("UP", "DOWN", "STARTING", "STOPPING")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart; no trailing spaces."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = [headers, *rows]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
                     for line in lines)


def epoch_ms(rfc3339: str) -> int:
    return round(datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp() * 1000)


def duration(ms: float) -> str:
    """``850ms``, ``12s``, ``3m04s``, ``2h05m``, ``3d04h``."""
    ms = max(0.0, ms)
    if ms < 1000:
        return f"{round(ms)}ms"
    s = int(ms // 1000)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def address(inst: Mapping[str, Any]) -> str:
    host = str(inst["host"])
    return f"[{host}]:{inst['port']}" if ":" in host else f"{host}:{inst['port']}"


def metadata(meta: Mapping[str, str]) -> str:
    return ",".join(f"{k}={meta[k]}" for k in sorted(meta)) or "-"


def services_table(services: Sequence[Mapping[str, Any]]) -> str:
    rows = [[s["name"], str(s["instances"]), *(str(s["statuses"].get(st, 0)) for st in STATUSES)]
            for s in services]
    return table(["SERVICE", "INSTANCES", *STATUSES], rows)


def instances_table(instances: Sequence[Mapping[str, Any]], now_ms: int) -> str:
    rows = [[i["id"], i["name"], address(i), i["version"] or "-", i["status"],
             duration(now_ms - epoch_ms(i["last_heartbeat"])), expiry(i, now_ms), metadata(i["metadata"])]
            for i in instances]
    return table(["ID", "SERVICE", "ADDRESS", "VERSION", "STATUS", "HEARTBEAT", "EXPIRES IN", "METADATA"], rows)


def expiry(inst: Mapping[str, Any], now_ms: int) -> str:
    left = epoch_ms(inst["expires_at"]) - now_ms
    return duration(left) if left > 0 else "expired"


def instance_details(inst: Mapping[str, Any], now_ms: int) -> str:
    fields = [
        ("id", inst["id"]), ("service", inst["name"]), ("status", inst["status"]), ("url", inst["url"]),
        ("health", inst["health_url"]), ("version", inst["version"] or "-"),
        ("description", inst["description"] or "-"), ("metadata", metadata(inst["metadata"])),
        ("registered", inst["registered_at"]),
        ("heartbeat", f"{inst['last_heartbeat']} ({duration(now_ms - epoch_ms(inst['last_heartbeat']))} ago)"),
        ("expires", f"{inst['expires_at']} (in {expiry(inst, now_ms)})"),
    ]
    if "lease_token" in inst:
        fields.append(("lease token", inst["lease_token"]))
    width = max(len(k) for k, _ in fields)
    return "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in fields)


def changes(before: Mapping[str, Mapping[str, Any]], after: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per difference between two views of a service, keyed by instance id."""
    lines = [f"+ {i} {address(after[i])} {after[i]['status']}" for i in sorted(after.keys() - before.keys())]
    lines += [f"- {i} {address(before[i])}" for i in sorted(before.keys() - after.keys())]
    for i in sorted(before.keys() & after.keys()):
        old, new = before[i], after[i]
        if old["status"] != new["status"]:
            lines.append(f"~ {i} status {old['status']} -> {new['status']}")
        elif any(old[k] != new[k] for k in ("host", "port", "version", "metadata")):
            lines.append(f"~ {i} updated")
    return lines
