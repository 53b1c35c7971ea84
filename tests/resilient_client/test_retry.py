import pytest

from resilient_client import (
    AttemptTimeoutError,
    BackoffConfig,
    BreakerRejectedError,
    ConnectError,
    ConnectionLostError,
    Response,
)
from resilient_client._backoff import Backoff
from resilient_client._retry import (
    PassPlanner,
    Verdict,
    classify_error,
    classify_status,
    counts_against_instance,
    is_idempotent,
)

PLANNER = PassPlanner(Backoff(BackoffConfig(base_s=0.1, factor=2, max_s=1, jitter=0)), max_passes=3,
                      max_retry_after_s=5)


def test_passes_after_the_first_wait_the_backoff_schedule() -> None:
    assert PLANNER.next_delay(1, remaining_s=10) == 0.1
    assert PLANNER.next_delay(2, remaining_s=10) == 0.2


def test_no_pass_beyond_the_maximum() -> None:
    assert PLANNER.next_delay(3, remaining_s=10) is None


def test_no_pass_when_the_wait_would_use_up_the_deadline() -> None:
    assert PLANNER.next_delay(1, remaining_s=0.1) is None


def test_retry_after_raises_the_wait_within_the_deadline() -> None:
    assert PLANNER.next_delay(1, remaining_s=10, retry_after_s=2) == 2
    assert PLANNER.next_delay(1, remaining_s=1.5, retry_after_s=2) is None


def test_a_retry_after_beyond_the_limit_ends_the_call() -> None:
    assert PLANNER.next_delay(1, remaining_s=100, retry_after_s=6) is None


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_failures_fail_over_when_the_request_may_be_repeated(status: int) -> None:
    assert classify_status(status, repeatable=True) is Verdict.FAILOVER
    assert classify_status(status, repeatable=False) is Verdict.STOP


@pytest.mark.parametrize("status", [200, 201, 204, 301, 400, 404, 409, 429, 500, 501, 505])
def test_other_statuses_go_back_to_the_caller(status: int) -> None:
    assert classify_status(status, repeatable=True) is Verdict.RETURN
    assert classify_status(status, repeatable=False) is Verdict.RETURN


def test_an_unsent_request_always_fails_over() -> None:
    for error in (ConnectError("refused"), BreakerRejectedError("open"),
                  AttemptTimeoutError("connect", sent=False)):
        assert classify_error(error, repeatable=False) is Verdict.FAILOVER


def test_a_maybe_sent_request_fails_over_only_when_repeatable() -> None:
    for error in (AttemptTimeoutError("read"), ConnectionLostError("reset")):
        assert classify_error(error, repeatable=True) is Verdict.FAILOVER
        assert classify_error(error, repeatable=False) is Verdict.STOP


def test_post_and_patch_are_not_idempotent_unless_the_call_says_so() -> None:
    assert [is_idempotent(m, None) for m in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")] == [True] * 5
    assert [is_idempotent(m, None) for m in ("POST", "PATCH", "post")] == [False] * 3
    assert is_idempotent("POST", True) and not is_idempotent("GET", False)


@pytest.mark.parametrize(("status", "counts"), [(502, True), (503, True), (504, True), (500, False), (200, False)])
def test_only_gateway_failures_count_against_the_instance(status: int, counts: bool) -> None:
    assert counts_against_instance(Response(status, {}, b"")) is counts
