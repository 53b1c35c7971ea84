"""Probes a registry's REST API while its store is down: every answer must be the SPEC error, in time."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp


@dataclass
class ProbeLog:
    """Every answer (method, path, status, code, seconds) the probe saw."""

    answers: list[tuple[str, str, int, str, float]] = field(default_factory=list)

    def statuses(self) -> set[int]:
        return {status for _, _, status, _, _ in self.answers}

    def codes(self) -> set[str]:
        return {code for _, _, _, code, _ in self.answers}

    def slowest(self) -> float:
        return max((took for *_, took in self.answers), default=0.0)

    def bad(self, *, limit_s: float) -> list[tuple[str, str, int, str, float]]:
        """Answers that are not ``503 store_unavailable`` within ``limit_s``."""
        return [a for a in self.answers if a[2] != 503 or a[3] != "store_unavailable" or a[4] >= limit_s]


REQUESTS: tuple[tuple[str, str, dict[str, object] | None], ...] = (
    ("POST", "/instances", {"name": "Probe", "port": 9, "host": "127.0.0.1", "id": "Probe-1"}),
    ("PUT", "/instances/Probe-1/heartbeat", {"status": "UP"}),
    ("GET", "/instances/Probe-1", None),
    ("GET", "/instances", None),
    ("GET", "/services", None),
    ("GET", "/services/Backend", None),
    ("DELETE", "/instances/Probe-1", None),
    ("GET", "/healthz", None),
)


async def probe_once(session: aiohttp.ClientSession, base_url: str, log: ProbeLog) -> None:
    """One pass over every store-backed endpoint, all at once; each answer is recorded with its code and time."""
    await asyncio.gather(*(_probe(session, base_url, method, path, body, log) for method, path, body in REQUESTS))


async def _probe(session: aiohttp.ClientSession, base_url: str, method: str, path: str,
                 body: dict[str, object] | None, log: ProbeLog) -> None:
    started = time.monotonic()
    try:
        async with session.request(method, base_url + path, json=body,
                                   timeout=aiohttp.ClientTimeout(total=5)) as resp:
            payload = await resp.json(content_type=None)
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.answers.append((method, path, 0, type(exc).__name__, time.monotonic() - started))
        return
    error = payload.get("error") if isinstance(payload, dict) else None
    code = str(error.get("code")) if isinstance(error, dict) and isinstance(error.get("message"), str) \
        else f"no SPEC error body: {payload!r}"[:200]
    log.answers.append((method, path, status, code, time.monotonic() - started))
