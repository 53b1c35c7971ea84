"""A Server-Sent Events consumer for tests: reads a stream in a thread, collecting parsed events."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class Sse:
    event: str
    data: str
    id: str | None

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SseReader:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    events: list[Sse] = field(default_factory=list)
    status: int | None = None
    ended: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> SseReader:
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def close(self) -> None:
        self._stop.set()

    def of_type(self, event: str) -> list[Sse]:
        return [e for e in list(self.events) if e.event == event]

    def _run(self) -> None:
        try:
            with httpx.Client(timeout=httpx.Timeout(5, read=60)) as client, \
                    client.stream("GET", self.url, headers=self.headers) as resp:
                self.status = resp.status_code
                fields: dict[str, str] = {}
                for line in resp.iter_lines():
                    if self._stop.is_set():
                        return
                    if line == "":
                        if "data" in fields or "event" in fields:
                            self.events.append(Sse(fields.get("event", "message"), fields.get("data", ""),
                                                   fields.get("id")))
                        fields = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(":")
                        value = value.removeprefix(" ")
                        fields[name] = fields[name] + "\n" + value if name == "data" and name in fields else value
        except httpx.HTTPError:
            pass
        finally:
            self.ended.set()
