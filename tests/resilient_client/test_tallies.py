import re
import sys
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from resilient_client import client_metrics
from resilient_client.events import (
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
    ProtectionOutcome,
    RegistrationAttempted,
    RegistrationOutcome,
    RequestFinished,
    RequestOutcome,
    Retried,
    WatchState,
    WatchStateChanged,
)
from resilient_client.tallies import CountAndObserve, CounterFamily, GaugeFamily, HistogramFamily, Tallies

SPEC_FAMILIES = [  # SPEC §2 and the README: (name as exposed, type, label names)
    ("resilient_client_requests", "counter", ("service", "outcome")),
    ("resilient_client_request_duration_seconds", "histogram", ("service",)),
    ("resilient_client_failovers", "counter", ("service",)),
    ("resilient_client_retries", "counter", ("service",)),
    ("resilient_client_circuit_breaker_state", "gauge", ("service", "instance")),
    ("resilient_client_circuit_breaker_transitions", "counter", ("service", "instance", "state")),
    ("resilient_client_discovery", "counter", ("service", "result")),
    ("resilient_client_discovery_protections", "counter", ("service", "outcome")),
    ("resilient_client_discovery_watching", "gauge", ("service",)),
    ("resilient_client_registrations", "counter", ("service", "outcome")),
    ("resilient_client_heartbeats", "counter", ("service", "outcome")),
]

EVENTS: list[Event] = [
    RequestFinished("User", RequestOutcome.SUCCESS, 0.003),
    RequestFinished("User", RequestOutcome.SUCCESS, 0.005),  # on a bucket bound: counted in that bucket
    RequestFinished("Auth", RequestOutcome.FAILURE, 12.0),  # above the last finite bound: +Inf only
    RequestFinished("User", RequestOutcome.NO_INSTANCES, 0.25),
    RequestFinished("User", RequestOutcome.CIRCUIT_OPEN, 0.0),
    FailedOver("User", "h:1"),
    Retried("User", 0.1),
    BreakerStateChanged("User", "h:1", BreakerState.CLOSED, transition=False),
    BreakerStateChanged("User", "h:2", BreakerState.CLOSED, transition=False),
    BreakerStateChanged("User", "h:1", BreakerState.OPEN),
    BreakerStateChanged("User", "h:1", BreakerState.HALF_OPEN),
    BreakerRemoved("User", "h:2"),
    DiscoveryLookedUp("User", DiscoveryResult.HIT),
    DiscoveryLookedUp("User", DiscoveryResult.HIT),
    DiscoveryLookedUp("*", DiscoveryResult.MISS),
    DiscoveryProtected("User", ProtectionOutcome.STARTED),
    WatchStateChanged("User", WatchState.WATCHING),
    RegistrationAttempted("User", RegistrationOutcome.OK),
    HeartbeatSent("User", HeartbeatOutcome.REREGISTERED),
]


def reference(registry: CollectorRegistry, tallies: Tallies) -> dict[str, Counter | Gauge | Histogram]:
    """prometheus_client's own metrics with the names, help texts and labels of ``tallies``' families."""
    kinds = {CounterFamily: Counter, GaugeFamily: Gauge, HistogramFamily: Histogram}
    return {family.name: kinds[type(family)](family.name, family.documentation, family.labelnames,
                                             registry=registry)
            for family in tallies.families}


def replay_on_reference(events: list[Event], ref: dict[str, Counter | Gauge | Histogram]) -> None:
    """What the metrics module did with prometheus_client's metrics before the tallies."""
    alive: dict[tuple[str, str], int] = {}
    for event in events:
        match event:
            case RequestFinished(service, outcome, duration_s):
                ref["resilient_client_requests"].labels(service, outcome.value).inc()
                ref["resilient_client_request_duration_seconds"].labels(service).observe(duration_s)
            case FailedOver(service, _):
                ref["resilient_client_failovers"].labels(service).inc()
            case Retried(service, _):
                ref["resilient_client_retries"].labels(service).inc()
            case BreakerStateChanged(service, instance, state, transition):
                ref["resilient_client_circuit_breaker_state"].labels(service, instance).set(int(state))
                if transition:
                    ref["resilient_client_circuit_breaker_transitions"].labels(service, instance, state.label).inc()
                else:
                    alive[(service, instance)] = alive.get((service, instance), 0) + 1
            case BreakerRemoved(service, instance):
                alive[(service, instance)] -= 1
                if not alive[(service, instance)]:
                    ref["resilient_client_circuit_breaker_state"].remove(service, instance)
            case DiscoveryLookedUp(service, result):
                ref["resilient_client_discovery"].labels(service, result.value).inc()
            case DiscoveryProtected(service, outcome):
                ref["resilient_client_discovery_protections"].labels(service, outcome.value).inc()
            case WatchStateChanged(service, state):
                ref["resilient_client_discovery_watching"].labels(service).set(int(state is WatchState.WATCHING))
            case RegistrationAttempted(service, outcome):
                ref["resilient_client_registrations"].labels(service, outcome.value).inc()
            case HeartbeatSent(service, outcome):
                ref["resilient_client_heartbeats"].labels(service, outcome.value).inc()


def without_created_values(text: str) -> str:
    """Creation timestamps differ between two sets of metrics made a moment apart."""
    return re.sub(r"(_created(\{[^}]*\})?) \S+", r"\1 <t>", text)


def both_expositions(events: list[Event]) -> tuple[list[str], list[str]]:
    registry, ref_registry = CollectorRegistry(), CollectorRegistry()
    metrics = client_metrics(registry)
    for event in events:
        metrics(event)
    replay_on_reference(events, reference(ref_registry, metrics.tallies))
    return ([without_created_values(generate(registry).decode())
             for generate in (generate_latest, generate_openmetrics)],
            [without_created_values(generate(ref_registry).decode())
             for generate in (generate_latest, generate_openmetrics)])


def test_the_client_metrics_are_the_spec_families_with_their_types_and_labels() -> None:
    registry = CollectorRegistry()
    metrics = client_metrics(registry)
    for event in EVENTS:
        metrics(event)
    seen = []
    for family in registry.collect():
        labelnames = {name for sample in family.samples for name in sample.labels if name != "le"}
        seen.append((family.name, family.type, labelnames))
    assert seen == [(name, kind, set(labels)) for name, kind, labels in SPEC_FAMILIES]


def test_the_exposition_equals_prometheus_client_metrics_fed_the_same_events() -> None:
    ours, theirs = both_expositions(EVENTS)
    assert ours == theirs  # text format and OpenMetrics: help, type, samples, labels, order


def test_without_created_series_neither_exposes_created_samples() -> None:
    prometheus_metrics.disable_created_metrics()
    try:
        ours, theirs = both_expositions(EVENTS)
    finally:
        prometheus_metrics.enable_created_metrics()
    assert ours == theirs
    assert "_created" not in ours[0]


@given(st.lists(st.tuples(st.sampled_from(["User", "Auth"]),
                          st.floats(min_value=-1, max_value=20, allow_nan=False)), max_size=40))
def test_histogram_buckets_and_sums_match_prometheus_client(observations: list[tuple[str, float]]) -> None:
    ours, theirs = both_expositions([RequestFinished(service, RequestOutcome.SUCCESS, duration)
                                     for service, duration in observations])
    assert ours == theirs


def test_the_families_are_registered_by_name_so_a_second_set_on_one_registry_is_refused() -> None:
    registry = CollectorRegistry()
    client_metrics(registry)
    assert client_metrics(registry) is client_metrics(registry)  # made once per registry, then shared
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Counter("resilient_client_requests_total", "again", ["service", "outcome"], registry=registry)


def test_a_removed_gauge_series_is_gone_and_starts_afresh_when_used_again() -> None:
    registry = CollectorRegistry()
    tallies = Tallies()
    gauge = tallies.gauge("g", "a gauge", ["service"])
    registry.register(tallies)
    gauge.series("User").set(2)
    assert registry.get_sample_value("g", {"service": "User"}) == 2
    gauge.remove("User")
    gauge.remove("User")  # (no series: nothing to do)
    assert registry.get_sample_value("g", {"service": "User"}) is None
    gauge.series("User")
    assert registry.get_sample_value("g", {"service": "User"}) == 0


def test_a_series_needs_a_value_for_every_label() -> None:
    counter = Tallies().counter("c_total", "a counter", ["service", "outcome"])
    with pytest.raises(ValueError, match="labels"):
        counter.series("User")


def test_increments_from_several_threads_are_all_counted() -> None:
    # (without the lock under the GIL: see ATOMIC_UPDATES; threads switched as often as CPython allows)
    registry = CollectorRegistry()
    tallies = Tallies()
    counter = tallies.counter("c_total", "a counter", ["service"])
    histogram = tallies.histogram("h_seconds", "a histogram", ["service"])
    registry.register(tallies)

    def work() -> None:
        count, observe = counter.series("User").inc, histogram.series("User").observe
        record = CountAndObserve(counter.series("Auth"), histogram.series("Auth")).record
        for _ in range(20_000):
            count()
            observe(0.5)
            record(0.25)

    threads = [threading.Thread(target=work) for _ in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert registry.get_sample_value("c_total", {"service": "User"}) == 80_000
    assert registry.get_sample_value("h_seconds_count", {"service": "User"}) == 80_000
    assert registry.get_sample_value("h_seconds_sum", {"service": "User"}) == 40_000
    assert registry.get_sample_value("c_total", {"service": "Auth"}) == 80_000
    assert registry.get_sample_value("h_seconds_count", {"service": "Auth"}) == 80_000
    assert registry.get_sample_value("h_seconds_sum", {"service": "Auth"}) == 20_000


def test_count_and_observe_records_as_inc_and_observe_would() -> None:
    registry = CollectorRegistry()
    tallies = Tallies()
    counter = tallies.counter("c_total", "a counter", ["service", "outcome"])
    histogram = tallies.histogram("h_seconds", "a histogram", ["service"])
    registry.register(tallies)
    record = CountAndObserve(counter.series("User", "success"), histogram.series("User")).record
    record(0.3)
    record(7.0)
    assert registry.get_sample_value("c_total", {"service": "User", "outcome": "success"}) == 2
    assert registry.get_sample_value("h_seconds_count", {"service": "User"}) == 2
    assert registry.get_sample_value("h_seconds_sum", {"service": "User"}) == 7.3
    assert registry.get_sample_value("h_seconds_bucket", {"service": "User", "le": "0.5"}) == 1
    assert registry.get_sample_value("h_seconds_bucket", {"service": "User", "le": "7.5"}) == 2


def test_count_and_observe_needs_series_of_one_collector() -> None:
    counter = Tallies().counter("c_total", "a counter", ["service"])
    histogram = Tallies().histogram("h_seconds", "a histogram", ["service"])
    with pytest.raises(ValueError, match="different collectors"):
        CountAndObserve(counter.series("User"), histogram.series("User"))
