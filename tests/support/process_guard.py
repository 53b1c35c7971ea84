"""Keeps the ``integration`` marker honest: a test so marked starts processes, and no other test does.

``pytest -m "not integration"`` is the run a contributor makes after each change, so it must start no
process. The hooks in ``tests/conftest.py`` keep the marker true with a :class:`ProcessGuard`: every way
of starting a process is wrapped for the whole session, refused while an unmarked test is set up or run,
and counted otherwise, so that a marked test that starts none (itself or through its fixtures) fails too.
"""

from __future__ import annotations

import asyncio
import asyncio.subprocess
import contextlib
import functools
import os
import subprocess
from collections.abc import Iterator
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
