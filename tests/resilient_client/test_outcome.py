import pytest

from resilient_client import (
    AttemptTimeoutError,
    BreakerRejectedError,
    ConnectError,
    ConnectionLostError,
    Verdict,
    classify_error,
    classify_status,
    is_idempotent,
)


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
