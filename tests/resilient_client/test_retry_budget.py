"""The retry budget alone, on a clock the test moves."""

import pytest

from resilient_client._retry_budget import RetryBudget
from tests.support.client_fakes import FakeClock


def budget(clock: FakeClock, ratio: float = 0.2, min_per_s: float = 0.0, window_s: float = 10.0) -> RetryBudget:
    return RetryBudget(ratio, min_per_s=min_per_s, window_s=window_s, clock=clock)


def retries_allowed(retry_budget: RetryBudget, service: str = "User", tries: int = 1000) -> int:
    return sum(retry_budget.try_retry(service) for _ in range(tries))


def test_retries_are_kept_to_the_share_of_first_attempts() -> None:
    clock = FakeClock()
    retry_budget = budget(clock)
    for _ in range(100):
        retry_budget.first_attempt("User")
    assert retries_allowed(retry_budget) == 20


def test_retries_spent_as_calls_come_never_exceed_the_share() -> None:
    clock, spent = FakeClock(), 0
    retry_budget = budget(clock)
    for calls in range(1, 501):  # every call wants two more attempts
        retry_budget.first_attempt("User")
        spent += retries_allowed(retry_budget, tries=2)
        assert spent <= 0.2 * calls
        clock.advance(0.01)
    assert spent == 100


def test_the_floor_allows_retries_to_a_client_with_little_traffic() -> None:
    clock = FakeClock()
    retry_budget = budget(clock, min_per_s=1.0)  # 10 per 10 s window, whatever the share
    retry_budget.first_attempt("User")
    assert retries_allowed(retry_budget) == 10
    for _ in range(100):
        retry_budget.first_attempt("User")
    assert retries_allowed(retry_budget) == 10  # the share (20 of 101) is now the larger: 10 more


def test_a_budget_is_kept_per_service() -> None:
    clock = FakeClock()
    retry_budget = budget(clock)
    for _ in range(10):
        retry_budget.first_attempt("User")
    assert retries_allowed(retry_budget, "Auth") == 0
    assert retries_allowed(retry_budget, "User") == 2


def test_first_attempts_and_retries_leave_the_window_as_it_slides() -> None:
    clock = FakeClock(start=0.0)
    retry_budget = budget(clock)
    for _ in range(50):
        retry_budget.first_attempt("User")
    assert retries_allowed(retry_budget) == 10
    clock.advance(5.0)
    for _ in range(50):
        retry_budget.first_attempt("User")
    assert retries_allowed(retry_budget) == 10  # 20% of 100, minus the 10 spent
    clock.advance(5.0)  # the first 50 and their 10 retries have left the window
    assert retries_allowed(retry_budget) == 0  # 20% of 50 = 10, spent 5 s ago
    clock.advance(5.0)
    assert retries_allowed(retry_budget) == 0  # nothing left in the window at all
    clock.advance(100.0)
    retry_budget.first_attempt("User")
    retry_budget.first_attempt("User")
    retry_budget.first_attempt("User")
    retry_budget.first_attempt("User")
    retry_budget.first_attempt("User")
    assert retries_allowed(retry_budget) == 1


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.5, 1.0])
def test_the_share_is_the_ratio_given(ratio: float) -> None:
    clock = FakeClock()
    retry_budget = budget(clock, ratio=ratio)
    for _ in range(200):
        retry_budget.first_attempt("User")
    assert retries_allowed(retry_budget) == round(200 * ratio)
