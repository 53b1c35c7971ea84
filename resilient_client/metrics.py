"""The client's Prometheus metrics, and serving them from an aiohttp service.

The metrics are created once per ``CollectorRegistry`` (the default one unless another is passed) and
shared by every client and manager in the process that reports to that registry, so several clients
never raise ``Duplicated timeseries``. Expose them from a service with one line::

    app.mount("/metrics", prometheus_client.make_asgi_app())                    # Starlette
    app.router.add_get("/metrics", resilient_client.aiohttp_metrics_handler())  # aiohttp

They are kept as plain numbers behind one prometheus_client collector, which builds the families at each
scrape (with ``_created`` samples, as prometheus_client's own counters and histograms have by default).
Every call updates three series: through prometheus_client's own metrics, which take a lock and several
calls per update, that would be the largest part of the client's own work on a call.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Sequence
from enum import Enum

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from resilient_client.hooks import DiscoveryResult, RequestOutcome

DURATION_BUCKETS: tuple[float, ...] = (.005, .01, .025, .05, .075, .1, .25, .5, .75, 1.0, 2.5, 5.0, 7.5, 10.0,
                                       float("inf"))
"""prometheus_client's default histogram buckets."""

Series = list[float]
"""One labelled series: ``[value, created]`` of a counter, ``[value]`` of a gauge, ``[count per bucket...,
sum, created]`` of a histogram (counts per bucket, not cumulative). Updated in place, without a lock: under
the GIL an update with no call inside it (``series[0] += 1.0``) is not interrupted."""

SUM = -2
"""Where a histogram series keeps its sum."""


class Kind(Enum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


class Family:
    """One metric family: its series by label values, in order of first use."""

    def __init__(self, kind: Kind, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.kind = kind
        self.name = name.removesuffix("_total") if kind is Kind.COUNTER else name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._series: dict[tuple[str, ...], Series] = {}
        self._lock = threading.Lock()

    def series(self, *labelvalues: str) -> Series:
        """The series of ``labelvalues``, made on first use. Keep it where it is used often."""
        found = self._series.get(labelvalues)
        if found is None:
            if len(labelvalues) != len(self.labelnames):
                raise ValueError(f"{self.name} takes the labels {self.labelnames}, not {labelvalues}")
            with self._lock:
                found = self._series.setdefault(labelvalues, self._new())
        return found

    def remove(self, *labelvalues: str) -> None:
        """Drop a series (no error if there is none); a later :meth:`series` starts it afresh."""
        with self._lock:
            self._series.pop(labelvalues, None)

    def _new(self) -> Series:
        if self.kind is Kind.GAUGE:
            return [0.0]
        zeros = [0.0] * (len(DURATION_BUCKETS) + 1) if self.kind is Kind.HISTOGRAM else [0.0]
        return [*zeros, time.time()]

    def collect(self) -> Metric:
        with self._lock:
            rows = [(labels, list(series)) for labels, series in self._series.items()]
        if self.kind is Kind.GAUGE:
            gauge = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
            for labels, (value,) in rows:
                gauge.add_metric(labels, value)
            return gauge
        if self.kind is Kind.COUNTER:
            counter = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
            for labels, (value, created) in rows:
                counter.add_metric(labels, value, created=created)
            return counter
        histogram = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, series in rows:
            cumulative, total = [], 0.0
            for bound, count in zip(DURATION_BUCKETS, series, strict=False):
                total += count
                cumulative.append((floatToGoString(bound), total))  # type: ignore[no-untyped-call]
            histogram.add_metric(list(labels), cumulative, series[SUM])
            histogram.add_sample(self.name + "_created", dict(zip(self.labelnames, labels, strict=True)), series[-1])
        return histogram


class ClientMetrics(Collector):
    """The client's metric families on one registry (see :func:`client_metrics`)."""

    def __init__(self) -> None:
        self.requests = Family(Kind.COUNTER, "resilient_client_requests_total", "Calls by outcome",
                               ["service", "outcome"])
        self.request_duration = Family(Kind.HISTOGRAM, "resilient_client_request_duration_seconds",
                                       "Duration of whole calls, failover and retries included", ["service"])
        self.failovers = Family(Kind.COUNTER, "resilient_client_failovers_total",
                                "Moves from one instance to the next", ["service"])
        self.retries = Family(Kind.COUNTER, "resilient_client_retries_total",
                              "Further passes over the instances after a backoff wait", ["service"])
        self.retry_budget_exhausted = Family(Kind.COUNTER, "resilient_client_retry_budget_exhausted_total",
                                             "Calls ended before a retry or failover because the retry budget "
                                             "had none left", ["service"])
        self.breaker_state = Family(Kind.GAUGE, "resilient_client_circuit_breaker_state",
                                    "Circuit breaker state: 0 closed, 1 half-open, 2 open", ["service", "instance"])
        self.breaker_transitions = Family(Kind.COUNTER, "resilient_client_circuit_breaker_transitions_total",
                                          "Circuit breaker state changes, by the new state",
                                          ["service", "instance", "state"])
        self.discovery = Family(Kind.COUNTER, "resilient_client_discovery_total", "Discovery lookups by result",
                                ["service", "result"])
        self.protections = Family(Kind.COUNTER, "resilient_client_discovery_protections_total",
                                  "Empty-set protection: started (an empty answer not believed; the last known "
                                  "instances kept), recovered, emptied", ["service", "outcome"])
        self.watching = Family(Kind.GAUGE, "resilient_client_discovery_watching",
                               "1 while a blocking query keeps the service's discovery current, 0 while it falls "
                               "back to TTL polling or is not watched", ["service"])
        self.registrations = Family(Kind.COUNTER, "resilient_client_registrations_total", "Registration attempts",
                                    ["service", "outcome"])
        self.heartbeats = Family(Kind.COUNTER, "resilient_client_heartbeats_total", "Heartbeats by outcome",
                                 ["service", "outcome"])
        self.registered = Family(Kind.GAUGE, "resilient_client_registered",
                                 "1 while the registry holds this service's registration, 0 while registering "
                                 "(registry unreachable at start-up, or it forgot the instance) or deregistered",
                                 ["service"])
        self.families = (self.requests, self.request_duration, self.failovers, self.retries,
                         self.retry_budget_exhausted, self.breaker_state,
                         self.breaker_transitions, self.discovery, self.protections, self.watching,
                         self.registrations, self.heartbeats, self.registered)
        self.finished: dict[tuple[str, RequestOutcome], tuple[Series, Series]] = {}
        """The series a finished call updates, by (service, outcome): every call ends with one."""
        self.lookups: dict[tuple[str, DiscoveryResult], Series] = {}
        """The discovery counter's series, by (service, result): every call looks up its instances."""
        self._breakers: dict[tuple[str, str], int] = {}
        """Breakers alive per (service, instance), over every client on this registry: the state gauge
        series goes when the last of them is removed."""
        self._breakers_lock = threading.Lock()

    def finished_series(self, service: str, outcome: RequestOutcome) -> tuple[Series, Series]:
        """The counter and histogram series of a call of ``service`` that ended with ``outcome``, kept in
        :attr:`finished`. A duration goes to the first bucket whose bound is at least it (``le``), found with
        ``bisect_left(DURATION_BUCKETS, duration_s)``, and to ``series[SUM]``."""
        series = self.finished[(service, outcome)] = (self.requests.series(service, outcome.value),
                                                      self.request_duration.series(service))
        return series

    def lookup_series(self, service: str, result: DiscoveryResult) -> Series:
        """The discovery counter's series of ``service`` and ``result``, kept in :attr:`lookups`."""
        series = self.lookups[(service, result)] = self.discovery.series(service, result.value)
        return series

    def breaker_created(self, service: str, instance: str) -> None:
        self.breaker_state.series(service, instance)[0] = 0.0
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

    def describe(self) -> Iterable[Metric]:
        """What the registry checks for duplicate names when this collector is registered."""
        return self.collect()

    def collect(self) -> Iterable[Metric]:
        return [family.collect() for family in self.families]


_lock = threading.Lock()
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, ClientMetrics] = weakref.WeakKeyDictionary()


def client_metrics(registry: CollectorRegistry | None = None) -> ClientMetrics:
    """The client metrics on ``registry`` (default: the process-wide one), created on first use only."""
    target = REGISTRY if registry is None else registry
    with _lock:
        metrics = _by_registry.get(target)
        if metrics is None:
            metrics = _by_registry[target] = ClientMetrics()
            target.register(metrics)
        return metrics


def aiohttp_metrics_handler(
        registry: CollectorRegistry | None = None) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler exposing ``registry`` (default: the process-wide one) in the text format."""
    target = REGISTRY if registry is None else registry

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(target), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handler
