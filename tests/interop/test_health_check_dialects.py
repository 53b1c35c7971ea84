"""Health checks in the dialects: Consul HTTP checks map onto the registry's own; the answers show the result."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from typing import Any

import httpx
import pytest

from registry_server.app import create_app
from registry_server.interop import consul, eureka
from registry_server.model import Health, HealthCheckSpec, HealthStatus, Instance, InstanceStatus
from registry_server.settings import Settings
from registry_server.store.memory import MemoryStore
from tests.support.clock import FakeClock


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


def test_eureka_metadata_carries_what_the_checks_found_once_checked() -> None:
    unchecked = eureka.instance_to_eureka(make(metadata={"zone": "a"}), ttl_s=90)
    assert unchecked["metadata"] == {"zone": "a"}, "nothing added before a check ran"
    passing = eureka.instance_to_eureka(make(health=Health(HealthStatus.PASSING, 1_000, "HTTP 200")), ttl_s=90)
    assert passing["metadata"] == {"health": "passing", "health.output": "HTTP 200"}
    own = eureka.instance_to_eureka(make(metadata={"health": "/ready"}, health=Health(HealthStatus.PASSING, 1, "")),
                                    ttl_s=90)
    assert own["metadata"]["health"] == "/ready", "the instance's own metadata key wins"


EUREKA_BODY = {"instance": {"instanceId": "o-1", "hostName": "127.0.0.1", "app": "ORDERS",
                            "port": {"$": 9090, "@enabled": "true"}, "status": "UP"}}
JSON = {"Accept": "application/json"}


def _json_instances(document: dict[str, Any]) -> list[dict[str, Any]]:
    if "applications" in document:
        return [i for app in document["applications"]["application"] for i in app["instance"]]
    if "application" in document:
        return list(document["application"]["instance"])
    return [document["instance"]]


def _xml_instances(body: bytes) -> list[dict[str, str]]:
    root = ET.fromstring(body)
    found = [root] if root.tag == "instance" else root.iter("instance")
    return [{"status": i.findtext("status") or "", "health": i.findtext("metadata/health") or "",
             "output": i.findtext("metadata/health.output") or ""} for i in found]


async def test_every_eureka_answer_shows_a_critical_instance_down_with_its_health_in_metadata() -> None:
    store, clock = MemoryStore(), FakeClock()
    app = create_app(Settings(instance_ttl_s=30), store=store, clock=clock)
    paths = ["/eureka/apps", "/eureka/apps/ORDERS", "/eureka/apps/ORDERS/o-1", "/eureka/instances/o-1",
             "/eureka/apps/delta"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://registry") as client:
        assert (await client.post("/eureka/apps/ORDERS", json=EUREKA_BODY)).status_code == 204
        for at in (1, 2):  # two failures in a row: critical
            await store.record_health("ORDERS", "o-1", False, "HTTP 500: db down", clock.now_ms() + at,
                                      failures=2, deregister_after_ms=0)
        ours = (await client.get("/instances/o-1")).json()
        assert (ours["status"], ours["health"]["status"]) == ("DOWN", "critical")
        for path in paths:
            (shown,) = _json_instances((await client.get(path, headers=JSON)).json())
            assert (shown["status"], shown["metadata"]["health"], shown["metadata"]["health.output"]) == (
                "DOWN", "critical", "HTTP 500: db down"), path
            xml = await client.get(path, headers={"Accept": "application/xml"})
            assert _xml_instances(xml.content) == [
                {"status": "DOWN", "health": "critical", "output": "HTTP 500: db down"}], path
        delta = (await client.get("/eureka/apps/delta", headers=JSON)).json()["applications"]
        assert delta["apps__hashcode"] == "DOWN_1_"

        await store.record_health("ORDERS", "o-1", True, "HTTP 200", clock.now_ms() + 3, failures=2,
                                  deregister_after_ms=0)
        for path in paths:
            (shown,) = _json_instances((await client.get(path, headers=JSON)).json())
            assert (shown["status"], shown["metadata"]["health"]) == ("UP", "passing"), path
