"""The watch loop with a scripted client and a fake clock: no network, no real sleeping."""

from __future__ import annotations

from typing import Any

import pytest

from registryctl.client import Answer
from registryctl.errors import RegistryApiError, RegistryctlError, RegistryUnreachableError
from registryctl.watching import watch


class Script:
    """Answers (or raises) in order; each step may advance the fake clock, as a long poll would."""

    timeout_s = 10.0

    def __init__(self, steps: list[tuple[float, Any]]) -> None:
        self.steps = steps
        self.now = 0.0
        self.queries: list[dict[str, str]] = []

    def request(self, method: str, path: str, **kwargs: Any) -> Answer:
        self.queries.append(dict(kwargs.get("query") or {}))
        took, outcome = self.steps.pop(0)
        self.now += took
        if isinstance(outcome, Exception):
            raise outcome
        return Answer(200, {"x-registry-index": str(outcome)}, {"instances": [{"id": f"i{outcome}"}]})

    def more(self) -> bool:
        return bool(self.steps)


def run(script: Script) -> tuple[list[int], list[float], list[str]]:
    seen: list[int] = []
    slept: list[float] = []
    warned: list[str] = []
    watch(script, "A", lambda index, _: seen.append(index), wait_s=30,  # type: ignore[arg-type]
          on_retry=lambda exc, delay: warned.append(str(exc)), sleep=slept.append, clock=lambda: script.now,
          keep_going=script.more)
    return seen, slept, warned


def test_each_new_index_is_reported_and_a_timed_out_wait_is_not() -> None:
    script = Script([(0, 1), (30, 1), (3, 2)])
    seen, _, _ = run(script)
    assert seen == [1, 2]
    assert script.queries[0] == {} and script.queries[1] == {"index": "1", "wait": "30s"}


def test_a_long_poll_cut_while_waiting_is_resent_at_once_without_a_warning() -> None:
    cut = RegistryApiError(499, "http_error", "no body")
    seen, slept, warned = run(Script([(0, 1), (10, cut), (10, RegistryUnreachableError("reset")), (1, 2)]))
    assert seen == [1, 2] and slept == [] and warned == []


def test_quick_failures_back_off_and_warn_from_the_second_on() -> None:
    down = RegistryUnreachableError("registry unreachable: refused")
    seen, slept, warned = run(Script([(0, 1), (0, down), (0, down), (0, down), (0, 2)]))
    assert seen == [1, 2]
    assert slept == [0.0, 1.0, 2.0] and warned == [str(down)] * 2


def test_the_first_read_and_a_non_transient_error_end_the_watch() -> None:
    with pytest.raises(RegistryctlError):
        run(Script([(0, RegistryUnreachableError("down"))]))
    with pytest.raises(RegistryApiError):
        run(Script([(0, 1), (0, RegistryApiError(422, "validation_error", "bad"))]))
