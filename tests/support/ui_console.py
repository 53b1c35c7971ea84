"""The console (``/ui``) tests' page wrapper, the registry settings they run it with, and live instances."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ADMIN_TOKEN = "admin-token-of-the-console-tests"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# The registry's default settings: its change stream stays open however long the console is idle
# (a cut would show as a console error, which the tests assert there is none of).
REGISTRY_ENV = {"REGISTRY_ADMIN_TOKEN": ADMIN_TOKEN}


@dataclass
class ConsolePage:
    """A page whose console errors and uncaught exceptions are collected."""

    page: Any
    errors: list[str] = field(default_factory=list)


class Heartbeats:
    """Keeps registered instances alive (every 0.2 s, against a 1 s TTL) until told to stop."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.leases: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._lock = threading.Lock()

    def register(self, iid: str, name: str, **fields: Any) -> dict[str, Any]:
        lease = f"lease-token-{iid}-0123456789"
        resp = httpx.post(self.url + "/instances", json={"id": iid, "name": name, "lease_token": lease,
                                                          "host": "10.0.0.1", "port": 3001, **fields})
        assert resp.status_code in (200, 201), resp.text
        with self._lock:
            self.leases[iid] = lease
        return dict(resp.json())

    def forget(self, iid: str) -> None:
        """Stop renewing ``iid``: it expires one TTL later."""
        with self._lock:
            self.leases.pop(iid, None)

    def __enter__(self) -> Heartbeats:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with httpx.Client(base_url=self.url) as client:
            for iid, lease in list(self.leases.items()):
                client.delete(f"/instances/{iid}", headers={"X-Lease-Token": lease})

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=2) as client:
            while not self._stop.wait(0.2):
                with self._lock:
                    leases = dict(self.leases)
                for iid, lease in leases.items():
                    with contextlib.suppress(httpx.HTTPError):
                        client.put(f"/instances/{iid}/heartbeat", headers={"X-Lease-Token": lease})
