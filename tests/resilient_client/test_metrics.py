import re
import sys
import threading

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from resilient_client import aiohttp_metrics_handler, client_metrics
from resilient_client._report import Reporter
from resilient_client.hooks import (
    BreakerState,
    DiscoveryResult,
    HeartbeatOutcome,
    ProtectionOutcome,
    RegistrationOutcome,
    RegistrationState,
    RequestOutcome,
    WatchState,
)

SPEC_FAMILIES = [  # SPEC §2 and the README: (name as exposed, type, label names)
    ("resilient_client_requests", "counter", ("service", "outcome")),
    ("resilient_client_request_duration_seconds", "histogram", ("service",)),
    ("resilient_client_failovers", "counter", ("service",)),
    ("resilient_client_retries", "counter", ("service",)),
    ("resilient_client_retry_budget_exhausted", "counter", ("service",)),
    ("resilient_client_circuit_breaker_state", "gauge", ("service", "instance")),
    ("resilient_client_circuit_breaker_transitions", "counter", ("service", "instance", "state")),
    ("resilient_client_discovery", "counter", ("service", "result")),
    ("resilient_client_discovery_protections", "counter", ("service", "outcome")),
    ("resilient_client_discovery_watching", "gauge", ("service",)),
    ("resilient_client_registrations", "counter", ("service", "outcome")),
    ("resilient_client_heartbeats", "counter", ("service", "outcome")),
    ("resilient_client_registered", "gauge", ("service",)),
]


def report_one_of_each(reporter: Reporter) -> None:
    reporter.request_finished("User", RequestOutcome.SUCCESS, 0.003)
    reporter.request_finished("User", RequestOutcome.SUCCESS, 0.005)  # on a bucket bound: in that bucket
    reporter.request_finished("Auth", RequestOutcome.FAILURE, 12.0)  # above the last finite bound: +Inf only
    reporter.failed_over("User", "h:1")
    reporter.retried("User", 0.1)
    reporter.retry_budget_exhausted("User")
    reporter.breaker_created("User", "h:1")
    reporter.breaker_created("User", "h:2")
    reporter.breaker_changed("User", "h:1", BreakerState.OPEN)
    reporter.breaker_changed("User", "h:1", BreakerState.HALF_OPEN)
    reporter.breaker_rejected("User", "h:1")
    reporter.breaker_removed("User", "h:2")
    reporter.looked_up("User", DiscoveryResult.HIT)
    reporter.looked_up("User", DiscoveryResult.HIT)
    reporter.looked_up("*", DiscoveryResult.MISS)
    reporter.protected("User", ProtectionOutcome.STARTED)
    reporter.watch_changed("User", WatchState.WATCHING)
    reporter.registration_attempted("User", RegistrationOutcome.OK)
    reporter.heartbeat_sent("User", HeartbeatOutcome.REREGISTERED)
    reporter.registration_changed("User", RegistrationState.REGISTERING)
    reporter.registration_changed("User", RegistrationState.REGISTERED)


def test_the_client_metrics_are_the_spec_families_with_their_types_and_labels() -> None:
    registry = CollectorRegistry()
    report_one_of_each(Reporter(client_metrics(registry)))
    seen = []
    for family in registry.collect():
        labelnames = {name for sample in family.samples for name in sample.labels if name != "le"}
        seen.append((family.name, family.type, labelnames))
    assert seen == [(name, kind, set(labels)) for name, kind, labels in SPEC_FAMILIES]


def test_each_report_updates_its_series() -> None:
    registry = CollectorRegistry()
    report_one_of_each(Reporter(client_metrics(registry)))

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("resilient_client_requests_total", service="User", outcome="success") == 2
    assert value("resilient_client_requests_total", service="Auth", outcome="failure") == 1
    assert value("resilient_client_request_duration_seconds_count", service="User") == 2
    assert value("resilient_client_request_duration_seconds_sum", service="User") == pytest.approx(0.008)
    assert value("resilient_client_request_duration_seconds_bucket", service="User", le="0.005") == 2
    assert value("resilient_client_request_duration_seconds_bucket", service="Auth", le="10.0") == 0
    assert value("resilient_client_request_duration_seconds_bucket", service="Auth", le="+Inf") == 1
    assert value("resilient_client_failovers_total", service="User") == 1
    assert value("resilient_client_retries_total", service="User") == 1
    assert value("resilient_client_retry_budget_exhausted_total", service="User") == 1
    assert value("resilient_client_circuit_breaker_state", service="User", instance="h:1") == 1
    assert value("resilient_client_circuit_breaker_state", service="User", instance="h:2") is None  # removed
    assert value("resilient_client_circuit_breaker_transitions_total", service="User", instance="h:1",
                 state="open") == 1
    assert value("resilient_client_circuit_breaker_transitions_total", service="User", instance="h:1",
                 state="half-open") == 1
    assert value("resilient_client_discovery_total", service="User", result="hit") == 2
    assert value("resilient_client_discovery_total", service="*", result="miss") == 1
    assert value("resilient_client_discovery_protections_total", service="User", outcome="started") == 1
    assert value("resilient_client_discovery_watching", service="User") == 1
    assert value("resilient_client_registrations_total", service="User", outcome="ok") == 1
    assert value("resilient_client_heartbeats_total", service="User", outcome="reregistered") == 1


def test_the_series_of_every_call_are_looked_up_once_and_kept() -> None:
    metrics = client_metrics(CollectorRegistry())
    reporter = Reporter(metrics)
    reporter.request_finished("User", RequestOutcome.SUCCESS, 0.1)
    count, duration = metrics.finished[("User", RequestOutcome.SUCCESS)]
    assert count is metrics.requests.series("User", "success")
    assert duration is metrics.request_duration.series("User")
    reporter.request_finished("User", RequestOutcome.SUCCESS, 0.2)
    assert metrics.finished[("User", RequestOutcome.SUCCESS)] == (count, duration)
    assert count[0] == 2
    reporter.looked_up("User", DiscoveryResult.HIT)
    assert metrics.lookups[("User", DiscoveryResult.HIT)] is metrics.discovery.series("User", "hit")


def reference_exposition(registry: CollectorRegistry) -> None:
    """What prometheus_client's own metrics expose for the updates of :func:`report_one_of_each`."""
    def counter(name: str, labels: list[str]) -> Counter:
        return Counter(name, HELP[name], labels, registry=registry)

    requests = counter("resilient_client_requests_total", ["service", "outcome"])
    duration = Histogram("resilient_client_request_duration_seconds",
                         HELP["resilient_client_request_duration_seconds"], ["service"], registry=registry)
    failovers = counter("resilient_client_failovers_total", ["service"])
    retries = counter("resilient_client_retries_total", ["service"])
    budget_exhausted = counter("resilient_client_retry_budget_exhausted_total", ["service"])
    state = Gauge("resilient_client_circuit_breaker_state", HELP["resilient_client_circuit_breaker_state"],
                  ["service", "instance"], registry=registry)
    transitions = counter("resilient_client_circuit_breaker_transitions_total", ["service", "instance", "state"])
    discovery = counter("resilient_client_discovery_total", ["service", "result"])
    protections = counter("resilient_client_discovery_protections_total", ["service", "outcome"])
    watching = Gauge("resilient_client_discovery_watching", HELP["resilient_client_discovery_watching"],
                     ["service"], registry=registry)
    registrations = counter("resilient_client_registrations_total", ["service", "outcome"])
    heartbeats = counter("resilient_client_heartbeats_total", ["service", "outcome"])
    for service, outcome, seconds in (("User", "success", 0.003), ("User", "success", 0.005),
                                      ("Auth", "failure", 12.0)):
        requests.labels(service, outcome).inc()
        duration.labels(service).observe(seconds)
    failovers.labels("User").inc()
    retries.labels("User").inc()
    budget_exhausted.labels("User").inc()
    state.labels("User", "h:1").set(0)
    state.labels("User", "h:2").set(0)
    state.labels("User", "h:1").set(2)
    transitions.labels("User", "h:1", "open").inc()
    state.labels("User", "h:1").set(1)
    transitions.labels("User", "h:1", "half-open").inc()
    state.remove("User", "h:2")
    discovery.labels("User", "hit").inc()
    discovery.labels("User", "hit").inc()
    discovery.labels("*", "miss").inc()
    protections.labels("User", "started").inc()
    watching.labels("User").set(1)
    registrations.labels("User", "ok").inc()
    heartbeats.labels("User", "reregistered").inc()
    registered = Gauge("resilient_client_registered", HELP["resilient_client_registered"], ["service"],
                       registry=registry)
    registered.labels("User").set(0)
    registered.labels("User").set(1)


HELP = {family.name + ("_total" if family.kind.value == "counter" else ""): family.documentation
        for family in client_metrics(CollectorRegistry()).families}


def without_created_values(text: str) -> str:
    """Creation timestamps differ between two sets of metrics made a moment apart."""
    return re.sub(r"(_created(\{[^}]*\})?) \S+", r"\1 <t>", text)


def test_the_scrape_is_what_prometheus_client_metrics_fed_the_same_updates_expose() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    report_one_of_each(Reporter(client_metrics(ours)))
    reference_exposition(theirs)
    for generate in (generate_latest, generate_openmetrics):  # help, type, samples, labels, order
        assert without_created_values(generate(ours).decode()) == without_created_values(generate(theirs).decode())


@given(st.lists(st.floats(min_value=0, max_value=20, allow_nan=False), max_size=40))
def test_histogram_buckets_count_and_sum_match_prometheus_client(durations: list[float]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    reporter = Reporter(client_metrics(ours))
    reference = Histogram("h_seconds", "h", ["service"], registry=theirs)
    for seconds in durations:
        reporter.request_finished("User", RequestOutcome.SUCCESS, seconds)
        reference.labels("User").observe(seconds)
    for le in ("0.005", "0.1", "1.0", "10.0", "+Inf"):
        assert ours.get_sample_value("resilient_client_request_duration_seconds_bucket",
                                     {"service": "User", "le": le}) == (
            theirs.get_sample_value("h_seconds_bucket", {"service": "User", "le": le}) if durations else None)
    if durations:
        assert ours.get_sample_value("resilient_client_request_duration_seconds_sum", {"service": "User"}) == (
            pytest.approx(theirs.get_sample_value("h_seconds_sum", {"service": "User"})))


def test_updates_from_several_threads_are_all_counted() -> None:
    # (no lock around an update: see metrics.Series; threads switched as often as CPython allows)
    registry = CollectorRegistry()
    reporter = Reporter(client_metrics(registry))

    def work() -> None:
        for _ in range(20_000):
            reporter.request_finished("User", RequestOutcome.SUCCESS, 0.5)
            reporter.looked_up("User", DiscoveryResult.HIT)

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
    labels = {"service": "User"}
    assert registry.get_sample_value("resilient_client_requests_total", {**labels, "outcome": "success"}) == 80_000
    assert registry.get_sample_value("resilient_client_request_duration_seconds_count", labels) == 80_000
    assert registry.get_sample_value("resilient_client_request_duration_seconds_sum", labels) == 40_000
    assert registry.get_sample_value("resilient_client_discovery_total", {**labels, "result": "hit"}) == 80_000


def test_a_series_needs_a_value_for_every_label() -> None:
    with pytest.raises(ValueError, match="labels"):
        client_metrics(CollectorRegistry()).requests.series("User")


def test_the_metrics_are_made_once_per_registry_and_a_second_set_on_one_registry_is_refused() -> None:
    registry = CollectorRegistry()
    assert client_metrics(registry) is client_metrics(registry)  # made once per registry, then shared
    assert client_metrics(CollectorRegistry()) is not client_metrics(registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Counter("resilient_client_requests_total", "again", ["service", "outcome"], registry=registry)


def test_the_state_gauge_series_goes_only_with_the_last_breaker_of_its_instance() -> None:
    registry = CollectorRegistry()
    first, second = Reporter(client_metrics(registry)), Reporter(client_metrics(registry))
    labels = {"service": "User", "instance": "h:1"}
    first.breaker_created("User", "h:1")
    second.breaker_created("User", "h:1")
    first.breaker_removed("User", "h:1")
    assert registry.get_sample_value("resilient_client_circuit_breaker_state", labels) == 0
    second.breaker_removed("User", "h:1")
    assert registry.get_sample_value("resilient_client_circuit_breaker_state", labels) is None


def test_without_metrics_a_reporter_updates_no_series() -> None:
    registry = CollectorRegistry()
    client_metrics(registry)
    report_one_of_each(Reporter(None))
    assert [sample for family in registry.collect() for sample in family.samples] == []


async def test_the_aiohttp_handler_serves_the_registry_in_the_text_format() -> None:
    registry = CollectorRegistry()
    Reporter(client_metrics(registry)).request_finished("User", RequestOutcome.SUCCESS, 0.1)
    app = web.Application()
    app.router.add_get("/metrics", aiohttp_metrics_handler(registry))
    async with TestClient(TestServer(app)) as http:
        resp = await http.get("/metrics")
        body = await resp.text()
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert 'resilient_client_requests_total{outcome="success",service="User"} 1.0' in body
