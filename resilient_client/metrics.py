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

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from resilient_client.events import (
    BreakerStateChanged,
    DiscoveryLookedUp,
    Event,
    FailedOver,
    HeartbeatSent,
    RegistrationAttempted,
    RequestFinished,
    Retried,
)

_lock = threading.Lock()
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, ClientMetrics] = weakref.WeakKeyDictionary()


class ClientMetrics:
    """The metric objects on one registry, and the event subscriber that updates them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("resilient_client_requests_total", "Calls by outcome",
                                ["service", "outcome"], registry=registry)
        self.request_duration = Histogram("resilient_client_request_duration_seconds",
                                          "Duration of whole calls, failover and retries included",
                                          ["service"], registry=registry)
        self.failovers = Counter("resilient_client_failovers_total", "Moves from one instance to the next",
                                 ["service"], registry=registry)
        self.retries = Counter("resilient_client_retries_total",
                               "Further passes over the instances after a backoff wait",
                               ["service"], registry=registry)
        self.breaker_state = Gauge("resilient_client_circuit_breaker_state",
                                   "Circuit breaker state: 0 closed, 1 half-open, 2 open",
                                   ["service", "instance"], registry=registry)
        self.breaker_transitions = Counter("resilient_client_circuit_breaker_transitions_total",
                                           "Circuit breaker state changes, by the new state",
                                           ["service", "instance", "state"], registry=registry)
        self.discovery = Counter("resilient_client_discovery_total", "Discovery lookups by result",
                                 ["service", "result"], registry=registry)
        self.registrations = Counter("resilient_client_registrations_total", "Registration attempts",
                                     ["service", "outcome"], registry=registry)
        self.heartbeats = Counter("resilient_client_heartbeats_total", "Heartbeats by outcome",
                                  ["service", "outcome"], registry=registry)

    def __call__(self, event: Event) -> None:
        """Subscriber for :class:`~resilient_client.events.EventBus`."""
        match event:
            case RequestFinished(service, outcome, duration_s):
                self.requests.labels(service, outcome.value).inc()
                self.request_duration.labels(service).observe(duration_s)
            case FailedOver(service, _):
                self.failovers.labels(service).inc()
            case Retried(service, _):
                self.retries.labels(service).inc()
            case BreakerStateChanged(service, instance, state, transition):
                self.breaker_state.labels(service, instance).set(int(state))
                if transition:
                    self.breaker_transitions.labels(service, instance, state.label).inc()
            case DiscoveryLookedUp(service, result):
                self.discovery.labels(service, result.value).inc()
            case RegistrationAttempted(service, outcome):
                self.registrations.labels(service, outcome.value).inc()
            case HeartbeatSent(service, outcome):
                self.heartbeats.labels(service, outcome.value).inc()
            case _:
                pass


def client_metrics(registry: CollectorRegistry | None = None) -> ClientMetrics:
    """The client metrics on ``registry`` (default: the process-wide one), created on first use only."""
    target = REGISTRY if registry is None else registry
    with _lock:
        metrics = _by_registry.get(target)
        if metrics is None:
            metrics = _by_registry[target] = ClientMetrics(target)
        return metrics
