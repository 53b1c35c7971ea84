"""Deleting an instance whose stored document cannot be decoded removes it, as any other: the owner asked
for it to go, and a bad document must not keep it registered (nor answer 500). Its heartbeat answers 404,
so that its owner registers again and replaces the document."""

from __future__ import annotations

import json

import pytest

from registry_server.store.keys import KeyLayout
from tests.support.processes import RegistryProcess
from tests.support.raw_http import send
from tests.support.redis_server import RedisServer, redis_command

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("registry", ["redis"], indirect=True)
def test_deleting_an_instance_with_an_undecodable_document_removes_it(registry: RegistryProcess,
                                                                      redis_server: RedisServer) -> None:
    body = json.dumps({"name": "Ledger", "port": 1, "host": "10.0.0.3", "id": "old-1"}).encode()
    made = send(registry.url, "POST", "/instances", body, JSON)
    assert made.status == 201
    lease = json.loads(made.body)["lease_token"]
    keys = KeyLayout()
    # As an older release could have stored it: a lone surrogate, escaped in the JSON document.
    poisoned = '{"host":"10.0.0.3","metadata":{"k":"\\ud800"},"name":"Ledger","port":1}'
    assert redis_command(redis_server.port, "HSET", keys.instance("Ledger", "old-1"), "doc", poisoned).startswith(":0")
    gone = send(registry.url, "DELETE", "/instances/old-1", headers={"X-Lease-Token": lease})
    assert gone.status == 204, gone.text
    assert redis_command(redis_server.port, "EXISTS", keys.instance("Ledger", "old-1")).startswith(":0")
    assert redis_command(redis_server.port, "EXISTS", keys.owner("old-1")).startswith(":0")
    assert send(registry.url, "DELETE", "/instances/old-1", headers={"X-Lease-Token": lease}).status == 404
    # The id is free again: registering it afresh creates it.
    assert send(registry.url, "POST", "/instances", body, JSON).status == 201


@pytest.mark.parametrize("registry", ["redis"], indirect=True)
def test_a_heartbeat_of_an_instance_with_an_undecodable_document_answers_404_and_reregistering_repairs_it(
        registry: RegistryProcess, redis_server: RedisServer) -> None:
    body = json.dumps({"name": "Ledger", "port": 1, "host": "10.0.0.3", "id": "old-2"}).encode()
    made = send(registry.url, "POST", "/instances", body, JSON)
    assert made.status == 201
    lease = json.loads(made.body)["lease_token"]
    poisoned = '{"host":"10.0.0.3","metadata":{"k":"\\ud800"},"name":"Ledger","port":1}'
    assert redis_command(redis_server.port, "HSET", KeyLayout().instance("Ledger", "old-2"), "doc",
                         poisoned).startswith(":0")
    beat = send(registry.url, "PUT", "/instances/old-2/heartbeat", headers={"X-Lease-Token": lease})
    assert beat.status == 404, beat.text
    renewed = json.dumps({**json.loads(body), "lease_token": lease}).encode()  # as the client registers again
    again = send(registry.url, "POST", "/instances", renewed, {**JSON, "X-Lease-Token": lease})
    assert again.status in (200, 201), again.text
    assert send(registry.url, "PUT", "/instances/old-2/heartbeat", headers={"X-Lease-Token": lease}).status == 200
