"""The retry budget: how many retries and failovers a client may send, as a share of its first attempts.

Without a budget every call that fails may try ``max_passes`` times every instance, so an outage
multiplies the traffic the failing service receives just when it can least take it. With one, the
attempts after a call's first (a failover to the next instance, or the first attempt of another pass)
draw on a balance fed by first attempts: over the last ``window_s``, at most ``max(ratio * first
attempts, min_per_s * window_s)`` of them (Finagle's RetryBudget and Envoy's retry budgets). A call
that finds the balance empty ends with what it has. The floor keeps retries possible for a client that
makes few calls.
"""

from __future__ import annotations

from resilient_client._clock import Clock

BUCKETS = 10
"""The window is counted in this many buckets: it slides by a tenth of its length at a time."""


class _Window:
    """One service's first attempts and retries in the buckets of the window, and their totals."""

    __slots__ = ("bucket", "first_total", "firsts", "retries", "retry_total")

    def __init__(self, bucket: int) -> None:
        self.bucket = bucket
        """The number (time / bucket length) of the newest bucket."""
        self.firsts = [0] * BUCKETS
        self.retries = [0] * BUCKETS
        self.first_total = 0
        self.retry_total = 0

    def slide(self, bucket: int) -> None:
        """Move the window on to ``bucket``, emptying the buckets it leaves behind."""
        passed = bucket - self.bucket
        if passed > 0:
            if passed >= BUCKETS:
                self.firsts = [0] * BUCKETS
                self.retries = [0] * BUCKETS
                self.first_total = self.retry_total = 0
            else:
                firsts, retries = self.firsts, self.retries
                for number in range(self.bucket + 1, bucket + 1):
                    slot = number % BUCKETS
                    self.first_total -= firsts[slot]
                    self.retry_total -= retries[slot]
                    firsts[slot] = retries[slot] = 0
            self.bucket = bucket


class RetryBudget:
    """The retry budget of one client, kept per service."""

    __slots__ = ("_bucket_s", "_clock", "_floor", "_ratio", "_windows")

    def __init__(self, ratio: float, *, min_per_s: float, window_s: float, clock: Clock) -> None:
        self._ratio = ratio
        self._floor = min_per_s * window_s
        self._bucket_s = window_s / BUCKETS
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    def _window(self, service: str, bucket: int) -> _Window:
        """``service``'s window, slid on to ``bucket``."""
        window = self._windows.get(service)
        if window is None:
            window = self._windows[service] = _Window(bucket)
        window.slide(bucket)
        return window

    def first_attempt(self, service: str) -> None:
        """A call of ``service`` makes its first attempt: it adds ``ratio`` of a retry to the balance."""
        bucket = int(self._clock.monotonic() // self._bucket_s)
        window = self._windows.get(service)
        if window is None or window.bucket != bucket:  # (every call comes here: no further call while it can)
            window = self._window(service, bucket)
        window.firsts[bucket % BUCKETS] += 1
        window.first_total += 1

    def try_retry(self, service: str) -> bool:
        """Whether a call of ``service`` may make another attempt; ``True`` takes one from the balance."""
        bucket = int(self._clock.monotonic() // self._bucket_s)
        window = self._window(service, bucket)
        if window.retry_total + 1 > max(self._ratio * window.first_total, self._floor):
            return False
        window.retries[bucket % BUCKETS] += 1
        window.retry_total += 1
        return True

    def __repr__(self) -> str:
        return f"RetryBudget(ratio={self._ratio}, floor={self._floor:g} per window)"
