"""The retry policy of a call: what one attempt's outcome means for the call, and whether (and after how
long) the call makes another pass over the instances. Pure decisions, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from resilient_client._backoff import Backoff, RandomSource
from resilient_client.errors import TransportError
from resilient_client.response import Response

FAILOVER_STATUSES = frozenset({502, 503, 504})
"""Answers that mean "this instance cannot serve now": fail over (when allowed) and count on the breaker."""

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


class Verdict(Enum):
    RETURN = "return"
    """Give this response to the caller."""
    FAILOVER = "failover"
    """Try the next instance (or another pass)."""
    STOP = "stop"
    """Do not try elsewhere: the request may have had an effect and may not be repeated."""


# Every call reads a verdict: through these names, a global lookup. On Python 3.11 ``Verdict.RETURN``
# goes through the enum metaclass's ``__getattr__`` hook instead, about 800 instructions a read.
RETURN, FAILOVER, STOP = Verdict.RETURN, Verdict.FAILOVER, Verdict.STOP


def is_idempotent(method: str, idempotent: bool | None) -> bool:
    """An explicit ``idempotent=`` wins; otherwise the HTTP method decides (POST and PATCH are not)."""
    if idempotent is not None:
        return idempotent
    return method.upper() in IDEMPOTENT_METHODS


def counts_against_instance(response: Response) -> bool:
    """Whether a response counts as a failure of the instance that sent it (for its breaker)."""
    return response.status in FAILOVER_STATUSES


def classify_status(status: int, *, repeatable: bool) -> Verdict:
    """A response: 502/503/504 fail over when the request may be repeated; anything else is returned."""
    if status in FAILOVER_STATUSES:
        return FAILOVER if repeatable else STOP
    return RETURN


def classify_error(error: TransportError, *, repeatable: bool) -> Verdict:
    """A failure below HTTP: fail over if nothing was sent or the request may be repeated."""
    if repeatable or not error.sent:
        return FAILOVER
    return STOP


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
