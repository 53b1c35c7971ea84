"""Whether a call gets another pass over the instances, and after how long: pure planning."""

from __future__ import annotations

from dataclasses import dataclass

from resilient_client.backoff import Backoff, RandomSource


@dataclass(frozen=True, slots=True)
class PassPlanner:
    """Decides the wait before pass ``n`` (1-based after the first) inside one call's deadline."""

    backoff: Backoff
    max_passes: int
    max_retry_after_s: float

    def next_delay(self, passes_done: int, *, remaining_s: float, retry_after_s: float | None = None,
                   rng: RandomSource | None = None) -> float | None:
        """Seconds to wait before the next pass, or ``None`` when the call must end now.

        A ``Retry-After`` hint raises the wait; a hint beyond ``max_retry_after_s`` or a wait that would
        leave no time for an attempt ends the call.
        """
        if passes_done >= self.max_passes:
            return None
        delay = self.backoff.delay(passes_done - 1, rng)
        if retry_after_s is not None:
            if retry_after_s > self.max_retry_after_s:
                return None
            delay = max(delay, retry_after_s)
        if delay >= remaining_s:
            return None
        return delay
