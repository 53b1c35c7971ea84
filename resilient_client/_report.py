"""One place the client's parts report what happened: the Prometheus metrics, and the user's hooks."""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable

from resilient_client.hooks import (
    BreakerRejected,
    BreakerRemoved,
    BreakerState,
    BreakerStateChanged,
    DiscoveryLookedUp,
    DiscoveryProtected,
    DiscoveryResult,
    Event,
    FailedOver,
    HeartbeatOutcome,
    HeartbeatSent,
    Hook,
    ProtectionOutcome,
    RegistrationAttempted,
    RegistrationOutcome,
    RegistrationState,
    RegistrationStateChanged,
    RequestFinished,
    RequestOutcome,
    Retried,
    RetryBudgetExhausted,
    WatchState,
    WatchStateChanged,
)
from resilient_client.metrics import DURATION_BUCKETS, SUM, ClientMetrics

log = logging.getLogger(__name__)


class Reporter:
    """Updates ``metrics`` (``None``: metrics off) and calls every hook with the event (built only when
    there is a hook). One method per kind of event; the parts of one client or manager share one."""

    __slots__ = ("_hooks", "_metrics")

    def __init__(self, metrics: ClientMetrics | None = None, hooks: Iterable[Hook] = ()) -> None:
        self._metrics = metrics
        self._hooks = tuple(hooks)

    def request_finished(self, service: str, outcome: RequestOutcome, duration_s: float) -> None:
        metrics = self._metrics
        if metrics is not None:  # (once per call: the update written out here, one call less)
            count, duration = metrics.finished.get((service, outcome)) or metrics.finished_series(service, outcome)
            count[0] += 1.0
            duration[bisect.bisect_left(DURATION_BUCKETS, duration_s)] += 1.0
            duration[SUM] += duration_s
        if self._hooks:
            self._call_hooks(RequestFinished(service, outcome, duration_s))

    def looked_up(self, service: str, result: DiscoveryResult) -> None:
        metrics = self._metrics
        if metrics is not None:  # (once per call, as above)
            (metrics.lookups.get((service, result)) or metrics.lookup_series(service, result))[0] += 1.0
        if self._hooks:
            self._call_hooks(DiscoveryLookedUp(service, result))

    def failed_over(self, service: str, from_instance: str) -> None:
        if self._metrics is not None:
            self._metrics.failovers.series(service)[0] += 1.0
        if self._hooks:
            self._call_hooks(FailedOver(service, from_instance))

    def retried(self, service: str, delay_s: float) -> None:
        if self._metrics is not None:
            self._metrics.retries.series(service)[0] += 1.0
        if self._hooks:
            self._call_hooks(Retried(service, delay_s))

    def retry_budget_exhausted(self, service: str) -> None:
        if self._metrics is not None:
            self._metrics.retry_budget_exhausted.series(service)[0] += 1.0
        if self._hooks:
            self._call_hooks(RetryBudgetExhausted(service))

    def breaker_created(self, service: str, instance: str) -> None:
        if self._metrics is not None:
            self._metrics.breaker_created(service, instance)
        if self._hooks:
            self._call_hooks(BreakerStateChanged(service, instance, BreakerState.CLOSED, transition=False))

    def breaker_changed(self, service: str, instance: str, state: BreakerState) -> None:
        if self._metrics is not None:
            self._metrics.breaker_state.series(service, instance)[0] = float(state)
            self._metrics.breaker_transitions.series(service, instance, state.label)[0] += 1.0
        if self._hooks:
            self._call_hooks(BreakerStateChanged(service, instance, state))

    def breaker_rejected(self, service: str, instance: str) -> None:
        if self._hooks:
            self._call_hooks(BreakerRejected(service, instance))

    def breaker_removed(self, service: str, instance: str) -> None:
        if self._metrics is not None:
            self._metrics.breaker_removed(service, instance)
        if self._hooks:
            self._call_hooks(BreakerRemoved(service, instance))

    def protected(self, service: str, outcome: ProtectionOutcome) -> None:
        if self._metrics is not None:
            self._metrics.protections.series(service, outcome.value)[0] += 1.0
        if self._hooks:
            self._call_hooks(DiscoveryProtected(service, outcome))

    def watch_changed(self, service: str, state: WatchState) -> None:
        if self._metrics is not None:
            self._metrics.watching.series(service)[0] = 1.0 if state is WatchState.WATCHING else 0.0
        if self._hooks:
            self._call_hooks(WatchStateChanged(service, state))

    def registration_attempted(self, service: str, outcome: RegistrationOutcome) -> None:
        if self._metrics is not None:
            self._metrics.registrations.series(service, outcome.value)[0] += 1.0
        if self._hooks:
            self._call_hooks(RegistrationAttempted(service, outcome))

    def registration_changed(self, service: str, state: RegistrationState) -> None:
        if self._metrics is not None:
            self._metrics.registered.series(service)[0] = 1.0 if state is RegistrationState.REGISTERED else 0.0
        if self._hooks:
            self._call_hooks(RegistrationStateChanged(service, state))

    def heartbeat_sent(self, service: str, outcome: HeartbeatOutcome) -> None:
        if self._metrics is not None:
            self._metrics.heartbeats.series(service, outcome.value)[0] += 1.0
        if self._hooks:
            self._call_hooks(HeartbeatSent(service, outcome))

    def _call_hooks(self, event: Event) -> None:
        for hook in self._hooks:
            try:
                hook(event)
            except Exception:
                log.exception("hook %r failed on %r", hook, event)

    def __repr__(self) -> str:
        return f"Reporter(metrics={self._metrics is not None}, hooks={len(self._hooks)})"
