"""A real headless Chromium (the OS package, driven by Playwright) and a live registry for the console tests.

Under ``CI`` a missing Chromium or Playwright fails the run; elsewhere the tests skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import RegistryProcess, running_registry

ADMIN_TOKEN = "admin-token-of-the-console-tests"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# The registry's default settings: its change stream stays open however long the console is idle
# (a cut would show as a console error, which the tests assert there is none of).
REGISTRY_ENV = {"REGISTRY_ADMIN_TOKEN": ADMIN_TOKEN}


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and the browser tests cannot run: {reason}")
    pytest.skip(reason)


def chromium_path() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return found or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One persistent Chromium context per module, with a fresh profile directory."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright)")
    executable = chromium_path()
    if executable is None:
        _unavailable("no chromium binary (apt-get install chromium chromium-driver)")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=executable, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 800})
        try:
            yield context
        finally:
            context.close()


@dataclass
class ConsolePage:
    """A page whose console errors and uncaught exceptions are collected."""

    page: Any
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def console_page(browser: Any) -> Iterator[ConsolePage]:
    page = browser.new_page()
    watched = ConsolePage(page)
    page.on("console", lambda msg: watched.errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: watched.errors.append(f"uncaught: {exc}"))
    page.on("dialog", lambda dialog: dialog.accept())  # the deregistration confirm()
    try:
        yield watched
    finally:
        page.close()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """TTL 1 s, sweep 0.1 s: an instance whose heartbeats stop is gone within about 1.1 s."""
    with running_registry(tmp_path_factory.mktemp("ui-registry"), redis_url=None, ttl=1.0, sweep=0.1,
                          extra_env=REGISTRY_ENV) as proc:
        proc.wait_healthy()
        yield proc


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


@pytest.fixture
def heartbeats(registry: RegistryProcess) -> Iterator[Heartbeats]:
    with Heartbeats(registry.url) as beats:
        yield beats
