"""How the overload benchmark counts what it reports."""

from __future__ import annotations

from benchmarks.bench_overload import OverloadResult


def test_a_live_instance_that_expired_and_is_missing_at_the_end_is_one_false_expiry() -> None:
    result = OverloadResult(3.0, 1000.0, 3000, 60.0)
    result.expirations = 3.0  # the dead instance and two live ones
    result.missing_at_end = 2  # the same two: the benchmark's instances never register again
    assert result.false_expiries == 2
    result.missing_at_end = 3  # one more lost without expiring (never listed again)
    assert result.false_expiries == 3
