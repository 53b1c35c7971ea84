"""The ``py-consul`` package against the registry's Consul API: it lists services and healthy
instances (registered through our own API), registers a service with a TTL check, passes the check,
deregisters, and a blocking query returns as soon as the service changes."""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.interop_peers import call, instance_ids, register
from tests.support.polling import wait_until
from tests.support.processes import RegistryProcess, running_registry
from tests.support.redis_server import RedisServer

consul = pytest.importorskip("consul")
pytestmark = pytest.mark.integration


@pytest.fixture
def registry(tmp_path: Path, redis_server: RedisServer) -> Iterator[RegistryProcess]:
    with running_registry(tmp_path, redis_url=redis_server.url, ttl=30, sweep=0.5) as proc:
        proc.wait_healthy()
        yield proc


def test_py_consul_lists_services_and_only_healthy_instances(registry: RegistryProcess) -> None:
    register(registry.url, "User", 4001, "user-1", metadata={"zone": "a"})
    register(registry.url, "User", 4002, "user-2", status="DOWN")
    client = consul.Consul(host="127.0.0.1", port=registry.port)

    index, services = client.catalog.services()
    assert services == {"User": []} and int(index) >= 1

    _, healthy = client.health.service("User", passing=True)
    assert [(e["Service"]["ID"], e["Service"]["Port"], e["Checks"][0]["Status"]) for e in healthy] == [
        ("user-1", 4001, "passing")]
    assert healthy[0]["Service"]["Meta"] == {"zone": "a", "version": "1.0.0"}
    _, everyone = client.health.service("User")
    assert {e["Checks"][0]["Status"] for e in everyone} == {"passing", "critical"}
    _, nodes = client.catalog.service("User")
    assert sorted((n["ServiceID"], n["ServiceAddress"]) for n in nodes) == [("user-1", "127.0.0.1"),
                                                                           ("user-2", "127.0.0.1")]
    assert set(client.agent.services()) == {"user-1", "user-2"}


def test_py_consul_registers_with_a_ttl_check_passes_it_and_deregisters(registry: RegistryProcess) -> None:
    client = consul.Consul(host="127.0.0.1", port=registry.port)
    assert client.agent.service.register("Pay", service_id="pay-1", address="127.0.0.1", port=5000,
                                         meta={"version": "3.0"}, check=consul.Check.ttl("10s"))
    _, body = call("GET", registry.url + "/instances/pay-1")
    assert (body["name"], body["status"], body["version"]) == ("Pay", "DOWN", "3.0")  # TTL checks start critical

    assert client.agent.check.ttl_pass("service:pay-1")
    _, healthy = client.health.service("Pay", passing=True)
    assert [e["Service"]["ID"] for e in healthy] == ["pay-1"]
    assert client.agent.check.ttl_warn("service:pay-1")
    assert call("GET", registry.url + "/instances/pay-1")[1]["status"] == "STARTING"

    assert client.agent.service.deregister("pay-1")
    assert instance_ids(registry.url, "Pay") == []


def blocking_watchers(registry: RegistryProcess) -> float:
    with urllib.request.urlopen(registry.url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    match = re.search(r'^registry_watchers\{kind="blocking"\} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_a_consul_blocking_query_returns_as_soon_as_the_service_changes(registry: RegistryProcess) -> None:
    register(registry.url, "User", 4001, "user-1")
    client = consul.Consul(host="127.0.0.1", port=registry.port)
    index, _ = client.health.service("User", passing=True)
    result: dict[str, Any] = {}

    def watch() -> None:
        started = time.monotonic()
        result["answer"] = client.health.service("User", passing=True, index=index, wait="20s")
        result["seconds"] = time.monotonic() - started

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        wait_until(lambda: blocking_watchers(registry) == 1, timeout=10, message="the blocking query held open")
        status, _ = call("DELETE", registry.url + "/instances/user-1")
        assert status == 204
    finally:
        watcher.join(timeout=25)
    new_index, entries = result["answer"]
    assert entries == [] and int(new_index) > int(index)
    assert result["seconds"] < 10


def test_the_consul_api_refuses_to_touch_an_instance_registered_with_a_lease_token(
        registry: RegistryProcess) -> None:
    register(registry.url, "User", 4001, "user-1")
    client = consul.Consul(host="127.0.0.1", port=registry.port)
    with pytest.raises(consul.ConsulException):
        client.agent.service.deregister("user-1")
    assert instance_ids(registry.url, "User") == ["user-1"]
