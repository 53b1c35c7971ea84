"""``PUT /instances/{id}/heartbeat``, taken to its endpoint ahead of the router but inside every other layer:
every body form, every error answered as the other endpoints answer them, and its requests counted like
the others."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx
import pytest

from registry_server.app import RegistryApp
from registry_server.errors import StoreUnavailableError
from registry_server.model import Instance, InstanceStatus
from registry_server.settings import Settings
from registry_server.store.memory import MemoryStore
from tests.support.registry_api import TOKEN, Api, make_api

ROUTE = "/instances/{id}/heartbeat"


async def _api(settings: Settings | None = None, store: MemoryStore | None = None) -> AsyncIterator[Api]:
    app, clock, metrics = make_api(settings, store)
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://registry",
                                 headers={"X-Lease-Token": TOKEN}) as http:
        yield Api(http, clock, app, metrics)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async for a in _api(Settings(instance_ttl_s=10.0, max_body_bytes=256)):
        yield a


@pytest.fixture
async def guarded() -> AsyncIterator[Api]:
    async for a in _api(Settings(instance_ttl_s=10.0, auth_token="write-token", admin_token="admin-token")):
        yield a


async def _registered(api: Api, iid: str = "hb-1", **headers: str) -> None:
    answer = await api.http.post("/instances", json={"lease_token": TOKEN, "id": iid, "name": "Hb", "port": 80,
                                                     "host": "10.0.0.1"}, headers=headers)
    assert answer.status_code == 201, answer.text


@pytest.mark.parametrize(("body", "status"), [
    (None, "UP"),
    (b"", "UP"),
    (b'{"status": "DOWN"}', "DOWN"),
    (b'{"status":"DOWN"}', "DOWN"),
    (b'{ "status" : "STARTING" }', "STARTING"),
    (b'{"status": "STOPPING", "note": "ignored"}', "STOPPING"),
    (b"{}", "UP"),
    (b'{"status": null}', "UP"),
])
async def test_every_body_form_renews_and_sets_what_it_asks(api: Api, body: bytes | None, status: str) -> None:
    await _registered(api)
    headers = {"content-type": "application/json"} if body else {}
    answer = await api.http.put("/instances/hb-1/heartbeat", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["status"] == status
    assert answer.json()["id"] == "hb-1"


async def test_a_chunked_body_is_read_too(api: Api) -> None:
    await _registered(api)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"status": '
        yield b'"DOWN"}'

    answer = await api.http.put("/instances/hb-1/heartbeat", content=chunks(),
                                headers={"content-type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "DOWN"


@pytest.mark.parametrize(("body", "content_type", "code", "error"), [
    (b'{"status": "SLEEPING"}', "application/json", 422, "validation_error"),
    (b'{"status": ["UP"]}', "application/json", 422, "validation_error"),
    (b'{"status": "UP"', "application/json", 400, "malformed_json"),
    (b'{"status": "UP"}', "text/plain", 400, "unsupported_content_type"),
    (b'{"status": "UP", "pad": "' + b"x" * 300 + b'"}', "application/json", 413, "payload_too_large"),
])
async def test_a_bad_body_is_refused_with_a_json_error(api: Api, body: bytes, content_type: str, code: int,
                                                       error: str) -> None:
    await _registered(api)
    answer = await api.http.put("/instances/hb-1/heartbeat", content=body, headers={"content-type": content_type})
    assert answer.status_code == code, answer.text
    assert answer.json()["error"]["code"] == error
    if code == 422:
        assert answer.json()["error"]["details"][0]["field"] == "status"
    assert (await api.http.get("/instances/hb-1")).json()["status"] == "UP", "a refused heartbeat changes nothing"


async def test_unknown_ids_answer_404_and_are_counted(api: Api) -> None:
    answer = await api.http.put("/instances/nobody/heartbeat")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "instance_not_found"
    assert api.metric("registry_unknown_heartbeats_total") == 1.0
    assert api.metric("registry_http_requests_total", method="PUT", route=ROUTE, status="404") == 1.0


async def test_requests_are_counted_under_the_route_template(api: Api) -> None:
    await _registered(api)
    for _ in range(3):
        assert (await api.http.put("/instances/hb-1/heartbeat")).status_code == 200
    assert api.metric("registry_http_requests_total", method="PUT", route=ROUTE, status="200") == 3.0
    assert api.metric("registry_http_request_duration_seconds_count", method="PUT", route=ROUTE) == 3.0
    assert api.metric("registry_heartbeats_total", service="Hb") == 3.0


async def test_other_methods_on_the_path_answer_405(api: Api) -> None:
    answer = await api.http.get("/instances/hb-1/heartbeat")
    assert answer.status_code == 405
    assert answer.json()["error"]["code"] == "method_not_allowed"


async def test_tokens_are_checked_as_on_every_other_write(guarded: Api) -> None:
    await _registered(guarded, authorization="Bearer write-token")
    missing = await guarded.http.put("/instances/hb-1/heartbeat")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json()["error"]["code"] == "unauthorized"
    wrong_lease = await guarded.http.put("/instances/hb-1/heartbeat", headers={
        "authorization": "Bearer write-token", "x-lease-token": "not-the-lease"})
    assert wrong_lease.status_code == 403
    assert wrong_lease.json()["error"]["code"] == "lease_token_mismatch"
    no_lease_admin = await guarded.http.put("/instances/hb-1/heartbeat", headers={
        "authorization": "Bearer admin-token", "x-lease-token": ""})
    assert no_lease_admin.status_code == 200, "the admin renews without the lease token"
    ok = await guarded.http.put("/instances/hb-1/heartbeat", headers={"authorization": "Bearer write-token"})
    assert ok.status_code == 200


async def _call(api: Api, messages: list[dict[str, Any]], *, hang: bool) -> list[MutableMapping[str, Any]]:
    """The app called directly over ASGI, with a client that sends ``messages`` and then hangs or leaves."""
    sent: list[MutableMapping[str, Any]] = []
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        if hang:
            await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "PUT", "scheme": "http",
             "path": "/instances/hb-1/heartbeat", "raw_path": b"/instances/hb-1/heartbeat", "root_path": "",
             "query_string": b"", "client": ("10.1.2.3", 5555), "server": ("registry", 80),
             "headers": [(b"content-type", b"application/json"), (b"content-length", b"16"),
                         (b"x-lease-token", TOKEN.encode())]}
    await api.app(scope, receive, send)
    return sent


async def test_a_body_that_never_arrives_is_answered_408_after_the_read_timeout() -> None:
    async for api in _api(Settings(instance_ttl_s=10.0, read_timeout_s=0.2)):
        await _registered(api)
        sent = await asyncio.wait_for(_call(api, [{"type": "http.request", "body": b'{"status"', "more_body": True}],
                                            hang=True), timeout=5)
        assert sent[0]["status"] == 408
        assert (b"connection", b"close") in sent[0]["headers"]


async def test_a_client_that_leaves_before_its_body_gets_no_answer_and_changes_nothing(api: Api) -> None:
    await _registered(api)
    sent = await _call(api, [{"type": "http.request", "body": b'{"status": ', "more_body": True}], hang=False)
    assert sent == []
    assert (await api.http.get("/instances/hb-1")).json()["status"] == "UP"


class FailingStore(MemoryStore):
    """A memory store whose reads and heartbeats fail as ``failure`` says, once it is set."""

    def __init__(self) -> None:
        super().__init__()
        self.failure: Exception | None = None

    def _fail(self) -> None:
        if self.failure is not None:
            raise self.failure

    async def heartbeat(self, instance_id: str, status: InstanceStatus | None, now_ms: int, ttl_ms: int, *,
                        lease_token_hash: str | None = None) -> Any:
        self._fail()
        return await super().heartbeat(instance_id, status, now_ms, ttl_ms, lease_token_hash=lease_token_hash)

    async def get(self, instance_id: str, now_ms: int) -> Instance | None:
        self._fail()
        return await super().get(instance_id, now_ms)


@pytest.mark.parametrize(("failure", "status", "code"), [
    (StoreUnavailableError("heartbeat", "connection refused"), 503, "store_unavailable"),
    (RuntimeError("a bug"), 500, "internal_error"),
])
async def test_a_failing_heartbeat_is_answered_and_counted_by_the_same_layers_as_a_routed_request(
        failure: Exception, status: int, code: str) -> None:
    store = FailingStore()
    async for api in _api(Settings(instance_ttl_s=10.0), store):
        await _registered(api)
        store.failure = failure
        heartbeat = await api.http.put("/instances/hb-1/heartbeat")
        read = await api.http.get("/instances/hb-1")
        assert heartbeat.status_code == read.status_code == status, heartbeat.text
        assert heartbeat.json()["error"]["code"] == read.json()["error"]["code"] == code
        assert heartbeat.headers.get("retry-after") == read.headers.get("retry-after")
        assert api.metric("registry_http_requests_total", method="PUT", route=ROUTE, status=str(status)) == 1.0
        assert api.metric("registry_http_requests_total", method="GET", route="/instances/{id}",
                          status=str(status)) == 1.0


async def test_a_refused_heartbeat_is_answered_byte_for_byte_as_a_refused_registration(guarded: Api) -> None:
    heartbeat = await guarded.http.put("/instances/hb-1/heartbeat")
    registration = await guarded.http.post("/instances", json={"name": "Hb", "port": 80})
    assert heartbeat.status_code == registration.status_code == 401
    assert heartbeat.content == registration.content
    assert heartbeat.headers["www-authenticate"] == registration.headers["www-authenticate"]
    assert guarded.metric("registry_http_requests_total", method="PUT", route=ROUTE, status="401") == 1.0


async def test_a_body_over_the_limit_is_refused_as_on_a_registration(api: Api) -> None:
    """The heartbeat and the routes share one body reader: the same limit, the same answer."""
    await _registered(api)
    padded = b'{"pad": "' + b"x" * 300 + b'"}'
    headers = {"content-type": "application/json"}
    heartbeat = await api.http.put("/instances/hb-1/heartbeat", content=padded, headers=headers)
    registration = await api.http.post("/instances", content=padded, headers=headers)
    assert heartbeat.status_code == registration.status_code == 413
    assert heartbeat.content == registration.content
    assert api.metric("registry_http_requests_total", method="PUT", route=ROUTE, status="413") == 1.0


async def test_a_client_that_leaves_before_its_body_is_counted_as_gone(api: Api) -> None:
    await _registered(api)
    await _call(api, [{"type": "http.request", "body": b'{"status": ', "more_body": True}], hang=False)
    assert api.metric("registry_http_requests_total", method="PUT", route=ROUTE, status="499") == 1.0


class Seen:
    """A middleware added with ``add_middleware``: records the path of every request it passes on."""

    def __init__(self, app: Any, paths: list[str]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)


async def test_every_layer_sees_a_heartbeat_and_added_middleware_too() -> None:
    """Admission counts it in flight, the metrics count it, the cross-origin rule gives a listed origin
    its headers, and middleware added with ``add_middleware`` sees it before the heartbeat shortcut."""
    console = "https://console.example"
    app, clock, metrics = make_api(Settings(instance_ttl_s=10.0, allowed_origins=(console,)))
    assert isinstance(app, RegistryApp)
    paths: list[str] = []
    app.add_middleware(Seen, paths=paths)
    admission = app.build_middleware_stack().admission
    registry = app.state.registry
    in_flight: list[int] = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry",
                                 headers={"X-Lease-Token": TOKEN}) as http:
        api = Api(http, clock, app, metrics)
        await _registered(api)
        original = registry.heartbeat

        async def heartbeat(*args: Any, **kwargs: Any) -> Any:
            in_flight.append(admission.in_flight)
            return await original(*args, **kwargs)

        registry.heartbeat = heartbeat
        answer = await http.put("/instances/hb-1/heartbeat", headers={"origin": console})
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == console
    assert in_flight == [1], "admitted, and in flight while its endpoint runs"
    assert paths == ["/instances", "/instances/hb-1/heartbeat"]
    assert api.metric("registry_http_requests_total", method="PUT", route=ROUTE, status="200") == 1.0
    assert admission.in_flight == 0
