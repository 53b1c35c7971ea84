"""Counters, gauges and histograms kept as plain Python numbers, exposed through one prometheus_client
``Collector``.

The client's metrics live here rather than in prometheus_client's ``Counter``/``Gauge``/``Histogram``:
their ``inc``/``observe`` check observability, validate the amount and take one lock per value, several
Python calls per update, which was a quarter of the client's own path on every call. A :class:`Tallies`
collector holds families of labelled series; an update is an attribute update, without a lock where the
GIL already makes it atomic (see :data:`ATOMIC_UPDATES`; several threads may share a registry). A scrape
sees what prometheus_client's own metrics would produce: the same families in the same order, types, help
texts, label names, samples (``_total``, ``_bucket``/``_count``/``_sum``, ``_created`` unless
prometheus_client's created series are disabled) and series order (order of first use).
prometheus_client's multiprocess mode is not supported.
"""

from __future__ import annotations

import bisect
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Generic, TypeVar

from prometheus_client import metrics as _prometheus_metrics
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import INF, floatToGoString

DEFAULT_BUCKETS: tuple[float, ...] = (.005, .01, .025, .05, .075, .1, .25, .5, .75, 1.0, 2.5, 5.0, 7.5, 10.0, INF)
"""prometheus_client's ``Histogram.DEFAULT_BUCKETS``."""


ATOMIC_UPDATES: bool = getattr(sys, "_is_gil_enabled", lambda: True)()
"""Whether an update is safe without the lock: under the GIL (not on a free-threaded build), CPython
switches threads only at a call, a backward jump or a function's start, so an update with no call
inside (``self.value += 1.0`` on a float slot, ``counts[i] += 1.0`` on a list) is not interrupted, and
``collect`` copies a series in one step too. Taking the lock cost ≈ 1.9k instructions per update, 8 %
of a client call's own work. (``tests/resilient_client/test_tallies.py`` counts from several threads.)"""


def _created_series() -> bool:
    """Whether prometheus_client exposes ``_created`` samples (``PROMETHEUS_DISABLE_CREATED_SERIES``,
    ``disable_created_metrics()``): read at every scrape, as its own metrics do."""
    return bool(_prometheus_metrics._use_created)


class CounterSeries:
    """One labelled series of a counter."""

    __slots__ = ("_lock", "created", "value")

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self.value = 0.0
        self.created = time.time()

    if ATOMIC_UPDATES:
        def inc(self) -> None:
            self.value += 1.0
    else:  # pragma: no cover  (a free-threaded build)
        def inc(self) -> None:
            with self._lock:
                self.value += 1.0


class GaugeSeries:
    """One labelled series of a gauge."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = float(value)  # (one store: atomic as it is)


class HistogramSeries:
    """One labelled series of a histogram: per-bucket counts (not cumulative) and the sum."""

    __slots__ = ("_bounds", "_lock", "counts", "created", "sum")

    def __init__(self, lock: threading.Lock, bounds: Sequence[float]) -> None:
        self._lock = lock
        self._bounds = bounds
        self.counts = [0.0] * len(bounds)
        self.sum = 0.0
        self.created = time.time()

    if ATOMIC_UPDATES:
        def observe(self, amount: float) -> None:
            index = bisect.bisect_left(self._bounds, amount)  # the first bucket whose bound is >= amount (le)
            self.counts[index] += 1.0
            self.sum += amount
    else:  # pragma: no cover  (a free-threaded build)
        def observe(self, amount: float) -> None:
            index = bisect.bisect_left(self._bounds, amount)
            with self._lock:
                self.counts[index] += 1.0
                self.sum += amount


class CountAndObserve:
    """A counter series and a histogram series of one :class:`Tallies` updated together, in one call (and
    one taking of its lock where updates take it): ``record(amount)`` is ``counter.inc();
    histogram.observe(amount)``."""

    __slots__ = ("_bounds", "_counter", "_histogram", "_lock")

    def __init__(self, counter: CounterSeries, histogram: HistogramSeries) -> None:
        if counter._lock is not histogram._lock:
            raise ValueError("the counter and the histogram belong to different collectors")
        self._lock = counter._lock
        self._counter = counter
        self._histogram = histogram
        self._bounds = histogram._bounds

    if ATOMIC_UPDATES:
        def record(self, amount: float) -> None:
            index = bisect.bisect_left(self._bounds, amount)
            histogram = self._histogram
            self._counter.value += 1.0
            histogram.counts[index] += 1.0
            histogram.sum += amount
    else:  # pragma: no cover  (a free-threaded build)
        def record(self, amount: float) -> None:
            index = bisect.bisect_left(self._bounds, amount)
            histogram = self._histogram
            with self._lock:
                self._counter.value += 1.0
                histogram.counts[index] += 1.0
                histogram.sum += amount


S = TypeVar("S", CounterSeries, GaugeSeries, HistogramSeries)


class _Family(Generic[S]):
    """Labelled series by label values, in order of first use."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], lock: threading.Lock) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._lock = lock
        self._series: dict[tuple[str, ...], S] = {}

    def series(self, *labelvalues: str) -> S:
        """The series of ``labelvalues``, created on first use. Keep it where it is used often: looking
        it up costs about as much as the update."""
        found = self._series.get(labelvalues)
        if found is None:
            if len(labelvalues) != len(self.labelnames):
                raise ValueError(f"{self.name} takes the labels {self.labelnames}, not {labelvalues}")
            with self._lock:
                found = self._series.get(labelvalues)
                if found is None:
                    found = self._series[labelvalues] = self._new_series()
        return found

    def remove(self, *labelvalues: str) -> None:
        """Drop a series (no error if there is none); a later :meth:`series` starts it afresh."""
        with self._lock:
            self._series.pop(labelvalues, None)

    def _new_series(self) -> S:
        raise NotImplementedError

    def _rows(self) -> list[tuple[tuple[str, ...], S]]:
        with self._lock:
            return list(self._series.items())


class CounterFamily(_Family[CounterSeries]):
    """A labelled counter: ``series(*labelvalues).inc()``. ``name`` as given to prometheus_client's
    ``Counter`` (a ``_total`` suffix is dropped from the family's name, as it does)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], lock: threading.Lock) -> None:
        super().__init__(name.removesuffix("_total"), documentation, labelnames, lock)

    def _new_series(self) -> CounterSeries:
        return CounterSeries(self._lock)

    def describe(self) -> Metric:
        return CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self, *, created: bool) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._lock:
            rows = [(labels, series.value, series.created) for labels, series in self._series.items()]
        for labels, value, since in rows:
            family.add_metric(labels, value, created=since if created else None)
        return family


class GaugeFamily(_Family[GaugeSeries]):
    """A labelled gauge: ``series(*labelvalues).set(value)``."""

    def _new_series(self) -> GaugeSeries:
        return GaugeSeries()

    def describe(self) -> Metric:
        return GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self, *, created: bool) -> Metric:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, series in self._rows():
            family.add_metric(labels, series.value)
        return family


class HistogramFamily(_Family[HistogramSeries]):
    """A labelled histogram: ``series(*labelvalues).observe(amount)``; ``+Inf`` is added to ``buckets``."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], lock: threading.Lock,
                 buckets: Sequence[float] = DEFAULT_BUCKETS) -> None:
        super().__init__(name, documentation, labelnames, lock)
        bounds = [float(bound) for bound in buckets]
        if bounds != sorted(bounds):
            raise ValueError("buckets not in sorted order")
        if not bounds or bounds[-1] != INF:
            bounds.append(INF)
        self._bounds = tuple(bounds)
        self._les: tuple[str, ...] = tuple(floatToGoString(bound) for bound in bounds)  # type: ignore[no-untyped-call]

    def _new_series(self) -> HistogramSeries:
        return HistogramSeries(self._lock, self._bounds)

    def describe(self) -> Metric:
        return HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self, *, created: bool) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._lock:
            rows = [(labels, list(series.counts), series.sum, series.created)
                    for labels, series in self._series.items()]
        for labels, counts, total, since in rows:
            cumulative: list[tuple[str, float]] = []
            acc = 0.0
            for le, count in zip(self._les, counts, strict=True):
                acc += count
                cumulative.append((le, acc))
            family.add_metric(list(labels), cumulative, total if self._bounds[0] >= 0 else None)  # (as it does)
            if created:
                family.add_sample(self.name + "_created", dict(zip(self.labelnames, labels, strict=True)), since)
        return family


Family = CounterFamily | GaugeFamily | HistogramFamily
F = TypeVar("F", CounterFamily, GaugeFamily, HistogramFamily)


class Tallies(Collector):
    """Families collected together, in the order they were made; one lock guards making, removing and
    collecting series (and every update on a free-threaded build). Make the families, then
    ``registry.register(tallies)``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._families: list[Family] = []

    def counter(self, name: str, documentation: str, labelnames: Sequence[str]) -> CounterFamily:
        return self._add(CounterFamily(name, documentation, labelnames, self._lock))

    def gauge(self, name: str, documentation: str, labelnames: Sequence[str]) -> GaugeFamily:
        return self._add(GaugeFamily(name, documentation, labelnames, self._lock))

    def histogram(self, name: str, documentation: str, labelnames: Sequence[str],
                  buckets: Sequence[float] = DEFAULT_BUCKETS) -> HistogramFamily:
        return self._add(HistogramFamily(name, documentation, labelnames, self._lock, buckets))

    def _add(self, family: F) -> F:
        self._families.append(family)
        return family

    @property
    def families(self) -> tuple[Family, ...]:
        return tuple(self._families)

    def describe(self) -> Iterable[Metric]:
        return [family.describe() for family in self._families]

    def collect(self) -> Iterable[Metric]:
        created = _created_series()
        return [family.collect(created=created) for family in self._families]

    def __repr__(self) -> str:
        return f"Tallies({', '.join(family.name for family in self._families)})"

