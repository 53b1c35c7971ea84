"""Scoped tokens and cross-dialect leases against a real registry process, on the memory store and on
Redis: the attacks of a service holding a write token reproduced, and refused.

- A write token scoped to ``orders`` cannot add an instance (an attacker's address) to ``payments``
  through the native API, Eureka or Consul, nor renew, mark down or remove one there.
- A native re-registration presenting the public derived lease token of a Eureka or Consul instance
  cannot set a secret lease and lock the agent out; Eureka and Consul cannot take over each other's.
- The tokens file is read again on SIGHUP; ``/metrics`` takes its own token.
"""

from __future__ import annotations

import hashlib
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.polling import wait_until
from tests.support.processes import RegistryProcess, running_registry

pytestmark = pytest.mark.integration

PAYMENTS, ORDERS, FLEET, ADMIN, READER = ("payments-token-1", "orders-token-2", "fleet-write-token-3",
                                          "admin-token-4", "reader-token-5")
LATE = "late-token-6"
METRICS = "metrics-token-7"


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _tokens_file(*extra: str) -> str:
    return "\n".join([
        f'[[tokens]]\nname = "payments"\nsha256 = "{_sha(PAYMENTS)}"\nrole = "write"\n'
        'services = ["payments", "payments-*"]\n',
        f'[[tokens]]\nname = "orders"\nsha256 = "{_sha(ORDERS)}"\nrole = "write"\nservices = ["orders"]\n',
        f'[[tokens]]\nname = "fleet"\nsha256 = "{_sha(FLEET)}"\nrole = "write"\n',
        f'[[tokens]]\nname = "ops"\nsha256 = "{_sha(ADMIN)}"\nrole = "admin"\n',
        f'[[tokens]]\nname = "dashboards"\nsha256 = "{_sha(READER)}"\nrole = "read"\n',
        *extra])


@pytest.fixture(scope="module", params=["memory", "redis"])
def registry(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[RegistryProcess, Path]]:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    tmp = tmp_path_factory.mktemp(f"tokens-{request.param}")
    path = tmp / "tokens.toml"
    path.write_text(_tokens_file())
    env = {"REGISTRY_TOKENS_FILE": str(path), "REGISTRY_METRICS_TOKEN": METRICS}
    with running_registry(tmp, redis_url=redis_url, ttl=30, extra_env=env) as proc:
        yield proc, path


@pytest.fixture
def http(registry: tuple[RegistryProcess, Path]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry[0].url, timeout=10) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def consul_body(instance_id: str, service: str, address: str) -> dict[str, object]:
    return {"ID": instance_id, "Name": service, "Address": address, "Port": 443}


def eureka_body(instance_id: str, app: str, host: str) -> dict[str, object]:
    return {"instance": {"instanceId": instance_id, "hostName": host, "app": app,
                         "port": {"$": 443, "@enabled": "true"}, "status": "UP"}}


def addresses(http: httpx.Client, service: str) -> set[str]:
    answer = http.get(f"/services/{service}", headers=bearer(READER))
    assert answer.status_code == 200, answer.text
    return {inst["host"] for inst in answer.json()["instances"]}


def test_a_write_token_cannot_add_an_address_to_a_service_outside_its_scope_on_any_dialect(
        http: httpx.Client) -> None:
    native = http.post("/instances", headers=bearer(ORDERS),
                       json={"id": "evil-native", "name": "payments", "host": "10.6.6.1", "port": 443})
    assert native.status_code == 403 and native.json()["error"]["code"] == "service_not_in_scope"
    consul = http.put("/v1/agent/service/register", headers={"X-Consul-Token": ORDERS},
                      json=consul_body("evil-consul", "Payments", "10.6.6.2"))
    assert consul.status_code == 403 and "service_not_in_scope" in consul.text
    eureka = http.post("/eureka/apps/PAYMENTS", auth=("agent", ORDERS),
                       json=eureka_body("evil-eureka", "PAYMENTS", "10.6.6.3"))
    assert eureka.status_code == 403 and "service_not_in_scope" in eureka.text
    assert addresses(http, "payments") | addresses(http, "Payments") | addresses(http, "PAYMENTS") == set()


def test_a_write_token_writes_the_services_of_its_scope_through_every_dialect(http: httpx.Client) -> None:
    assert http.post("/instances", headers=bearer(PAYMENTS),
                     json={"id": "pay-n", "name": "payments", "host": "10.1.0.1", "port": 1}).status_code == 201
    assert http.put("/v1/agent/service/register", headers={"X-Consul-Token": PAYMENTS},
                    json=consul_body("pay-c", "payments-eu", "10.1.0.2")).status_code == 200
    assert http.post("/eureka/apps/PAYMENTS", auth=("agent", PAYMENTS), headers={"Content-Type": "application/json"},
                     json=eureka_body("pay-e", "PAYMENTS", "10.1.0.3")).status_code == 204
    assert addresses(http, "payments") == {"10.1.0.1", "10.1.0.3"}
    assert addresses(http, "payments-eu") == {"10.1.0.2"}


def test_a_write_token_cannot_renew_mark_down_or_remove_instances_outside_its_scope(http: httpx.Client) -> None:
    assert http.put("/v1/agent/service/register", headers={"X-Consul-Token": PAYMENTS},
                    json=consul_body("pay-c2", "payments", "10.2.0.1")).status_code == 200
    assert http.post("/eureka/apps/PAYMENTS", auth=("agent", PAYMENTS),
                     json=eureka_body("pay-e2", "PAYMENTS", "10.2.0.2")).status_code == 204
    refusals = [
        http.put("/v1/agent/check/fail/service:pay-c2", headers={"X-Consul-Token": ORDERS}),
        http.put("/v1/agent/service/deregister/pay-c2", headers={"X-Consul-Token": ORDERS}),
        http.put("/eureka/apps/PAYMENTS/pay-e2/status?value=OUT_OF_SERVICE", auth=("agent", ORDERS)),
        http.delete("/eureka/apps/PAYMENTS/pay-e2", auth=("agent", ORDERS)),
        http.put("/instances/pay-c2/heartbeat", headers=bearer(ORDERS)),
        http.delete("/instances/pay-e2", headers=bearer(ORDERS)),
    ]
    assert [r.status_code for r in refusals] == [403] * 6, [r.text for r in refusals]
    assert all("service_not_in_scope" in r.text for r in refusals)
    listed = http.get("/services/payments", headers=bearer(READER)).json()["instances"]
    statuses = {i["id"]: i["status"] for i in listed}
    assert statuses["pay-c2"] == "UP" and statuses["pay-e2"] == "UP"


def test_a_read_token_cannot_write_and_a_missing_token_cannot_read(http: httpx.Client) -> None:
    write = http.post("/instances", headers=bearer(READER), json={"name": "orders", "host": "10.3.0.1", "port": 1})
    assert write.status_code == 401
    assert http.get("/services").status_code == 401
    assert http.get("/services", headers=bearer(ORDERS)).status_code == 200


@pytest.mark.parametrize("dialect", ["consul", "eureka"])
def test_a_native_re_registration_with_the_derived_lease_token_cannot_lock_an_agent_out(
        http: httpx.Client, dialect: str) -> None:
    instance_id = f"agent-{dialect}"
    if dialect == "consul":
        registered = http.put("/v1/agent/service/register", headers={"X-Consul-Token": FLEET},
                              json=consul_body(instance_id, "orders", "10.4.0.1"))
        renew = lambda: http.put(f"/v1/agent/check/pass/service:{instance_id}",  # noqa: E731
                                 headers={"X-Consul-Token": FLEET})
        derived = [f"interop-lease:{instance_id}", f"interop-lease:consul:{instance_id}"]
    else:
        registered = http.post("/eureka/apps/ORDERS", auth=("agent", FLEET),
                               json=eureka_body(instance_id, "ORDERS", "10.4.0.1"))
        renew = lambda: http.put(f"/eureka/apps/ORDERS/{instance_id}", auth=("agent", FLEET))  # noqa: E731
        derived = [f"interop-lease:{instance_id}", f"interop-lease:eureka:{instance_id}"]
    assert registered.status_code in (200, 204), registered.text
    for lease in derived:
        takeover = http.post("/instances", headers={**bearer(FLEET), "X-Lease-Token": lease},
                             json={"id": instance_id, "name": "orders", "host": "10.6.6.6", "port": 1,
                                   "lease_token": "attacker-secret-lease-0123"})
        assert takeover.status_code == 403, takeover.text
        heartbeat = http.put(f"/instances/{instance_id}/heartbeat",
                             headers={**bearer(FLEET), "X-Lease-Token": lease})
        assert heartbeat.status_code == 403, heartbeat.text
    posing = http.post("/instances", headers=bearer(FLEET),
                       json={"id": "posing", "name": "orders", "host": "10.6.6.7", "port": 1,
                             "lease_token": f"interop-lease:consul:{instance_id}"})
    assert posing.status_code == 422
    assert renew().status_code == 200  # the agent keeps its instance
    assert http.get(f"/instances/{instance_id}", headers=bearer(READER)).json()["host"] == "10.4.0.1"


def test_eureka_and_consul_cannot_take_over_each_others_instances(http: httpx.Client) -> None:
    assert http.put("/v1/agent/service/register", headers={"X-Consul-Token": FLEET},
                    json=consul_body("shared-c", "ORDERS", "10.5.0.1")).status_code == 200
    assert http.post("/eureka/apps/ORDERS", auth=("agent", FLEET),
                     json=eureka_body("shared-e", "ORDERS", "10.5.0.2")).status_code == 204
    assert http.post("/eureka/apps/ORDERS", auth=("agent", FLEET),
                     json=eureka_body("shared-c", "ORDERS", "10.6.6.8")).status_code == 403
    assert http.put("/eureka/apps/ORDERS/shared-c", auth=("agent", FLEET)).status_code == 403
    assert http.put("/v1/agent/service/register", headers={"X-Consul-Token": FLEET},
                    json=consul_body("shared-e", "ORDERS", "10.6.6.9")).status_code == 403
    assert http.put("/v1/agent/service/deregister/shared-e", headers={"X-Consul-Token": FLEET}).status_code == 403
    hosts = {i["id"]: i["host"] for i in http.get("/services/ORDERS", headers=bearer(READER)).json()["instances"]}
    assert hosts == {"shared-c": "10.5.0.1", "shared-e": "10.5.0.2"}
    # the admin token may act on any instance
    assert http.put("/v1/agent/service/deregister/shared-e", headers={"X-Consul-Token": ADMIN}).status_code == 200


def test_metrics_need_the_metrics_token_or_the_admin_token(http: httpx.Client) -> None:
    assert http.get("/metrics").status_code == 401
    assert http.get("/metrics", headers=bearer(FLEET)).status_code == 401
    scraped = http.get("/metrics", headers=bearer(METRICS))
    assert scraped.status_code == 200 and "registry_http_requests_total" in scraped.text
    assert http.get("/metrics", headers=bearer(ADMIN)).status_code == 200


def test_the_tokens_file_is_read_again_on_sighup_and_a_bad_one_keeps_the_tokens_in_force(
        registry: tuple[RegistryProcess, Path], http: httpx.Client) -> None:
    proc, path = registry
    body = {"name": "late", "host": "10.7.0.1", "port": 1}
    assert http.post("/instances", headers=bearer(LATE), json=body).status_code == 401
    path.write_text(_tokens_file(f'[[tokens]]\nname = "late"\nsha256 = "{_sha(LATE)}"\nrole = "write"\n'
                                 'services = ["late"]\n'))
    proc.signal_group(signal.SIGHUP)
    wait_until(lambda: http.post("/instances", headers=bearer(LATE), json=body).status_code == 201,
               message="the token added to the file to be accepted after SIGHUP")
    path.write_text("[[tokens]]\nname = 5\n")
    proc.signal_group(signal.SIGHUP)
    wait_until(lambda: "tokens file not reloaded" in proc.log_text(), message="the bad file to be reported")
    assert proc.alive()
    assert http.post("/instances", headers=bearer(LATE), json=body).status_code in (200, 201)
    path.write_text(_tokens_file())
    proc.signal_group(signal.SIGHUP)
    wait_until(lambda: http.post("/instances", headers=bearer(LATE), json=body).status_code == 401,
               message="the token removed from the file to be refused after SIGHUP")
