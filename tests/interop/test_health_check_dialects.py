"""Health checks in the dialects: Consul HTTP checks map onto the registry's own; the answers show the result."""

from __future__ import annotations

from dataclasses import replace

import pytest

from registry_server.interop import consul, eureka
from registry_server.model import Health, HealthCheckSpec, HealthStatus, Instance, InstanceStatus


def make(**fields: object) -> Instance:
    values: dict[str, object] = {"id": "pay-1", "name": "Pay", "host": "10.0.0.5", "port": 4001, "scheme": "http",
                                 "health_endpoint": "/health", "version": "", "description": "",
                                 "status": InstanceStatus.UP, "metadata": {}, "registered_at_ms": 0,
                                 "last_heartbeat_ms": 0, "expires_at_ms": 90_000}
    values.update(fields)
    return Instance(**values)  # type: ignore[arg-type]


def test_a_consul_http_check_becomes_the_registrys_own_check_of_the_service_port() -> None:
    parsed = consul.parse_registration({"Name": "Pay", "Port": 4001, "Check": {
        "HTTP": "https://localhost:4001/ready?deep=1", "Interval": "5s", "Timeout": "1s",
        "DeregisterCriticalServiceAfter": "10m"}})
    registration = parsed.registration("10.0.0.5", "")
    assert (registration.scheme, registration.health_endpoint) == ("https", "/ready?deep=1")
    assert registration.health_check == HealthCheckSpec(5.0, 1.0, 1, 600.0)
    assert registration.status is InstanceStatus.UP


def test_a_consul_http_check_has_consul_defaults() -> None:
    parsed = consul.parse_registration({"Name": "Pay", "Port": 80, "Checks": [{"HTTP": "http://x/health"}]})
    assert parsed.registration("10.0.0.5", "").health_check == HealthCheckSpec(10.0, 10.0, 1, 0.0)


def test_a_service_without_an_http_check_asks_for_the_registrys_default() -> None:
    parsed = consul.parse_registration({"Name": "Pay", "Port": 80, "Check": {"TTL": "10s", "Status": "passing"}})
    assert parsed.registration("10.0.0.5", "").health_check is None


def test_only_one_http_check_per_service() -> None:
    with pytest.raises(consul.ConsulInputError, match="at most one HTTP check"):
        consul.parse_registration({"Name": "Pay", "Port": 80, "Checks": [{"HTTP": "http://x/a"}, {"HTTP": "http://x/b"}]})


@pytest.mark.parametrize(("health", "status", "expected"), [
    (Health(HealthStatus.PASSING, 1_000, "HTTP 200"), InstanceStatus.UP, ("passing", "HTTP 200", "http")),
    (Health(HealthStatus.CRITICAL, 1_000, "HTTP 500: db"), InstanceStatus.DOWN, ("critical", "HTTP 500: db", "http")),
    (Health(), InstanceStatus.UP, ("passing", "registry status UP", "ttl")),
])
def test_consul_health_answers_report_what_the_checks_found(health: Health, status: InstanceStatus,
                                                             expected: tuple[str, str, str]) -> None:
    check = consul.check(make(health=health, status=status), 7)
    assert (check["Status"], check["Output"], check["Type"]) == expected


def test_eureka_shows_a_critical_instance_down() -> None:
    critical = make(health=Health(HealthStatus.CRITICAL, 1_000, "HTTP 500"), status=InstanceStatus.DOWN)
    assert eureka.instance_to_eureka(critical, ttl_s=90)["status"] == "DOWN"
    assert eureka.instance_to_eureka(replace(critical, status=InstanceStatus.UP), ttl_s=90)["status"] == "UP"
