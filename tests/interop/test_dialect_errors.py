"""Bad requests in the Eureka and Consul dialects get the errors their clients expect, never a 500;
our own instances stay out of reach of these dialects; Eureka names are matched case-insensitively."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from registry_server.app import create_app
from registry_server.settings import Settings
from registry_server.store.memory import MemoryStore

EUREKA_BODY = {"instance": {"instanceId": "o-1", "hostName": "127.0.0.1", "app": "ORDERS",
                            "port": {"$": 9090, "@enabled": "true"}, "status": "UP"}}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(instance_ttl_s=30), store=MemoryStore())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://registry") as c:
        yield c


@pytest.mark.parametrize(("method", "path", "body", "headers", "status"), [
    ("POST", "/eureka/apps/ORDERS", b"{not json", {"content-type": "application/json"}, 400),
    ("POST", "/eureka/apps/ORDERS", b"<instance><port>", {"content-type": "application/xml"}, 400),
    ("POST", "/eureka/apps/ORDERS", b"[" * 50_000, {"content-type": "application/json"}, 400),
    ("POST", "/eureka/apps/ORDERS", b'{"instance": 5}', {"content-type": "application/json"}, 400),
    ("POST", "/eureka/apps/ORDERS", b"x", {"content-type": "text/plain"}, 400),
    ("POST", "/eureka/apps/bad name!", b'{"instance": {}}', {}, 400),
    ("PUT", "/eureka/apps/ORDERS/nope", b"", {}, 404),
    ("DELETE", "/eureka/apps/ORDERS/nope", b"", {}, 404),
    ("PUT", "/eureka/apps/ORDERS/nope/status", b"", {}, 400),
    ("PUT", "/eureka/apps/ORDERS/nope/status?value=SLEEPY", b"", {}, 400),
    ("GET", "/eureka/apps/NOPE", b"", {}, 404),
    ("GET", "/eureka/instances/nope", b"", {}, 404),
    ("PUT", "/v1/agent/service/register", b"{", {}, 400),
    ("PUT", "/v1/agent/service/register", b'{"Name": "Pay"}', {}, 400),
    ("PUT", "/v1/agent/service/register", b'{"Name": "Pay", "Port": 1, "Check": {"HTTP": "http://x"}}', {}, 400),
    ("PUT", "/v1/agent/service/deregister/nope", b"", {}, 404),
    ("PUT", "/v1/agent/check/pass/service:nope", b"", {}, 404),
    ("PUT", "/v1/agent/check/update/service:nope", b'{"Status": "sleepy"}', {}, 400),
    ("GET", "/v1/health/service/User?index=abc", b"", {}, 400),
    ("GET", "/v1/health/service/User?index=1&wait=soon", b"", {}, 400),
    ("GET", "/v1/health/service/User?passing=maybe", b"", {}, 400),
    ("GET", "/v1/catalog/services?index=-1", b"", {}, 400),
    ("GET", "/prometheus/targets?service=bad name!", b"", {}, 422),
])
async def test_bad_dialect_requests_answer_a_4xx_never_a_500(client: httpx.AsyncClient, method: str, path: str,
                                                            body: bytes, headers: dict[str, str], status: int) -> None:
    resp = await client.request(method, path, content=body, headers=headers)
    assert resp.status_code == status, resp.text


async def test_eureka_and_consul_cannot_touch_an_instance_registered_with_a_lease_token(
        client: httpx.AsyncClient) -> None:
    resp = await client.post("/instances", json={"name": "User", "port": 4001, "host": "127.0.0.1", "id": "u-1"})
    assert resp.status_code == 201
    assert (await client.put("/eureka/apps/USER/u-1")).status_code == 403
    assert (await client.put("/eureka/apps/USER/u-1/status?value=OUT_OF_SERVICE")).status_code == 403
    assert (await client.put("/v1/agent/check/fail/service:u-1")).status_code == 403
    assert (await client.put("/v1/agent/service/deregister/u-1")).status_code == 403
    body = {"instance": {**EUREKA_BODY["instance"], "instanceId": "u-1", "app": "USER"}}
    assert (await client.post("/eureka/apps/USER", json=body)).status_code == 403
    assert (await client.get("/instances/u-1")).json()["status"] == "UP"


async def test_a_eureka_registration_joins_our_service_case_insensitively_and_answers_upper_case(
        client: httpx.AsyncClient) -> None:
    await client.post("/instances", json={"name": "User", "port": 4001, "host": "127.0.0.1", "id": "u-1"})
    body = {"instance": {**EUREKA_BODY["instance"], "instanceId": "u-2", "app": "USER"}}
    assert (await client.post("/eureka/apps/USER", json=body)).status_code == 204
    ours = (await client.get("/services/User")).json()["instances"]
    assert [i["id"] for i in ours] == ["u-1", "u-2"]
    app = (await client.get("/eureka/apps/user", headers={"Accept": "application/json"})).json()["application"]
    assert app["name"] == "USER" and [i["instanceId"] for i in app["instance"]] == ["u-1", "u-2"]


async def test_eureka_status_override_and_its_removal_map_to_our_status(client: httpx.AsyncClient) -> None:
    assert (await client.post("/eureka/apps/ORDERS", json=EUREKA_BODY)).status_code == 204
    assert (await client.put("/eureka/apps/orders/o-1/status?value=OUT_OF_SERVICE")).status_code == 200
    assert (await client.get("/instances/o-1")).json()["status"] == "DOWN"
    assert (await client.delete("/eureka/apps/ORDERS/o-1/status")).status_code == 200
    assert (await client.get("/instances/o-1")).json()["status"] == "UP"
    assert (await client.delete("/eureka/apps/ORDERS/o-1")).status_code == 200
    assert (await client.get("/services/ORDERS")).json()["instances"] == []


async def test_the_eureka_delta_reports_added_and_deleted_instances(client: httpx.AsyncClient) -> None:
    await client.post("/eureka/apps/ORDERS", json=EUREKA_BODY)
    await client.post("/eureka/apps/ORDERS", json={"instance": {**EUREKA_BODY["instance"], "instanceId": "o-2"}})
    await client.delete("/eureka/apps/ORDERS/o-2")
    delta = (await client.get("/eureka/apps/delta", headers={"Accept": "application/json"})).json()["applications"]
    actions = {i["instanceId"]: i["actionType"] for a in delta["application"] for i in a["instance"]}
    assert actions == {"o-1": "ADDED", "o-2": "DELETED"}
    assert delta["apps__hashcode"] == "UP_1_"


async def test_interop_endpoints_take_the_registry_token_as_basic_or_consul_token() -> None:
    app = create_app(Settings(instance_ttl_s=30, auth_token="s3cret-token"), store=MemoryStore())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://registry") as c:
        assert (await c.post("/eureka/apps/ORDERS", json=EUREKA_BODY)).status_code == 401
        basic = await c.post("/eureka/apps/ORDERS", json=EUREKA_BODY, auth=("eureka", "s3cret-token"))
        assert basic.status_code == 204
        register = {"Name": "Pay", "Port": 5000, "Address": "127.0.0.1"}
        assert (await c.put("/v1/agent/service/register", json=register)).status_code == 403
        assert (await c.put("/v1/agent/service/register", json=register,
                            headers={"X-Consul-Token": "s3cret-token"})).status_code == 200
