"""Keeps the ``integration`` marker honest: a test so marked starts processes, and no other test does.

``pytest -m "not integration"`` is the run a contributor makes after each change, so it must start no
process. :class:`IntegrationMarker` (registered by ``tests/conftest.py``) keeps the marker true with a
:class:`ProcessGuard`: every way of starting a process is wrapped for the whole session, refused while an
unmarked test is set up or run, and counted otherwise, so that a marked test that starts none, itself or
through any fixture it uses, fails too.
"""

from __future__ import annotations

import asyncio
import asyncio.subprocess
import contextlib
import functools
import os
import subprocess
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pytest

# Every way the suite or a library it drives can start a process. asyncio's default loop starts its
# children through ``subprocess.Popen``; the asyncio functions also cover uvloop's loop.
_SPAWNERS: tuple[tuple[ModuleType, str], ...] = (
    (subprocess, "Popen"),
    (asyncio, "create_subprocess_exec"),
    (asyncio, "create_subprocess_shell"),
    (asyncio.subprocess, "create_subprocess_exec"),
    (asyncio.subprocess, "create_subprocess_shell"),
    (os, "fork"),
    (os, "forkpty"),
    (os, "posix_spawn"),
    (os, "posix_spawnp"),
    (os, "system"),
)


class ProcessStartedError(RuntimeError):
    """A test not marked ``integration`` tried to start a process."""


@dataclass
class ProcessGuard:
    """Counts the processes started in the session, and refuses them while ``refusing_for`` names a test."""

    started: int = 0
    refusing_for: str | None = None
    fixtures_that_start_processes: set[str] = field(default_factory=set)
    _patch: pytest.MonkeyPatch = field(default_factory=pytest.MonkeyPatch)

    def install(self) -> None:
        for module, name in _SPAWNERS:
            original = getattr(module, name, None)
            if original is not None:  # os.forkpty and friends are not on every platform
                self._patch.setattr(module, name, self._announcing(f"{module.__name__}.{name}", original))

    def uninstall(self) -> None:
        self._patch.undo()

    @contextlib.contextmanager
    def refusing(self, test_id: str) -> Iterator[None]:
        self.refusing_for = test_id
        try:
            yield
        finally:
            self.refusing_for = None

    @contextlib.contextmanager
    def learning(self, fixture_name: str) -> Iterator[None]:
        """Remember ``fixture_name`` as one that starts processes if its set-up starts any."""
        before = self.started
        try:
            yield
        finally:
            if self.started > before:
                self.fixtures_that_start_processes.add(fixture_name)

    def _before_start(self, spawner: str) -> None:
        if self.refusing_for is not None:
            raise ProcessStartedError(
                f"{self.refusing_for} starts a process ({spawner}) but is not marked integration: mark it "
                "(pytestmark = pytest.mark.integration) or keep the test in-process")
        self.started += 1

    def _announcing(self, spawner: str, original: Any) -> Any:
        before_start = self._before_start
        if isinstance(original, type):
            # A subclass keeps isinstance() and Popen[bytes] working. The check runs in __new__ so that a
            # refused Popen never exists: its __del__ would fail on a half-made object.
            def new(cls: type, *args: object, **kwargs: object) -> object:
                before_start(spawner)
                return original.__new__(cls)

            return type(original.__name__, (original,), {"__new__": new, "__module__": original.__module__})

        @functools.wraps(original)
        def announced(*args: object, **kwargs: object) -> object:
            before_start(spawner)
            return original(*args, **kwargs)

        return announced


def is_integration(item: pytest.Item) -> bool:
    return item.get_closest_marker("integration") is not None


_STARTED_BEFORE_SETUP = pytest.StashKey[int]()


class IntegrationMarker:
    """The pytest hooks that mark, refuse and check.

    A plugin registered on the plugin manager, not conftest hooks: those are called only for the nodes
    under their directory, and session-scoped fixtures are set up for the session, which is not.
    """

    def __init__(self, process_fixtures: Iterable[str], fixtures_in_use: Callable[[pytest.Item], Iterable[str]]):
        """``process_fixtures`` always start a process; ``fixtures_in_use`` names every fixture a test has
        used once it has run, those it requested while running included."""
        self.process_fixtures = frozenset(process_fixtures)
        self.fixtures_in_use = fixtures_in_use
        self.guard = ProcessGuard()

    def pytest_configure(self) -> None:
        self.guard.install()

    def pytest_unconfigure(self) -> None:
        self.guard.uninstall()

    @pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            if self.process_fixtures.intersection(getattr(item, "fixturenames", ())):
                item.add_marker(pytest.mark.integration)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        if is_integration(item):
            item.stash[_STARTED_BEFORE_SETUP] = self.guard.started
            return (yield)
        with self.guard.refusing(item.nodeid):
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        if not is_integration(item):
            with self.guard.refusing(item.nodeid):
                return (yield)
        result = yield
        started_itself = self.guard.started > item.stash[_STARTED_BEFORE_SETUP]
        uses_processes = self.guard.fixtures_that_start_processes.intersection(self.fixtures_in_use(item))
        if not (started_itself or uses_processes):
            pytest.fail(f"{item.nodeid} is marked integration but starts no process, itself or through a "
                        "fixture: drop the marker so that the fast run (-m 'not integration') runs it",
                        pytrace=False)
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef[object]) -> Generator[None, object, object]:
        with self.guard.learning(fixturedef.argname):
            return (yield)
