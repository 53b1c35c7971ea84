"""Finding: one registration poisoned every read. A lone surrogate through Consul or Eureka, or a control
character in native metadata, was stored and then failed every listing (or made Eureka's XML ill-formed).
Every dialect now validates text by the same rules, and a bad document already stored is skipped."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from registry_server.store.keys import KeyLayout
from tests.support.processes import RegistryProcess
from tests.support.raw_http import send
from tests.support.redis_server import RedisServer, redis_command

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}
READS = ["/instances", "/services", "/services/Payments", "/prometheus/targets", "/eureka/apps",
         "/v1/health/service/Payments", "/v1/catalog/service/Payments", "/v1/agent/services"]


def _register_good(registry: RegistryProcess) -> None:
    body = json.dumps({"name": "Payments", "port": 8080, "host": "10.0.0.1", "id": "good-1"}).encode()
    assert send(registry.url, "POST", "/instances", body, JSON).status == 201


def _reads_answer(registry: RegistryProcess) -> None:
    for path in READS:
        answer = send(registry.url, "GET", path, headers={"Accept": "application/json"})
        assert answer.status == 200, (path, answer.text)
        json.loads(answer.body)
    xml = send(registry.url, "GET", "/eureka/apps", headers={"Accept": "application/xml"})
    assert xml.status == 200
    ET.fromstring(xml.body)  # well-formed for every Eureka client
    assert b"good-1" in xml.body


# (method, path, raw body): each carries text no dialect may store
POISON = {
    "consul meta lone surrogate": ("PUT", "/v1/agent/service/register",
                                   b'{"Name": "Payments", "ID": "evil-1", "Port": 1, "Address": "10.0.0.9",'
                                   b' "Meta": {"k": "\\ud800"}}'),
    "consul meta key control": ("PUT", "/v1/agent/service/register",
                                b'{"Name": "Payments", "ID": "evil-1", "Port": 1, "Address": "10.0.0.9",'
                                b' "Meta": {"k\\u0001": "v"}}'),
    "consul name with newline": ("PUT", "/v1/agent/service/register",
                                 b'{"Name": "Payments\\n", "ID": "evil-1", "Port": 1, "Address": "10.0.0.9"}'),
    "consul address zone": ("PUT", "/v1/agent/service/register",
                            b'{"Name": "Payments", "ID": "evil-1", "Port": 1, "Address": "fe80::1%\\ud800"}'),
    "eureka metadata lone surrogate": ("POST", "/eureka/apps/PAYMENTS",
                                       b'{"instance": {"instanceId": "evil-1", "hostName": "10.0.0.9",'
                                       b' "app": "PAYMENTS", "port": {"$": 1}, "metadata": {"k": "\\udfff"}}}'),
    "eureka metadata control": ("POST", "/eureka/apps/PAYMENTS",
                                b'{"instance": {"instanceId": "evil-1", "hostName": "10.0.0.9",'
                                b' "app": "PAYMENTS", "port": {"$": 1}, "metadata": {"k": "a\\u0008b"}}}'),
    "native metadata control": ("POST", "/instances",
                                b'{"name": "Payments", "port": 1, "host": "10.0.0.9", "id": "evil-1",'
                                b' "metadata": {"k": "\\u0001"}}'),
    "native metadata noncharacter": ("POST", "/instances",
                                     b'{"name": "Payments", "port": 1, "host": "10.0.0.9", "id": "evil-1",'
                                     b' "metadata": {"k": "\\uffff"}}'),
    "native health endpoint NUL": ("POST", "/instances",
                                   b'{"name": "Payments", "port": 1, "host": "10.0.0.9", "id": "evil-1",'
                                   b' "health_endpoint": "/h\\u0000"}'),
}


@pytest.mark.parametrize("case", list(POISON.values()), ids=list(POISON))
def test_text_no_dialect_can_carry_is_refused_and_reads_keep_working(registry: RegistryProcess,
                                                                     case: tuple[str, str, bytes]) -> None:
    _register_good(registry)
    method, path, body = case
    answer = send(registry.url, method, path, body, JSON)
    assert answer.status in (400, 422), answer.text
    assert send(registry.url, "GET", "/instances/evil-1").status == 404
    _reads_answer(registry)


def test_a_description_may_hold_tab_and_newline(registry: RegistryProcess) -> None:
    body = json.dumps({"name": "Payments", "port": 1, "host": "10.0.0.2", "description": "a\tb\nc"}).encode()
    answer = send(registry.url, "POST", "/instances", body, JSON)
    assert answer.status == 201, answer.text
    assert json.loads(answer.body)["description"] == "a\tb\nc"
    carriage = json.dumps({"name": "Payments", "port": 1, "host": "10.0.0.2", "description": "a\rb"}).encode()
    assert send(registry.url, "POST", "/instances", carriage, JSON).status == 422


@pytest.mark.parametrize("registry", ["redis"], indirect=True)
def test_an_undecodable_stored_document_is_skipped_logged_once_and_counted(
        registry: RegistryProcess, redis_server: RedisServer) -> None:
    _register_good(registry)
    body = json.dumps({"name": "Payments", "port": 1, "host": "10.0.0.3", "id": "old-1"}).encode()
    assert send(registry.url, "POST", "/instances", body, JSON).status == 201
    # As an older release could have stored it: a lone surrogate, escaped in the JSON document.
    key = KeyLayout().instance("Payments", "old-1")
    poisoned = '{"host":"10.0.0.3","metadata":{"k":"\\ud800"},"name":"Payments","port":1}'
    assert redis_command(redis_server.port, "HSET", key, "doc", poisoned).startswith(":")
    for _ in range(2):
        _reads_answer(registry)
        listed = json.loads(send(registry.url, "GET", "/instances").body)["instances"]
        assert [inst["id"] for inst in listed] == ["good-1"]
    assert send(registry.url, "GET", "/instances/old-1").status == 404
    metrics = send(registry.url, "GET", "/metrics").text
    counted = [line for line in metrics.splitlines() if line.startswith("registry_undecodable_documents_total ")]
    assert counted and float(counted[0].split()[1]) >= 2
    assert registry.log_text().count("skipping instance 'old-1'") == 1
