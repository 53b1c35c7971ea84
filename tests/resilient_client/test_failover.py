from resilient_client import Backoff, BackoffConfig, PassPlanner

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
