import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_client import BackoffConfig
from resilient_client._backoff import Backoff, parse_retry_after

configs = st.builds(BackoffConfig, base_s=st.floats(0.001, 10), factor=st.floats(1, 4),
                    max_s=st.floats(0.001, 100), jitter=st.floats(0, 1))


@given(configs, st.integers(0, 2000), st.floats(0, 0.999999))
def test_a_delay_stays_between_the_jitter_floor_and_the_capped_ceiling(cfg: BackoffConfig, retry: int,
                                                                        u: float) -> None:
    backoff = Backoff(cfg)
    rng = random.Random()
    rng.random = lambda: u  # type: ignore[method-assign]
    delay = backoff.delay(retry, rng)
    ceiling = backoff.ceiling(retry)
    assert ceiling <= cfg.max_s
    assert (1 - cfg.jitter) * ceiling - 1e-12 <= delay <= ceiling


@given(configs, st.integers(0, 200))
def test_the_ceiling_never_shrinks_from_one_retry_to_the_next(cfg: BackoffConfig, retry: int) -> None:
    backoff = Backoff(cfg)
    assert backoff.ceiling(retry + 1) >= backoff.ceiling(retry)


def test_without_jitter_the_schedule_doubles_up_to_the_cap() -> None:
    backoff = Backoff(BackoffConfig(base_s=0.1, factor=2, max_s=0.5, jitter=0))
    assert [backoff.delay(n) for n in range(5)] == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])


def test_an_injected_random_source_makes_the_schedule_reproducible() -> None:
    backoff = Backoff(BackoffConfig())
    assert [backoff.delay(n, random.Random(7)) for n in range(6)] == [
        backoff.delay(n, random.Random(7)) for n in range(6)]


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Sat, 28 Nov 2026 12:00:05 GMT", now=now) == 5.0
    assert parse_retry_after("Sat, 28 Nov 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
