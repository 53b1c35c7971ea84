"""A service's own metric series go once the replica has not seen it with an instance for a grace period,
long before the store drops the name: names emptied long ago cost ``/metrics`` nothing."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from registry_server.metrics import SERIES_GRACE_S, RegistryMetrics
from registry_server.model import Instance, ServiceSummary


def _instance(name: str) -> Instance:
    doc = {"name": name, "host": "10.0.0.1", "port": 1, "scheme": "http", "health_endpoint": "/health",
           "version": "", "description": "", "metadata": {}, "health_check": None}
    return Instance.from_document(f"{name}-1", doc, "UP", 0, 0, 60_000)


def _services(metrics: RegistryMetrics) -> set[str]:
    text = generate_latest(metrics.registry).decode()
    return {name for name in ("Gone", "Live", "Checked") if f'service="{name}"' in text}


def test_the_series_of_a_service_without_instances_go_after_the_grace_and_come_back_with_it() -> None:
    now = [0.0]
    metrics = RegistryMetrics(CollectorRegistry(), clock=lambda: now[0])
    metrics.registered(_instance("Gone"), True)
    metrics.deregistered(_instance("Gone"))
    metrics.registered(_instance("Live"), True)
    metrics.health_checked("Checked", False, 0.01)
    live = [ServiceSummary("Live", 1, {"UP": 1})]
    metrics.inventory(live)
    now[0] = SERIES_GRACE_S - 1
    metrics.inventory(live)
    assert _services(metrics) == {"Gone", "Live", "Checked"}  # scrapes still see their last counts
    now[0] = SERIES_GRACE_S + 1
    metrics.inventory(live)
    assert _services(metrics) == {"Live"}
    metrics.registered(_instance("Gone"), True)
    text = generate_latest(metrics.registry).decode()
    assert 'registry_registrations_total{service="Gone"} 1.0' in text
    assert 'registry_deregistrations_total{service="Gone"} 0.0' in text


def test_a_dropped_service_loses_its_series_at_once() -> None:
    metrics = RegistryMetrics(CollectorRegistry(), clock=lambda: 0.0)
    metrics.registered(_instance("Gone"), True)
    metrics.expired("Gone", 1)
    metrics.dropped("Gone")
    assert _services(metrics) == set()
