"""The ``integration`` marker is kept true by the suite's hooks (``tests/conftest.py``), not by review."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from tests.support.process_guard import ProcessGuard, ProcessStartedError

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]

SAMPLE_TESTS = """
import subprocess

import pytest


@pytest.fixture
def child():
    return subprocess.run(["true"], check=True)


def test_unmarked_starts_one():
    subprocess.run(["true"], check=True)


def test_unmarked_through_a_fixture(child):
    assert child.returncode == 0


def test_unmarked_starts_none():
    assert sum([1, 1]) == 2


@pytest.mark.integration
def test_marked_starts_one():
    subprocess.run(["true"], check=True)


@pytest.mark.integration
def test_marked_starts_none():
    assert sum([1, 1]) == 2


def test_uses_the_session_redis(redis_url):
    assert redis_url
"""


def test_a_refusing_guard_stops_every_way_of_starting_a_process() -> None:
    guard = ProcessGuard()
    guard.install()
    try:
        with guard.refusing("the test"):
            with pytest.raises(ProcessStartedError, match=r"the test starts a process \(subprocess\.Popen\)"):
                subprocess.run(["true"], check=False)
            with pytest.raises(ProcessStartedError, match=r"asyncio\.create_subprocess_exec"):
                asyncio.run(asyncio.create_subprocess_exec("true"))
    finally:
        guard.uninstall()
    assert guard.started == 0
    assert subprocess.Popen.__name__ == "Popen"


@pytest.mark.integration
def test_unmarked_tests_that_start_processes_and_marked_ones_that_do_not_fail(pytester: pytest.Pytester,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    # The sample needs no installed plugin; loading them (hypothesis, schemathesis) is most of each run's time.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeconftest('pytest_plugins = ["tests.conftest"]\n')
    pytester.makeini("[pytest]\nmarkers =\n    integration: starts a process\n")
    pytester.makepyfile(test_sample=SAMPLE_TESTS)

    everything = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider",
                                               "--deselect", "test_sample.py::test_uses_the_session_redis")
    everything.assert_outcomes(passed=2, failed=2, errors=1)
    output = everything.stdout.str()
    assert "test_sample.py::test_unmarked_starts_one starts a process (subprocess.Popen) but is not marked" in output
    assert "test_sample.py::test_unmarked_through_a_fixture starts a process" in output
    assert "test_sample.py::test_marked_starts_none is marked integration but starts no process" in output

    fast = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider", "--collect-only", "-q",
                                         "-m", "not integration")
    collected = fast.stdout.str()
    assert "test_uses_the_session_redis" not in collected, "a test on the session Redis is marked by its fixture"
    assert "test_unmarked_starts_none" in collected
