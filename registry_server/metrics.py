"""The registry's Prometheus metrics (names and labels are part of the contract, SPEC §1)."""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from registry_server.model import HealthStatus, Instance, ServiceSummary
from registry_server.registry_observer import RegistryObserver

STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
"""The ``method`` label's values besides ``other``: a label copied from a request takes a fixed set of values,
or made-up methods would grow ``/metrics`` without bound."""

SERIES_GRACE_S = 300.0
"""A service's own series go once this replica has not seen it with an instance for this long: scrapes
(every 15 to 60 s) see its last counts, and names that had their instances long ago cost ``/metrics``
nothing while the store still retains them."""


class RegistryMetrics(RegistryObserver):
    """Every registry metric, created on one explicit :class:`CollectorRegistry`; counts what the registry
    announces. The standard ``process_*`` and ``python_*`` collectors sit on the same registry."""

    def __init__(self, registry: CollectorRegistry, *, clock: Callable[[], float] = time.monotonic) -> None:
        """``clock``: monotonic seconds, for :data:`SERIES_GRACE_S`."""
        self.registry = registry
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        """Each service with series of its own, and when it was last seen with an instance (oldest first)."""
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self.registrations = Counter("registry_registrations_total", "Registrations, new or renewed",
                                     ["service"], registry=registry)
        self.deregistrations = Counter("registry_deregistrations_total", "Deregistrations", ["service"],
                                       registry=registry)
        self.expirations = Counter("registry_expirations_total",
                                   "Instances removed because their lease ran out (each counted once "
                                   "across replicas)", ["service"], registry=registry)
        self.heartbeats = Counter("registry_heartbeats_total", "Heartbeats accepted", ["service"],
                                  registry=registry)
        self.unknown_heartbeats = Counter("registry_unknown_heartbeats_total",
                                          "Heartbeats for unknown or expired instances", registry=registry)
        self.instances = Gauge("registry_instances", "Registered instances, refreshed by each sweep",
                               ["service", "status"], registry=registry)
        self.http_requests = Counter("registry_http_requests_total", "HTTP requests",
                                     ["method", "route", "status"], registry=registry)
        self.http_duration = Histogram("registry_http_request_duration_seconds", "HTTP request duration",
                                       ["method", "route"], registry=registry,
                                       buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                1.0, 2.5, 5.0))
        # Long polls and change streams last as long as their wait, by design: a histogram of their own keeps
        # them out of the request latencies above.
        self.watch_duration = Histogram("registry_watch_duration_seconds",
                                        "How long blocking discovery queries and change streams stayed open",
                                        ["kind"], registry=registry,
                                        buckets=(0.1, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
                                                 3600.0))
        self.watchers = Gauge("registry_watchers", "Open blocking discovery queries and change streams",
                              ["kind"], registry=registry)
        self.watch_wakeups = Counter("registry_watch_wakeups_total",
                                     "Blocking discovery queries answered because the service changed",
                                     registry=registry)
        self.events_sent = Counter("registry_events_sent_total", "Change-stream events sent to consumers",
                                   ["type"], registry=registry)
        self.protection_active = Gauge("registry_expiry_protection_active",
                                       "1 while a store outage pauses expiry and protects leases", registry=registry)
        self.lease_extensions = Counter("registry_lease_extensions_total",
                                        "Leases extended after store outages", registry=registry)
        self.requests_shed = Counter("registry_requests_shed_total",
                                     "Requests refused with 503 + Retry-After because the registry was overloaded",
                                     registry=registry)
        self.heartbeats_paced = Counter("registry_heartbeats_paced_total",
                                        "Heartbeats served with Retry-After (come back later) because the replica "
                                        "spaces heartbeats", registry=registry)
        self.heartbeat_spacing = Gauge("registry_heartbeat_spacing_seconds",
                                       "How far apart a saturated replica tells instances to send heartbeats "
                                       "(0: it does not)", registry=registry)
        self.store_errors = Counter("registry_store_errors_total", "Failed store operations", ["operation"],
                                    registry=registry)

        self.health_checks = Counter("registry_health_checks_total", "Active health checks run by this replica",
                                     ["service", "result"], registry=registry)
        self.health_check_duration = Histogram("registry_health_check_duration_seconds",
                                               "Duration of one active health check", registry=registry,
                                               buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                                                        5.0, 10.0))
        self.health_transitions = Counter("registry_health_check_transitions_total",
                                          "Instances whose checks moved them to critical or back to passing",
                                          ["service", "to"], registry=registry)
        self.health_deregistrations = Counter("registry_health_check_deregistrations_total",
                                              "Instances removed for having been critical too long (not "
                                              "counted as expirations)", ["service"], registry=registry)

        self._children: dict[tuple[Any, ...], Any] = {}
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._per_service: dict[int, tuple[Counter, tuple[tuple[str, ...], ...]]] = {
            id(metric): (metric, rest) for metric, rest in (
                (self.registrations, ((),)), (self.deregistrations, ((),)), (self.expirations, ((),)),
                (self.heartbeats, ((),)), (self.health_checks, (("passed",), ("failed",))),
                (self.health_transitions, (("critical",), ("passing",))), (self.health_deregistrations, ((),)))}
        """The metrics labelled by service first, with the values of their other labels."""

    def _child(self, metric: Counter | Histogram, *labels: str) -> Any:
        """The labelled child, cached: ``labels()`` costs a lock and a dict build on every call."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
            if key[0] in self._per_service:
                self._seen_now(labels[0])
        return child

    def _seen_now(self, service: str) -> None:
        self._seen[service] = self._clock()
        self._seen.move_to_end(service)

    def _forget(self, service: str) -> None:
        """Remove every series of ``service`` (they come back at 0 if it does)."""
        self._seen.pop(service, None)
        for metric, rest in self._per_service.values():
            for others in rest:
                labels = (service, *others)
                self._children.pop((id(metric), *labels), None)
                with contextlib.suppress(KeyError):  # never counted in this replica
                    metric.remove(*labels)

    def registered(self, instance: Instance, created: bool) -> None:
        name = instance.name
        for counter in (self.deregistrations, self.expirations, self.heartbeats):
            self._child(counter, name)  # present at 0 from the start: rate() and increase() see the first event
        self._child(self.registrations, name).inc()

    def deregistered(self, instance: Instance) -> None:
        self._child(self.deregistrations, instance.name).inc()
        self._seen_now(instance.name)

    def expired(self, service: str, count: int = 1) -> None:
        self._child(self.expirations, service).inc(count)
        self._seen_now(service)

    def heartbeat(self, instance: Instance, status_changed: bool) -> None:
        self._child(self.heartbeats, instance.name).inc()

    def unknown_heartbeat(self, instance_id: str) -> None:
        self.unknown_heartbeats.inc()

    def store_error(self, operation: str) -> None:
        self.store_errors.labels(operation).inc()

    def inventory(self, summaries: list[ServiceSummary]) -> None:
        # Runs on the event loop like the /metrics handler, so a scrape never sees the cleared gauge.
        self.instances.clear()
        for summary in summaries:
            self._seen_now(summary.name)
            for status, count in summary.statuses.items():
                self.instances.labels(summary.name, status).set(count)
        # The least recently seen first: the work is the services seen and those forgotten, never the others.
        horizon = self._clock() - SERIES_GRACE_S
        while self._seen:
            service, seen = next(iter(self._seen.items()))
            if seen > horizon:
                break
            self._forget(service)

    def health_checked(self, service: str, passed: bool, seconds: float) -> None:
        if (id(self.health_transitions), service, "critical") not in self._children:  # present at 0 from the start
            for to in ("critical", "passing"):
                self._child(self.health_transitions, service, to)
            self._child(self.health_deregistrations, service)
        self._child(self.health_checks, service, "passed" if passed else "failed").inc()
        self.health_check_duration.observe(seconds)

    def health_transition(self, instance: Instance, to: HealthStatus) -> None:
        self._child(self.health_transitions, instance.name, to.value).inc()

    def health_deregistered(self, instance: Instance) -> None:
        self._child(self.health_deregistrations, instance.name).inc()

    def dropped(self, service: str) -> None:
        """Its series go, if they did not already (:data:`SERIES_GRACE_S`)."""
        if service in self._seen:  # else it has none here: thousands dropped at once cost nothing each
            self._forget(service)

    def protection(self, active: bool, extended: int = 0) -> None:
        self.protection_active.set(1 if active else 0)
        self.lease_extensions.inc(extended)

    def watcher_count(self, kind: str, count: int) -> None:
        self.watchers.labels(kind).set(count)

    def count_undecodable(self, count: Callable[[], int]) -> None:
        """Expose ``count()``, the store's own count of skipped undecodable documents, as a counter."""
        self.registry.register(_UndecodableDocuments(count))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request; ``route`` is a route template or ``unmatched``, never a raw path."""
        if method not in STANDARD_METHODS:
            method = "other"
        children = self._request_children.get((method, route, status))
        if children is None:
            children = self._request_children[method, route, status] = (
                self.http_requests.labels(method, route, str(status)), self.http_duration.labels(method, route))
        children[0].inc()
        children[1].observe(seconds)

    def observe_watch(self, kind: str, method: str, route: str, status: int, seconds: float) -> None:
        """A watch (``kind``: ``blocking`` or ``stream``) is counted as a request, timed as a watch."""
        if method not in STANDARD_METHODS:
            method = "other"
        self._child(self.http_requests, method, route, str(status)).inc()
        self._child(self.watch_duration, kind).observe(seconds)

class _UndecodableDocuments(Collector):
    def __init__(self, count: Callable[[], int]) -> None:
        self._count = count

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily("registry_undecodable_documents",
                                  "Instances and events left out of answers because their stored document "
                                  "could not be decoded (each one also logged once)", value=self._count())
