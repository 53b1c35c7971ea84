"""The REST API of SPEC §1, in process, on the memory store with a hand-moved clock."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from registry_server.errors import StoreUnavailableError
from registry_server.settings import Settings
from registry_server.store.memory import MemoryStore
from tests.support.registry_api import TOKEN, TTL_S, Api, make_api


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    app, clock, metrics = make_api()
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://registry",
                                 headers={"X-Lease-Token": TOKEN}) as http:
        yield Api(http, clock, app, metrics)


def assert_error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = resp.json()["error"]
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    return body


async def test_register_answers_201_with_location_and_the_full_instance(api: Api) -> None:
    resp = await api.register(name="Auth", port=3001, version="1.0.0", description="Authentication service",
                              metadata={"zone": "eu-1"})
    assert resp.status_code == 201
    body = resp.json()
    assert resp.headers["location"] == f"/instances/{body['id']}"
    assert body["id"].startswith("Auth-")
    assert body["host"] == "10.1.2.3", "the host defaults to the request's peer address"
    assert body["url"] == "http://10.1.2.3:3001"
    assert body["health_url"] == "http://10.1.2.3:3001/health"
    assert (body["scheme"], body["health_endpoint"], body["status"]) == ("http", "/health", "UP")
    assert body["registered_at"].endswith("Z") and len(body["registered_at"]) == len("2026-11-27T12:00:00.000Z")
    assert len(body["lease_token"]) >= 16
    got = (await api.http.get(f"/instances/{body['id']}")).json()
    assert "lease_token" not in got, "the lease token is only returned by the register response"
    assert got == {k: v for k, v in body.items() if k != "lease_token"}


async def test_ipv6_hosts_are_bracketed_in_urls(api: Api) -> None:
    body = (await api.register(name="Auth", port=3001, host="::1")).json()
    assert body["url"] == "http://[::1]:3001"


async def test_reregistering_a_client_chosen_id_is_idempotent(api: Api) -> None:
    first = await api.register(name="Auth", port=3001, id="auth-a", version="1")
    api.clock.advance(2)
    again = await api.register(name="Auth", port=3001, id="auth-a", version="2")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["version"] == "2"
    assert again.json()["registered_at"] == first.json()["registered_at"]
    assert again.json()["expires_at"] > first.json()["expires_at"]
    listed = (await api.http.get("/services/Auth")).json()["instances"]
    assert [i["id"] for i in listed] == ["auth-a"]


async def test_an_id_registered_under_another_name_answers_409(api: Api) -> None:
    await api.register(name="Auth", port=3001, id="dup")
    assert_error(await api.register(name="User", port=3002, id="dup"), 409, "instance_id_conflict")


async def test_heartbeat_renews_the_lease_and_changes_status(api: Api) -> None:
    iid = (await api.register(name="Auth", port=3001)).json()["id"]
    api.clock.advance(8)
    resp = await api.http.put(f"/instances/{iid}/heartbeat")
    assert resp.status_code == 200
    api.clock.advance(8)  # 16 s after registering, 8 s after the heartbeat: still live
    resp = await api.http.put(f"/instances/{iid}/heartbeat", json={"status": "DOWN"})
    assert resp.status_code == 200 and resp.json()["status"] == "DOWN"
    assert api.metric("registry_heartbeats_total", service="Auth") == 2


async def test_heartbeat_for_an_unknown_instance_answers_404_instance_not_found(api: Api) -> None:
    assert_error(await api.http.put("/instances/ghost/heartbeat"), 404, "instance_not_found")
    assert api.metric("registry_unknown_heartbeats_total") == 1


async def test_deregister_answers_204_then_404(api: Api) -> None:
    iid = (await api.register(name="Auth", port=3001)).json()["id"]
    resp = await api.http.delete(f"/instances/{iid}")
    assert resp.status_code == 204 and resp.content == b""
    assert_error(await api.http.delete(f"/instances/{iid}"), 404, "instance_not_found")
    assert_error(await api.http.get(f"/instances/{iid}"), 404, "instance_not_found")
    assert api.metric("registry_deregistrations_total", service="Auth") == 1


async def test_instance_lists_are_sorted_by_id_and_filtered(api: Api) -> None:
    await api.register(name="Auth", port=1, id="c", version="2")
    await api.register(name="User", port=2, id="a", status="DOWN")
    await api.register(name="Auth", port=3, id="b", version="1", status="STARTING")
    ids = lambda resp: [i["id"] for i in resp.json()["instances"]]  # noqa: E731
    assert ids(await api.http.get("/instances")) == ["a", "b", "c"]
    assert ids(await api.http.get("/instances", params={"name": "Auth"})) == ["b", "c"]
    assert ids(await api.http.get("/instances", params={"status": "DOWN,STARTING"})) == ["a", "b"]
    assert ids(await api.http.get("/instances", params={"version": "2"})) == ["c"]
    assert ids(await api.http.get("/services/Auth", params={"status": "up"})) == ["c"]
    assert ids(await api.http.get("/services/Auth", params={"version": "1"})) == ["b"]


async def test_a_bad_status_filter_answers_422_naming_the_field(api: Api) -> None:
    body = assert_error(await api.http.get("/services/Auth", params={"status": "UP,SLEEPING"}), 422,
                        "validation_error")
    assert body["details"][0]["field"] == "status"


async def test_services_lists_names_with_counts_by_status(api: Api) -> None:
    await api.register(name="Auth", port=1, id="a1")
    await api.register(name="Auth", port=2, id="a2")
    await api.register(name="Auth", port=3, id="a3", status="DOWN")
    await api.register(name="User", port=4, id="u1")
    resp = await api.http.get("/services")
    assert resp.json() == {"services": [{"name": "Auth", "instances": 3, "statuses": {"DOWN": 1, "UP": 2}},
                                        {"name": "User", "instances": 1, "statuses": {"UP": 1}}]}


async def test_discovery_of_an_unknown_name_is_an_empty_list(api: Api) -> None:
    resp = await api.http.get("/services/Nobody")
    assert resp.status_code == 200 and resp.json() == {"name": "Nobody", "instances": []}


async def test_discovery_of_an_invalid_name_answers_422(api: Api) -> None:
    body = assert_error(await api.http.get("/services/bad name"), 422, "validation_error")
    assert body["details"][0]["field"] == "name"


async def test_an_expired_instance_is_never_returned_even_before_the_sweep(api: Api) -> None:
    iid = (await api.register(name="Auth", port=1)).json()["id"]
    api.clock.advance(TTL_S)
    assert_error(await api.http.get(f"/instances/{iid}"), 404, "instance_not_found")
    assert (await api.http.get("/services/Auth")).json()["instances"] == []
    assert (await api.http.get("/instances")).json()["instances"] == []
    assert (await api.http.get("/services")).json()["services"] == []
    assert_error(await api.http.put(f"/instances/{iid}/heartbeat"), 404, "instance_not_found")


async def test_the_sweep_counts_expiries_and_refreshes_the_instance_gauge(api: Api) -> None:
    await api.register(name="Auth", port=1, id="a1")
    await api.register(name="Auth", port=2, id="a2", status="DOWN")
    await api.sweeper.sweep_once(api.app.state.registry)
    assert api.metric("registry_instances", service="Auth", status="UP") == 1
    assert api.metric("registry_instances", service="Auth", status="DOWN") == 1
    api.clock.advance(5)
    await api.http.put("/instances/a1/heartbeat")
    # Sweeps go on meanwhile, as they do every interval: ten seconds with none would read as the whole
    # fleet having been down, and extend the leases instead.
    assert await api.sweeper.sweep_once(api.app.state.registry) == 0
    api.clock.advance(5)
    assert await api.sweeper.sweep_once(api.app.state.registry) == 1
    assert api.metric("registry_expirations_total", service="Auth") == 1
    assert api.metric("registry_instances", service="Auth", status="UP") == 1
    assert api.metric("registry_instances", service="Auth", status="DOWN") is None, "gone labels are dropped"


@pytest.mark.parametrize(("body", "field"), [
    ({"port": 3001}, "name"),
    ({"name": "Auth"}, "port"),
    ({"name": "Auth", "port": "3001"}, "port"),
    ({"name": "Auth", "port": True}, "port"),
    ({"name": "Auth", "port": 70000}, "port"),
    ({"name": "Auth", "port": 0}, "port"),
    ({"name": "Auth", "port": 1.5}, "port"),
    ({"name": "Auth", "port": 10**40}, "port"),
    ({"name": "bad name", "port": 1}, "name"),
    ({"name": "a/b", "port": 1}, "name"),
    ({"name": "-leading", "port": 1}, "name"),
    ({"name": "x" * 129, "port": 1}, "name"),
    ({"name": "Auth", "port": 1, "status": "SLEEPING"}, "status"),
    ({"name": "Auth", "port": 1, "metadata": {"a": 1}}, "metadata.a"),
    ({"name": "Auth", "port": 1, "metadata": ["a"]}, "metadata"),
    ({"name": "Auth", "port": 1, "metadata": {f"k{n}": "v" for n in range(65)}}, "metadata"),
    ({"name": "Auth", "port": 1, "metadata": {"v": "x" * 1025}}, "metadata.v"),
    ({"name": "Auth", "port": 1, "host": "bad host"}, "host"),
    ({"name": "Auth", "port": 1, "host": "a" * 254}, "host"),
    ({"name": "Auth", "port": 1, "host": "0.0.0.0"}, "host"),
    ({"name": "Auth", "port": 1, "host": "::"}, "host"),
    ({"name": "Auth", "port": 1, "host": "0:0:0:0:0:0:0:0"}, "host"),
    ({"name": "Auth", "port": 1, "scheme": "ftp"}, "scheme"),
    ({"name": "Auth", "port": 1, "health_endpoint": "health"}, "health_endpoint"),
    ({"name": "Auth", "port": 1, "id": "has space"}, "id"),
    ({"name": "Auth", "port": 1, "lease_token": "short"}, "lease_token"),
])
async def test_invalid_registrations_answer_422_naming_the_field(api: Api, body: dict[str, Any],
                                                                 field: str) -> None:
    err = assert_error(await api.http.post("/instances", json=body), 422, "validation_error")
    assert field in [d["field"] for d in err["details"]], err


async def test_every_invalid_field_is_reported_at_once(api: Api) -> None:
    err = assert_error(await api.http.post("/instances", json={"name": "a b", "port": "x"}), 422,
                       "validation_error")
    assert {d["field"] for d in err["details"]} == {"name", "port"}


@pytest.mark.parametrize("raw", [b"{", b"not json", b'{"name": "Auth", "port": 1,}', b"\xff\xfe{}",
                                 b"[" * 100_00 + b"]" * 100_00])
async def test_malformed_json_answers_400(api: Api, raw: bytes) -> None:
    resp = await api.http.post("/instances", content=raw, headers={"content-type": "application/json"})
    assert_error(resp, 400, "malformed_json")


async def test_a_json_body_that_is_not_an_object_answers_422(api: Api) -> None:
    resp = await api.http.post("/instances", content=b"[1, 2]", headers={"content-type": "application/json"})
    assert_error(resp, 422, "validation_error")


async def test_a_wrong_content_type_answers_400(api: Api) -> None:
    resp = await api.http.post("/instances", content=b"name=Auth&port=1",
                               headers={"content-type": "application/x-www-form-urlencoded"})
    assert_error(resp, 400, "unsupported_content_type")


async def test_a_body_over_64_kib_answers_413_by_length_or_by_stream(api: Api) -> None:
    big = json.dumps({"name": "Auth", "port": 1, "description": "x" * 70_000}).encode()
    assert_error(await api.http.post("/instances", content=big, headers={"content-type": "application/json"}),
                 413, "payload_too_large")

    async def chunks() -> AsyncIterator[bytes]:  # no content-length: counted while streaming
        for offset in range(0, len(big), 8192):
            yield big[offset:offset + 8192]

    assert_error(await api.http.post("/instances", content=chunks(), headers={"content-type": "application/json"}),
                 413, "payload_too_large")


async def test_unknown_routes_and_methods_answer_json_errors(api: Api) -> None:
    assert_error(await api.http.get("/nope"), 404, "not_found")
    assert_error(await api.http.patch("/instances"), 405, "method_not_allowed")


async def test_write_endpoints_need_the_bearer_token_when_auth_is_on() -> None:
    app, _clock, _metrics = make_api(Settings(instance_ttl_s=TTL_S, auth_token="t0ken"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as http:
        assert_error(await http.post("/instances", json={"name": "A", "port": 1}), 401, "unauthorized")
        assert_error(await http.post("/instances", json={"name": "A", "port": 1},
                                     headers={"authorization": "Bearer wrong"}), 401, "unauthorized")
        ok = await http.post("/instances", json={"name": "A", "port": 1}, headers={"authorization": "Bearer t0ken"})
        assert ok.status_code == 201
        iid = ok.json()["id"]
        assert_error(await http.put(f"/instances/{iid}/heartbeat"), 401, "unauthorized")
        assert_error(await http.delete(f"/instances/{iid}"), 401, "unauthorized")
        assert (await http.get("/services/A")).status_code == 200, "reads stay open"


async def test_http_metrics_label_the_route_template_not_the_raw_path(api: Api) -> None:
    iid = (await api.register(name="Auth", port=1)).json()["id"]
    await api.http.get(f"/instances/{iid}")
    await api.http.get("/instances/does-not-exist")
    await api.http.get("/definitely/not/a/route")
    text = (await api.http.get("/metrics")).text
    assert 'registry_http_requests_total{method="GET",route="/instances/{id}",status="200"} 1.0' in text
    assert 'registry_http_requests_total{method="GET",route="/instances/{id}",status="404"} 1.0' in text
    assert 'route="unmatched"' in text
    assert iid not in text
    assert 'registry_http_request_duration_seconds_bucket{le="0.001",method="POST",route="/instances"}' in text
    assert api.metric("registry_registrations_total", service="Auth") == 1


async def test_every_spec_metric_is_exposed(api: Api) -> None:
    iid = (await api.register(name="Auth", port=1)).json()["id"]
    await api.http.put(f"/instances/{iid}/heartbeat")
    await api.sweeper.sweep_once(api.app.state.registry)
    text = (await api.http.get("/metrics")).text
    for name in ["registry_registrations_total", "registry_deregistrations_total", "registry_expirations_total",
                 "registry_heartbeats_total", "registry_unknown_heartbeats_total", "registry_instances",
                 "registry_http_requests_total", "registry_http_request_duration_seconds",
                 "registry_store_errors_total"]:
        assert f"# TYPE {name} " in text, name


async def test_healthz_reports_the_store(api: Api) -> None:
    resp = await api.http.get("/healthz")
    assert resp.status_code == 200 and resp.json() == {"status": "ok", "store": "memory", "expiry_protection": False,
                                                       "shedding": False, "holding": False,
                                                       "heartbeat_spacing_s": None, "fleet_revival": None}


class DownStore(MemoryStore):
    """A memory store whose backing service is gone: every call fails as an unreachable Redis would."""

    async def ping(self) -> None:
        raise StoreUnavailableError("ping", "connection refused")

    async def register(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailableError("register", "connection refused")

    async def service(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailableError("service", "connection refused")


async def test_an_unreachable_store_answers_503_with_the_error_body() -> None:
    app, _clock, metrics = make_api(store=DownStore())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as http:
        health = await http.get("/healthz")
        assert health.status_code == 503 and health.json()["status"] == "unavailable"
        resp = await http.post("/instances", json={"name": "A", "port": 1})
        assert_error(resp, 503, "store_unavailable")
        assert resp.headers["retry-after"] == "1"
        assert_error(await http.get("/services/A"), 503, "store_unavailable")
    assert metrics.get_sample_value("registry_store_errors_total", {"operation": "register"}) == 1
    assert metrics.get_sample_value("registry_store_errors_total", {"operation": "service"}) == 1


async def test_openapi_documents_every_route_with_the_validation_schema(api: Api) -> None:
    from registry_server.schemas import RegisterRequest

    doc = (await api.http.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    from starlette.routing import Route

    interop_and_ui = ("/ui", "/eureka", "/v1/", "/prometheus")  # documented in the README, not in this document
    pages = {"/", "/docs"}  # the redirect to the console and the page of this very document
    routes = {(r.path, m.lower()) for r in api.app.routes if isinstance(r, Route)
              and not r.path.startswith(interop_and_ui) and r.path not in pages
              for m in (r.methods or []) if m != "HEAD"}
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert documented == routes
    schema = doc["components"]["schemas"]["RegisterRequest"]
    assert set(schema["required"]) == {"name", "port"}
    assert set(schema["properties"]) == set(RegisterRequest.model_fields)
    assert schema["properties"]["port"]["maximum"] == 65535


async def test_a_new_services_counters_start_at_zero_so_rates_see_the_first_event(api: Api) -> None:
    await api.register(name="Auth", port=1)
    for name in ("registry_deregistrations_total", "registry_expirations_total", "registry_heartbeats_total"):
        assert api.metric(name, service="Auth") == 0, name
