"""Empty-set protection, as a pure function: when may an empty answer replace known instances?

A service's revision moves forward with every deregistration, expiry and status change. So an empty
answer for a service that had instances is believed when its revision is past the one those instances
were read at: the last instance really went away. An empty answer whose revision did not move forward —
it fell back (a wiped or restarted store), or stayed (a replica that lost its data, a reader ahead of
the expiry sweeper) — keeps the last known instances for a grace period instead of failing every call at
once. An answer without a revision (a registry without blocking-query support) is taken as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from resilient_client.hooks import ProtectionOutcome
from resilient_client.model import ServiceAnswer, ServiceInstance


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """What the discovery cache holds for one service and status filter."""

    instances: tuple[ServiceInstance, ...]
    revision: int | None = None
    """The service's revision as last read: the index of the next blocking query."""
    basis: int | None = None
    """The revision ``instances`` were read at (older than ``revision`` while protecting)."""
    protected_until: float | None = None
    """Monotonic time until which kept instances stand in for an empty answer; ``None``: not protecting."""

    @property
    def protected(self) -> bool:
        return self.protected_until is not None

    @classmethod
    def of(cls, answer: ServiceAnswer) -> CachedAnswer:
        return cls(answer.instances, answer.revision, answer.revision)


def admit(previous: CachedAnswer | None, answer: ServiceAnswer, *, now: float,
          grace_s: float) -> tuple[CachedAnswer, ProtectionOutcome | None]:
    """The view after ``answer``, and what it did to protection (``None``: nothing)."""
    fresh = CachedAnswer.of(answer)
    protecting = previous is not None and previous.protected
    if answer.instances:
        return fresh, ProtectionOutcome.RECOVERED if protecting else None
    if previous is None or not previous.instances:
        return fresh, None
    if (grace_s <= 0 or answer.revision is None or previous.basis is None
            or answer.revision > previous.basis):
        return fresh, ProtectionOutcome.EMPTIED if protecting else None
    if previous.protected_until is not None:
        if now >= previous.protected_until:
            return fresh, ProtectionOutcome.EMPTIED
        return replace(previous, revision=answer.revision), None
    return replace(previous, revision=answer.revision, protected_until=now + grace_s), ProtectionOutcome.STARTED
