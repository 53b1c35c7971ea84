"""The client's Prometheus metrics, and serving them from an aiohttp service.

The metrics are created once per ``CollectorRegistry`` (the default one unless another is passed) and
shared by every client and manager in the process that reports to that registry, so several clients
never raise ``Duplicated timeseries``. Expose them from a service with one line::

    app.mount("/metrics", prometheus_client.make_asgi_app())                  # Starlette
    app.router.add_get("/metrics", resilient_client.aiohttp_metrics_handler())  # aiohttp
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from resilient_client.hooks import DiscoveryResult, RequestOutcome

_lock = threading.Lock()
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, ClientMetrics] = weakref.WeakKeyDictionary()


class ClientMetrics:
    """The client's metric families on one registry (see :func:`client_metrics`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("resilient_client_requests_total", "Calls by outcome", ["service", "outcome"],
                                registry=registry)
        self.request_duration = Histogram("resilient_client_request_duration_seconds",
                                          "Duration of whole calls, failover and retries included", ["service"],
                                          registry=registry)
        self.failovers = Counter("resilient_client_failovers_total", "Moves from one instance to the next",
                                 ["service"], registry=registry)
        self.retries = Counter("resilient_client_retries_total",
                               "Further passes over the instances after a backoff wait", ["service"],
                               registry=registry)
        self.breaker_state = Gauge("resilient_client_circuit_breaker_state",
                                   "Circuit breaker state: 0 closed, 1 half-open, 2 open", ["service", "instance"],
                                   registry=registry)
        self.breaker_transitions = Counter("resilient_client_circuit_breaker_transitions_total",
                                           "Circuit breaker state changes, by the new state",
                                           ["service", "instance", "state"], registry=registry)
        self.discovery = Counter("resilient_client_discovery_total", "Discovery lookups by result",
                                 ["service", "result"], registry=registry)
        self.protections = Counter("resilient_client_discovery_protections_total",
                                   "Empty-set protection: started (an empty answer not believed; the last known "
                                   "instances kept), recovered, emptied", ["service", "outcome"], registry=registry)
        self.watching = Gauge("resilient_client_discovery_watching",
                              "1 while a blocking query keeps the service's discovery current, 0 while it falls "
                              "back to TTL polling or is not watched", ["service"], registry=registry)
        self.registrations = Counter("resilient_client_registrations_total", "Registration attempts",
                                     ["service", "outcome"], registry=registry)
        self.heartbeats = Counter("resilient_client_heartbeats_total", "Heartbeats by outcome",
                                  ["service", "outcome"], registry=registry)
        self.finished: dict[tuple[str, RequestOutcome], tuple[Counter, Histogram]] = {}
        """The label children a finished call updates, by (service, outcome): ``labels()`` costs about as
        much as the update, and every call makes one."""
        self.lookups: dict[tuple[str, DiscoveryResult], Counter] = {}
        """The discovery counter's children, by (service, result): every call looks up its instances."""
        self._breakers: dict[tuple[str, str], int] = {}
        """Breakers alive per (service, instance), over every client on this registry: the state gauge
        series goes when the last of them is removed."""
        self._breakers_lock = threading.Lock()

    def finished_series(self, service: str, outcome: RequestOutcome) -> tuple[Counter, Histogram]:
        """The children of a call of ``service`` that ended with ``outcome``, kept in :attr:`finished`."""
        series = self.finished.get((service, outcome))
        if series is None:
            series = self.finished[(service, outcome)] = (self.requests.labels(service, outcome.value),
                                                          self.request_duration.labels(service))
        return series

    def lookup_series(self, service: str, result: DiscoveryResult) -> Counter:
        """The child of a lookup of ``service`` with ``result``, kept in :attr:`lookups`."""
        series = self.lookups.get((service, result))
        if series is None:
            series = self.lookups[(service, result)] = self.discovery.labels(service, result.value)
        return series

    def breaker_created(self, service: str, instance: str) -> None:
        self.breaker_state.labels(service, instance).set(0)
        with self._breakers_lock:
            key = (service, instance)
            self._breakers[key] = self._breakers.get(key, 0) + 1

    def breaker_removed(self, service: str, instance: str) -> None:
        key = (service, instance)
        with self._breakers_lock:
            alive = self._breakers.get(key, 0) - 1
            if alive > 0:  # another client on this registry still has a breaker for it
                self._breakers[key] = alive
                return
            self._breakers.pop(key, None)
            self.breaker_state.remove(service, instance)


def client_metrics(registry: CollectorRegistry | None = None) -> ClientMetrics:
    """The client metrics on ``registry`` (default: the process-wide one), created on first use only."""
    target = REGISTRY if registry is None else registry
    with _lock:
        metrics = _by_registry.get(target)
        if metrics is None:
            metrics = _by_registry[target] = ClientMetrics(target)
        return metrics


def aiohttp_metrics_handler(
        registry: CollectorRegistry | None = None) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler exposing ``registry`` (default: the process-wide one) in the text format."""
    target = REGISTRY if registry is None else registry

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(target), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handler
