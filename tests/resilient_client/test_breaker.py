import asyncio
from datetime import UTC, datetime, timedelta

import pybreaker
import pytest
from prometheus_client import CollectorRegistry

from resilient_client import (
    BreakerBoard,
    BreakerConfig,
    BreakerRejectedError,
    BreakerState,
    BreakerStateChanged,
    ConnectError,
    Event,
    InstanceBreaker,
    ServiceInstance,
    client_metrics,
)
from resilient_client._report import Reporter


def make(fail_max: int = 3, reset_timeout_s: float = 30.0, probes: int = 1) -> tuple[InstanceBreaker, list[Event]]:
    seen: list[Event] = []
    breaker = InstanceBreaker("User", "127.0.0.1:1", BreakerConfig(fail_max, reset_timeout_s, probes),
                              Reporter(hooks=[seen.append]))
    return breaker, seen


async def ok() -> int:
    return 200


async def refused() -> int:
    raise ConnectError("refused")


def never_failure(_: int) -> bool:
    return False


async def trip(breaker: InstanceBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(ConnectError):
            await breaker.call(refused, never_failure)


def elapse_reset_timeout(breaker: InstanceBreaker) -> None:
    breaker.pybreaker._state_storage.opened_at = datetime.now(UTC) - timedelta(hours=1)


async def test_consecutive_failures_open_the_breaker_and_the_original_error_is_kept() -> None:
    breaker, seen = make(fail_max=3)
    await trip(breaker, 3)  # the third failure trips it: still a ConnectError, never CircuitBreakerError
    assert breaker.state is BreakerState.OPEN
    changes = [e for e in seen if isinstance(e, BreakerStateChanged)]
    assert [(e.state, e.transition) for e in changes] == [(BreakerState.CLOSED, False), (BreakerState.OPEN, True)]


async def test_a_result_judged_a_failure_counts_and_is_still_returned() -> None:
    breaker, _ = make(fail_max=2)
    assert await breaker.call(ok, lambda status: status == 200) == 200
    assert breaker.fail_counter == 1


async def test_a_success_resets_the_consecutive_failure_count() -> None:
    breaker, _ = make(fail_max=3)
    await trip(breaker, 2)
    assert await breaker.call(ok, never_failure) == 200
    assert breaker.fail_counter == 0


async def test_an_open_breaker_fails_fast_without_calling_and_counts_the_rejection() -> None:
    breaker, _seen = make(fail_max=1)
    await trip(breaker, 1)
    calls = 0

    async def counted() -> int:
        nonlocal calls
        calls += 1
        return 200

    with pytest.raises(BreakerRejectedError) as info:
        await breaker.call(counted, never_failure)
    assert info.value.sent is False
    assert calls == 0
    assert breaker.rejections == 1
    assert not breaker.available()


async def test_a_cancelled_call_is_not_counted_and_its_cancelled_error_is_kept() -> None:
    breaker, _ = make(fail_max=1)
    started = asyncio.Event()

    async def hang() -> int:
        started.set()
        await asyncio.Event().wait()
        return 200

    task = asyncio.create_task(breaker.call(hang, never_failure))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is BreakerState.CLOSED
    assert breaker.fail_counter == 0


async def test_a_cancelled_call_does_not_reset_earlier_failures() -> None:
    breaker, _ = make(fail_max=3)
    await trip(breaker, 2)

    async def cancelled() -> int:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await breaker.call(cancelled, never_failure)
    assert breaker.fail_counter == 2


async def test_a_cancelled_half_open_probe_leaves_the_breaker_half_open_and_frees_its_slot() -> None:
    breaker, _ = make(fail_max=1)
    await trip(breaker, 1)
    elapse_reset_timeout(breaker)

    async def cancelled() -> int:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await breaker.call(cancelled, never_failure)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.available()
    assert await breaker.call(ok, never_failure) == 200
    assert breaker.state is BreakerState.CLOSED


async def test_an_unrelated_error_neither_counts_nor_closes() -> None:
    breaker, _ = make(fail_max=2)
    await trip(breaker, 1)

    async def bug() -> int:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await breaker.call(bug, never_failure)
    assert breaker.fail_counter == 1


async def test_half_open_admits_a_bounded_number_of_concurrent_probes() -> None:
    breaker, _ = make(fail_max=1, probes=2)
    await trip(breaker, 1)
    elapse_reset_timeout(breaker)
    release, both_in = asyncio.Event(), asyncio.Event()
    entered = 0

    async def probe() -> int:
        nonlocal entered
        entered += 1
        if entered == 2:
            both_in.set()
        await release.wait()
        return 200

    probes = [asyncio.create_task(breaker.call(probe, never_failure)) for _ in range(2)]
    await both_in.wait()
    assert not breaker.available()
    with pytest.raises(BreakerRejectedError):
        await breaker.call(probe, never_failure)
    assert entered == 2
    release.set()
    assert await asyncio.gather(*probes) == [200, 200]
    assert breaker.state is BreakerState.CLOSED


async def test_a_failed_probe_opens_the_breaker_again() -> None:
    breaker, seen = make(fail_max=1)
    await trip(breaker, 1)
    elapse_reset_timeout(breaker)
    await trip(breaker, 1)
    assert breaker.state is BreakerState.OPEN
    states = [e.state for e in seen if isinstance(e, BreakerStateChanged) and e.transition]
    assert states == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.OPEN]


async def test_state_changes_feed_the_state_gauge_and_transition_counter() -> None:
    registry = CollectorRegistry()
    metrics = client_metrics(registry)
    breaker = InstanceBreaker("User", "h:1", BreakerConfig(fail_max=1), Reporter(metrics))
    assert registry.get_sample_value("resilient_client_circuit_breaker_state",
                                     {"service": "User", "instance": "h:1"}) == 0
    await trip(breaker, 1)
    assert registry.get_sample_value("resilient_client_circuit_breaker_state",
                                     {"service": "User", "instance": "h:1"}) == 2
    assert registry.get_sample_value("resilient_client_circuit_breaker_transitions_total",
                                     {"service": "User", "instance": "h:1", "state": "open"}) == 1


async def test_the_state_gauge_series_stays_while_another_client_on_the_registry_still_has_the_breaker() -> None:
    registry = CollectorRegistry()
    metrics = client_metrics(registry)
    boards = [BreakerBoard(BreakerConfig(), Reporter(metrics)) for _ in range(2)]
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
    breaker, seen = make(fail_max=1)
    breaker.retire()
    await trip(breaker, 1)
    assert breaker.retired
    assert [type(event).__name__ for event in seen] == ["BreakerStateChanged", "BreakerRemoved"]


# -- the synchronous path the client drives: admit(), the caller's own await, then one outcome ------------


def test_a_closed_breaker_admits_without_a_probe_and_a_plain_success_leaves_it_untouched() -> None:
    breaker, seen = make(fail_max=1)
    probe = breaker.admit()
    assert probe is None
    breaker.succeeded(probe)
    assert (breaker.state, breaker.fail_counter, breaker.rejections) == (BreakerState.CLOSED, 0, 0)
    assert len(seen) == 1  # only the breaker's creation


def test_a_success_reported_after_failures_resets_the_failure_count() -> None:
    breaker, _ = make(fail_max=3)
    for _ in range(2):
        breaker.raised(breaker.admit(), ConnectError("refused"))
    assert breaker.fail_counter == 2
    breaker.succeeded(breaker.admit())
    assert breaker.fail_counter == 0
    assert breaker.state is BreakerState.CLOSED


def test_a_result_reported_as_a_failure_counts_and_trips_without_raising() -> None:
    breaker, seen = make(fail_max=2)
    breaker.failed(breaker.admit(), 503)
    assert breaker.fail_counter == 1
    breaker.failed(breaker.admit(), 503)  # trips: nothing is raised, the caller keeps its response
    assert breaker.state is BreakerState.OPEN
    assert [e.state for e in seen if isinstance(e, BreakerStateChanged) and e.transition] == [BreakerState.OPEN]


def test_a_failure_that_trips_leaves_the_original_error_to_the_caller_with_its_traceback() -> None:
    breaker, _ = make(fail_max=1)
    probe = breaker.admit()
    try:
        raise ConnectError("refused")
    except ConnectError as exc:
        error, traceback = exc, exc.__traceback__
        breaker.raised(probe, exc)  # does not raise (not even a CircuitBreakerError) on the trip
    assert breaker.state is BreakerState.OPEN
    assert error.__traceback__ is traceback


@pytest.mark.parametrize("error", [asyncio.CancelledError(), KeyError("bug")])
def test_a_cancelled_error_or_an_unrelated_error_neither_counts_nor_resets(error: BaseException) -> None:
    breaker, _ = make(fail_max=2)
    breaker.raised(breaker.admit(), ConnectError("refused"))
    breaker.raised(breaker.admit(), error)
    assert (breaker.state, breaker.fail_counter) == (BreakerState.CLOSED, 1)


def test_an_open_breaker_turns_admit_away_and_counts_it() -> None:
    breaker, seen = make(fail_max=1)
    breaker.raised(breaker.admit(), ConnectError("refused"))
    with pytest.raises(BreakerRejectedError) as info:
        breaker.admit()
    assert info.value.sent is False
    assert breaker.rejections == 1
    assert [type(e).__name__ for e in seen][-1] == "BreakerRejected"


def test_an_outcome_reported_after_another_call_tripped_the_breaker_is_dropped() -> None:
    breaker, _ = make(fail_max=1)
    late_success, late_failure = breaker.admit(), breaker.admit()  # both admitted while closed
    breaker.raised(breaker.admit(), ConnectError("refused"))  # a third call trips it meanwhile
    breaker.succeeded(late_success)
    breaker.raised(late_failure, ConnectError("refused"))
    assert breaker.state is BreakerState.OPEN
    assert breaker.fail_counter == 1


def test_half_open_admits_one_probe_at_a_time_and_its_success_closes_the_breaker() -> None:
    breaker, seen = make(fail_max=1, probes=1)
    breaker.raised(breaker.admit(), ConnectError("refused"))
    elapse_reset_timeout(breaker)
    probe = breaker.admit()
    assert probe is not None
    assert breaker.state is BreakerState.HALF_OPEN
    with pytest.raises(BreakerRejectedError, match="half-open"):
        breaker.admit()
    breaker.succeeded(probe)
    assert (breaker.state, breaker.rejections) == (BreakerState.CLOSED, 1)
    states = [e.state for e in seen if isinstance(e, BreakerStateChanged) and e.transition]
    assert states == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


@pytest.mark.parametrize("outcome", ["raised", "failed"])
def test_a_failed_probe_opens_the_breaker_again_without_raising(outcome: str) -> None:
    breaker, _ = make(fail_max=1)
    breaker.raised(breaker.admit(), ConnectError("refused"))
    elapse_reset_timeout(breaker)
    probe = breaker.admit()
    if outcome == "raised":
        breaker.raised(probe, ConnectError("refused again"))
    else:
        breaker.failed(probe, 503)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.available()


@pytest.mark.parametrize("error", [asyncio.CancelledError(), KeyError("bug")])
def test_a_probe_ended_by_an_uncounted_error_leaves_the_breaker_half_open_and_frees_its_slot(
        error: BaseException) -> None:
    breaker, _ = make(fail_max=1)
    breaker.raised(breaker.admit(), ConnectError("refused"))
    elapse_reset_timeout(breaker)
    breaker.raised(breaker.admit(), error)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.fail_counter == 1
    assert breaker.available()
    breaker.succeeded(breaker.admit())
    assert breaker.state is BreakerState.CLOSED


def test_pybreaker_listeners_see_the_original_error_of_each_counted_failure() -> None:
    breaker, _ = make(fail_max=2)
    failures: list[BaseException] = []

    class Failures(pybreaker.CircuitBreakerListener):  # type: ignore[misc]
        def failure(self, cb: pybreaker.CircuitBreaker, exc: BaseException) -> None:
            failures.append(exc)

    breaker.pybreaker.add_listener(Failures())
    refused = ConnectError("refused")
    breaker.raised(breaker.admit(), refused)
    breaker.raised(breaker.admit(), asyncio.CancelledError())
    assert failures == [refused]


def test_the_success_threshold_of_pybreaker_still_decides_when_half_open_closes() -> None:
    breaker, _ = make(fail_max=1, probes=2)
    breaker.pybreaker.success_threshold = 2
    breaker.raised(breaker.admit(), ConnectError("refused"))
    elapse_reset_timeout(breaker)
    breaker.succeeded(breaker.admit())
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.raised(breaker.admit(), asyncio.CancelledError())  # neutral: not a success either
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.succeeded(breaker.admit())
    assert breaker.state is BreakerState.CLOSED
