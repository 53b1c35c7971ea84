"""What one attempt's outcome means for the call: pure classification, no I/O."""

from __future__ import annotations

from enum import Enum

from resilient_client.errors import TransportError

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


def is_idempotent(method: str, idempotent: bool | None) -> bool:
    """An explicit ``idempotent=`` wins; otherwise the HTTP method decides (POST and PATCH are not)."""
    if idempotent is not None:
        return idempotent
    return method.upper() in IDEMPOTENT_METHODS


def counts_as_failure(status: int) -> bool:
    """Whether a response counts as a failure of the instance (for its breaker and for failover)."""
    return status in FAILOVER_STATUSES


def classify_status(status: int, *, repeatable: bool) -> Verdict:
    """A response: 502/503/504 fail over when the request may be repeated; anything else is returned."""
    if status in FAILOVER_STATUSES:
        return Verdict.FAILOVER if repeatable else Verdict.STOP
    return Verdict.RETURN


def classify_error(error: TransportError, *, repeatable: bool) -> Verdict:
    """A failure below HTTP: fail over if nothing was sent or the request may be repeated."""
    if repeatable or not error.sent:
        return Verdict.FAILOVER
    return Verdict.STOP
