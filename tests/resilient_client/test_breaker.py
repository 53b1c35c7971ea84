import asyncio
from collections.abc import Awaitable, Callable

import pybreaker
import pytest
from prometheus_client import CollectorRegistry

from resilient_client import BreakerConfig, BreakerRejectedError, ConnectError, ServiceInstance, client_metrics
from resilient_client._breaker import InstanceBreaker
from resilient_client._breaker_board import BreakerBoard
from resilient_client._report import Reporter
from resilient_client.hooks import BreakerState, BreakerStateChanged, Event
from tests.support.client_fakes import FakeClock

RESET_S = 30.0


def make(fail_max: int = 3, probes: int = 1) -> tuple[InstanceBreaker, list[Event], FakeClock]:
    seen: list[Event] = []
    clock = FakeClock()
    breaker = InstanceBreaker("User", "127.0.0.1:1", BreakerConfig(fail_max, RESET_S, probes),
                              Reporter(hooks=[seen.append]), clock)
    return breaker, seen, clock


async def ok() -> int:
    return 200


async def unavailable() -> int:
    return 503


async def refused() -> int:
    raise ConnectError("refused")


def never_failure(_: int) -> bool:
    return False


def is_503(status: int) -> bool:
    return status == 503


def raising(error: BaseException) -> Callable[[], Awaitable[int]]:
    async def send() -> int:
        raise error
    return send


async def trip(breaker: InstanceBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(ConnectError):
            await breaker.call(refused, never_failure)


def transitions(seen: list[Event]) -> list[BreakerState]:
    return [e.state for e in seen if isinstance(e, BreakerStateChanged) and e.transition]


class Held:
    """A call that waits inside the breaker until released, then returns or raises what it is told."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.outcome: int | BaseException = 200

    async def send(self) -> int:
        self.entered.set()
        await self.release.wait()
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


async def test_consecutive_failures_open_the_breaker_and_the_original_error_is_kept() -> None:
    breaker, seen, _ = make(fail_max=3)
    await trip(breaker, 3)  # the third failure trips it: still a ConnectError, never CircuitBreakerError
    assert breaker.state is BreakerState.OPEN
    changes = [e for e in seen if isinstance(e, BreakerStateChanged)]
    assert [(e.state, e.transition) for e in changes] == [(BreakerState.CLOSED, False), (BreakerState.OPEN, True)]


async def test_a_plain_success_leaves_a_closed_breaker_untouched_and_reports_nothing() -> None:
    breaker, seen, _ = make(fail_max=1)
    assert await breaker.call(ok, never_failure) == 200
    assert (breaker.state, breaker.fail_counter, breaker.rejections) == (BreakerState.CLOSED, 0, 0)
    assert len(seen) == 1  # only the breaker's creation


async def test_a_result_judged_a_failure_counts_trips_and_is_still_returned() -> None:
    breaker, seen, _ = make(fail_max=2)
    assert await breaker.call(unavailable, is_503) == 503
    assert breaker.fail_counter == 1
    assert await breaker.call(unavailable, is_503) == 503  # trips: nothing raised, the caller keeps its result
    assert breaker.state is BreakerState.OPEN
    assert transitions(seen) == [BreakerState.OPEN]


async def test_a_success_resets_the_consecutive_failure_count() -> None:
    breaker, _, _ = make(fail_max=3)
    await trip(breaker, 2)
    assert await breaker.call(ok, never_failure) == 200
    assert breaker.fail_counter == 0
    assert breaker.state is BreakerState.CLOSED


async def test_the_failure_that_trips_is_raised_as_it_was_with_its_traceback() -> None:
    breaker, _, _ = make(fail_max=1)
    error = ConnectError("refused")
    with pytest.raises(ConnectError) as info:
        await breaker.call(raising(error), never_failure)
    assert info.value is error
    assert info.traceback[-1].name == "send"  # raised where it was raised, not re-made by pybreaker
    assert breaker.state is BreakerState.OPEN


async def test_an_open_breaker_fails_fast_without_calling_and_counts_the_rejection() -> None:
    breaker, seen, _ = make(fail_max=1)
    await trip(breaker, 1)
    held = Held()
    with pytest.raises(BreakerRejectedError) as info:
        await breaker.call(held.send, never_failure)
    assert info.value.sent is False
    assert not held.entered.is_set()
    assert breaker.rejections == 1
    assert not breaker.available()
    assert type(seen[-1]).__name__ == "BreakerRejected"


async def test_the_reset_timeout_runs_on_the_injected_clock() -> None:
    breaker, seen, clock = make(fail_max=1)
    await trip(breaker, 1)
    clock.advance(RESET_S - 0.001)
    assert not breaker.available()
    with pytest.raises(BreakerRejectedError, match="open"):
        await breaker.call(ok, never_failure)
    clock.advance(0.001)
    assert breaker.available()
    assert await breaker.call(ok, never_failure) == 200
    assert transitions(seen) == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


async def test_a_cancelled_call_is_not_counted_and_its_cancelled_error_is_kept() -> None:
    breaker, _, _ = make(fail_max=1)
    held = Held()
    task = asyncio.create_task(breaker.call(held.send, never_failure))
    await held.entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is BreakerState.CLOSED
    assert breaker.fail_counter == 0


@pytest.mark.parametrize("error", [asyncio.CancelledError(), KeyError("bug")])
async def test_a_cancelled_error_or_an_unrelated_error_neither_counts_nor_resets(error: BaseException) -> None:
    breaker, _, _ = make(fail_max=2)
    await trip(breaker, 1)
    with pytest.raises(type(error)):
        await breaker.call(raising(error), never_failure)
    assert (breaker.state, breaker.fail_counter) == (BreakerState.CLOSED, 1)


async def test_an_outcome_that_comes_back_after_another_call_tripped_the_breaker_is_dropped() -> None:
    breaker, _, _ = make(fail_max=1)
    late_success, late_failure = Held(), Held()
    late_failure.outcome = ConnectError("refused")
    tasks = [asyncio.create_task(breaker.call(held.send, never_failure)) for held in (late_success, late_failure)]
    await late_success.entered.wait()
    await late_failure.entered.wait()  # both admitted while closed
    await trip(breaker, 1)  # a third call trips it meanwhile
    late_success.release.set()
    late_failure.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] == 200 and isinstance(results[1], ConnectError)
    assert breaker.state is BreakerState.OPEN
    assert breaker.fail_counter == 1


async def test_half_open_admits_a_bounded_number_of_concurrent_probes_and_their_success_closes_it() -> None:
    breaker, seen, clock = make(fail_max=1, probes=2)
    await trip(breaker, 1)
    clock.advance(RESET_S)
    probes = [Held(), Held()]
    tasks = [asyncio.create_task(breaker.call(held.send, never_failure)) for held in probes]
    for held in probes:
        await held.entered.wait()
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.available()
    third = Held()
    with pytest.raises(BreakerRejectedError, match="half-open"):
        await breaker.call(third.send, never_failure)
    assert not third.entered.is_set()
    for held in probes:
        held.release.set()
    assert await asyncio.gather(*tasks) == [200, 200]
    assert (breaker.state, breaker.rejections) == (BreakerState.CLOSED, 1)
    # (pybreaker judges each probe by the state it entered in: the second success closes it once more)
    assert transitions(seen)[:3] == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


@pytest.mark.parametrize("outcome", ["raised", "failed"])
async def test_a_failed_probe_opens_the_breaker_again(outcome: str) -> None:
    breaker, seen, clock = make(fail_max=1)
    await trip(breaker, 1)
    clock.advance(RESET_S)
    if outcome == "raised":
        await trip(breaker, 1)
    else:
        assert await breaker.call(unavailable, is_503) == 503
    assert breaker.state is BreakerState.OPEN
    assert not breaker.available()
    assert transitions(seen) == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.OPEN]
    clock.advance(RESET_S - 0.001)  # timed again from the reopening
    assert not breaker.available()


@pytest.mark.parametrize("error", [asyncio.CancelledError(), KeyError("bug")])
async def test_a_probe_ended_by_an_uncounted_error_leaves_the_breaker_half_open_and_frees_its_slot(
        error: BaseException) -> None:
    breaker, _, clock = make(fail_max=1)
    await trip(breaker, 1)
    clock.advance(RESET_S)
    with pytest.raises(type(error)):
        await breaker.call(raising(error), never_failure)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.fail_counter == 1
    assert breaker.available()
    assert await breaker.call(ok, never_failure) == 200
    assert breaker.state is BreakerState.CLOSED


def test_pybreaker_listeners_see_the_original_error_of_each_counted_failure() -> None:
    breaker, _, _ = make(fail_max=2)
    failures: list[BaseException] = []

    class Failures(pybreaker.CircuitBreakerListener):  # type: ignore[misc]
        def failure(self, cb: pybreaker.CircuitBreaker, exc: BaseException) -> None:
            failures.append(exc)

    breaker.pybreaker.add_listener(Failures())
    error = ConnectError("refused")

    async def calls() -> None:
        with pytest.raises(ConnectError):
            await breaker.call(raising(error), never_failure)
        with pytest.raises(asyncio.CancelledError):
            await breaker.call(raising(asyncio.CancelledError()), never_failure)

    asyncio.run(calls())
    assert failures == [error]


async def test_the_success_threshold_of_pybreaker_still_decides_when_half_open_closes() -> None:
    breaker, _, clock = make(fail_max=1, probes=2)
    breaker.pybreaker.success_threshold = 2
    await trip(breaker, 1)
    clock.advance(RESET_S)
    assert await breaker.call(ok, never_failure) == 200
    assert breaker.state is BreakerState.HALF_OPEN
    with pytest.raises(asyncio.CancelledError):  # neutral: not a success either
        await breaker.call(raising(asyncio.CancelledError()), never_failure)
    assert breaker.state is BreakerState.HALF_OPEN
    assert await breaker.call(ok, never_failure) == 200
    assert breaker.state is BreakerState.CLOSED


async def test_state_changes_feed_the_state_gauge_and_transition_counter() -> None:
    registry = CollectorRegistry()
    breaker = InstanceBreaker("User", "h:1", BreakerConfig(fail_max=1), Reporter(client_metrics(registry)),
                              FakeClock())
    labels = {"service": "User", "instance": "h:1"}
    assert registry.get_sample_value("resilient_client_circuit_breaker_state", labels) == 0
    await trip(breaker, 1)
    assert registry.get_sample_value("resilient_client_circuit_breaker_state", labels) == 2
    assert registry.get_sample_value("resilient_client_circuit_breaker_transitions_total",
                                     {**labels, "state": "open"}) == 1


async def test_the_state_gauge_series_stays_while_another_client_on_the_registry_still_has_the_breaker() -> None:
    registry = CollectorRegistry()
    reporter = Reporter(client_metrics(registry))
    boards = [BreakerBoard(BreakerConfig(), reporter, FakeClock()) for _ in range(2)]
    user = ServiceInstance(id="User-1", name="User", host="h", port=1)
    labels = {"service": "User", "instance": "h:1"}
    for board in boards:
        board.lineup("User", [user])
    boards[0].lineup("User", [])
    assert registry.get_sample_value("resilient_client_circuit_breaker_state", labels) == 0
    boards[1].lineup("User", [])
    assert registry.get_sample_value("resilient_client_circuit_breaker_state", labels) is None
    boards[1].lineup("User", [user])  # back again: a fresh breaker, a fresh series
    assert registry.get_sample_value("resilient_client_circuit_breaker_state", labels) == 0


async def test_a_retired_breaker_reports_nothing_more() -> None:
    breaker, seen, _ = make(fail_max=1)
    breaker.retire()
    await trip(breaker, 1)
    assert breaker.retired
    assert [type(event).__name__ for event in seen] == ["BreakerStateChanged", "BreakerRemoved"]
