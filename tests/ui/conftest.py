"""A real headless Chromium (the OS package, driven by Playwright) and a live registry for the console tests.

Under ``CI`` a missing Chromium or Playwright fails the run; elsewhere the tests skip.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import RegistryProcess, running_registry
from tests.support.ui_console import REGISTRY_ENV, ConsolePage, Heartbeats

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


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


@pytest.fixture
def heartbeats(registry: RegistryProcess) -> Iterator[Heartbeats]:
    with Heartbeats(registry.url) as beats:
        yield beats
