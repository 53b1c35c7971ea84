"""Prometheus metrics of the client (SPEC §2 names and labels), fed by the core's events.

The metrics are created once per ``CollectorRegistry`` (the default one unless another is passed) and
shared by every client and manager in the process, so several clients never raise
``Duplicated timeseries``. Expose them from a service with one line::

    app.mount("/metrics", prometheus_client.make_asgi_app())                  # Starlette
    app.router.add_get("/metrics", resilient_client.aiohttp_metrics_handler)  # aiohttp
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from resilient_client.events import (
    BreakerRemoved,
    BreakerStateChanged,
    DiscoveryLookedUp,
    DiscoveryProtected,
    DiscoveryResult,
    Event,
    FailedOver,
    HeartbeatSent,
    RegistrationAttempted,
    RequestFinished,
    RequestOutcome,
    Retried,
    WatchState,
    WatchStateChanged,
)
from resilient_client.tallies import CountAndObserve, CounterSeries, HistogramSeries, Tallies

_lock = threading.Lock()
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, ClientMetrics] = weakref.WeakKeyDictionary()


class ClientMetrics:
    """The metric families on one registry (one :class:`~resilient_client.tallies.Tallies` collector), and
    the event subscriber that updates them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        tallies = self.tallies = Tallies()  # plain Python numbers: an update costs a fraction of prometheus_client's
        self.requests = tallies.counter("resilient_client_requests_total", "Calls by outcome", ["service", "outcome"])
        self.request_duration = tallies.histogram("resilient_client_request_duration_seconds",
                                                  "Duration of whole calls, failover and retries included",
                                                  ["service"])
        self.failovers = tallies.counter("resilient_client_failovers_total", "Moves from one instance to the next",
                                         ["service"])
        self.retries = tallies.counter("resilient_client_retries_total",
                                       "Further passes over the instances after a backoff wait", ["service"])
        self.breaker_state = tallies.gauge("resilient_client_circuit_breaker_state",
                                           "Circuit breaker state: 0 closed, 1 half-open, 2 open",
                                           ["service", "instance"])
        self.breaker_transitions = tallies.counter("resilient_client_circuit_breaker_transitions_total",
                                                   "Circuit breaker state changes, by the new state",
                                                   ["service", "instance", "state"])
        self.discovery = tallies.counter("resilient_client_discovery_total", "Discovery lookups by result",
                                         ["service", "result"])
        self.protections = tallies.counter("resilient_client_discovery_protections_total",
                                           "Empty-set protection: started (an empty answer not believed; the last "
                                           "known instances kept), recovered, emptied", ["service", "outcome"])
        self.watching = tallies.gauge("resilient_client_discovery_watching",
                                      "1 while a blocking query keeps the service's discovery current, 0 while it "
                                      "falls back to TTL polling or is not watched", ["service"])
        self.registrations = tallies.counter("resilient_client_registrations_total", "Registration attempts",
                                             ["service", "outcome"])
        self.heartbeats = tallies.counter("resilient_client_heartbeats_total", "Heartbeats by outcome",
                                          ["service", "outcome"])
        registry.register(tallies)

        self._finished: dict[tuple[str, str], tuple[CounterSeries, HistogramSeries]] = {}
        self._lookups: dict[tuple[str, str], CounterSeries] = {}
        self._breakers: dict[tuple[str, str], int] = {}
        """Breakers alive per (service, instance), over every client on this registry: the state gauge
        series goes when the last of them is removed."""
        self._handlers: dict[type, Callable[[Any], None]] = {
            RequestFinished: self._request_finished, FailedOver: self._failed_over, Retried: self._retried,
            BreakerStateChanged: self._breaker_state_changed, BreakerRemoved: self._breaker_removed,
            DiscoveryLookedUp: self._looked_up,
            DiscoveryProtected: self._protected, WatchStateChanged: self._watch_state_changed,
            RegistrationAttempted: self._registration_attempted, HeartbeatSent: self._heartbeat_sent}

    def __call__(self, event: Event) -> None:
        """Subscriber for :class:`~resilient_client.events.EventBus`."""
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def handler_for(self, event_type: type) -> Callable[[Any], None] | None:
        """What handles ``event_type`` (the bus calls it directly, skipping :meth:`__call__`)."""
        return self._handlers.get(event_type)

    def recorder(self, event_type: type, *fixed: object) -> Callable[..., None] | None:
        """For :meth:`EventBus.channel <resilient_client.events.EventBus.channel>`: what handling
        ``event_type(*fixed, *rest)`` does, as a callable of ``rest`` bound to its series (no event built,
        no lookup per event); ``None`` for the events handled only as events."""
        if event_type is RequestFinished and len(fixed) == 2:
            service, outcome = fixed
            assert isinstance(service, str) and isinstance(outcome, RequestOutcome)
            return CountAndObserve(self.requests.series(service, outcome.value),
                                   self.request_duration.series(service)).record
        if event_type is DiscoveryLookedUp and len(fixed) == 2:
            service, result = fixed
            assert isinstance(service, str) and isinstance(result, DiscoveryResult)
            return self.discovery.series(service, result.value).inc
        return None

    def _request_finished(self, event: RequestFinished) -> None:
        # once per call: the series are kept by (service, outcome) (outcomes are str enums)
        key = (event.service, event.outcome)
        series = self._finished.get(key)
        if series is None:
            series = self._finished[key] = (self.requests.series(event.service, event.outcome.value),
                                            self.request_duration.series(event.service))
        series[0].inc()
        series[1].observe(event.duration_s)

    def _failed_over(self, event: FailedOver) -> None:
        self.failovers.series(event.service).inc()

    def _retried(self, event: Retried) -> None:
        self.retries.series(event.service).inc()

    def _breaker_state_changed(self, event: BreakerStateChanged) -> None:
        self.breaker_state.series(event.service, event.instance).set(int(event.state))
        if event.transition:
            self.breaker_transitions.series(event.service, event.instance, event.state.label).inc()
        else:  # a breaker was created
            key = (event.service, event.instance)
            self._breakers[key] = self._breakers.get(key, 0) + 1

    def _breaker_removed(self, event: BreakerRemoved) -> None:
        key = (event.service, event.instance)
        alive = self._breakers.get(key, 0) - 1
        if alive > 0:  # another client on this registry still has a breaker for it
            self._breakers[key] = alive
            return
        self._breakers.pop(key, None)
        self.breaker_state.remove(*key)

    def _looked_up(self, event: DiscoveryLookedUp) -> None:
        key = (event.service, event.result)
        series = self._lookups.get(key)
        if series is None:
            series = self._lookups[key] = self.discovery.series(event.service, event.result.value)
        series.inc()

    def _protected(self, event: DiscoveryProtected) -> None:
        self.protections.series(event.service, event.outcome.value).inc()

    def _watch_state_changed(self, event: WatchStateChanged) -> None:
        self.watching.series(event.service).set(1 if event.state is WatchState.WATCHING else 0)

    def _registration_attempted(self, event: RegistrationAttempted) -> None:
        self.registrations.series(event.service, event.outcome.value).inc()

    def _heartbeat_sent(self, event: HeartbeatSent) -> None:
        self.heartbeats.series(event.service, event.outcome.value).inc()


def client_metrics(registry: CollectorRegistry | None = None) -> ClientMetrics:
    """The client metrics on ``registry`` (default: the process-wide one), created on first use only."""
    target = REGISTRY if registry is None else registry
    with _lock:
        metrics = _by_registry.get(target)
        if metrics is None:
            metrics = _by_registry[target] = ClientMetrics(target)
        return metrics
