"""Discovery answers rendered once and served again, briefly, while nothing in them can have changed.

An answer is kept for at most ``max_age_ms`` (its heartbeat timestamps may lag that much), never past
the first lease in it to run out (so an expired instance is still never returned), and dropped the
moment its service changes: at once for changes made through this replica, and as soon as a change
made elsewhere is announced (the registry's observer and the change hub both tell it).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from registry_server.model import Instance
from registry_server.registry_observer import RegistryObserver


@dataclass(frozen=True, slots=True)
class Rendered:
    revision: int
    etag: str
    body: bytes
    valid_until_ms: int


class RenderedAnswers(RegistryObserver):
    def __init__(self, *, max_age_ms: int = 500, max_entries: int = 10_000,
                 max_bytes: int = 32 * 1024 * 1024) -> None:
        self._max_age_ms = max_age_ms
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._by_service: dict[str, dict[Hashable, Rendered]] = {}
        self._count = 0
        self._bytes = 0

    def __repr__(self) -> str:
        return f"RenderedAnswers(max_age_ms={self._max_age_ms}, entries={self._count})"

    def get(self, service: str, query: Hashable, now_ms: int) -> Rendered | None:
        entry = self._by_service.get(service, {}).get(query)
        if entry is None or now_ms >= entry.valid_until_ms:
            return None
        return entry

    def put(self, service: str, query: Hashable, rendered_body: bytes, revision: int, etag: str,
            instances: list[Instance], now_ms: int) -> None:
        if self._max_age_ms <= 0:
            return
        if self._count >= self._max_entries or self._bytes + len(rendered_body) > self._max_bytes:
            self.forget(None)
        first_expiry = min((inst.expires_at_ms for inst in instances), default=now_ms + self._max_age_ms)
        entries = self._by_service.setdefault(service, {})
        old = entries.get(query)
        if old is None:
            self._count += 1
        else:
            self._bytes -= len(old.body)
        self._bytes += len(rendered_body)
        entries[query] = Rendered(revision, etag, rendered_body,
                                  min(now_ms + self._max_age_ms, first_expiry))

    def forget(self, service: str | None) -> None:
        """Drop the answers of ``service``; of every service when ``None``."""
        if service is None:
            self._by_service.clear()
            self._count = 0
            self._bytes = 0
            return
        dropped = self._by_service.pop(service, None)
        if dropped:
            self._count -= len(dropped)
            self._bytes -= sum(len(entry.body) for entry in dropped.values())

    def registered(self, instance: Instance, created: bool) -> None:
        self.forget(instance.name)

    def deregistered(self, instance: Instance) -> None:
        self.forget(instance.name)

    def expired(self, service: str, count: int = 1) -> None:
        self.forget(service)

    def heartbeat(self, instance: Instance, status_changed: bool) -> None:
        if status_changed:  # a client repeating its status with every heartbeat changes nothing shown
            self.forget(instance.name)

    def dropped(self, service: str) -> None:
        self.forget(service)
