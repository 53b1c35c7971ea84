"""Lease tokens per instance, the admin token, and protected reads."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from registry_server.app import create_app
from registry_server.settings import Settings
from registry_server.store.memory import MemoryStore
from tests.support.clock import FakeClock

OWN = "own-lease-token-0123456789"


def client(settings: Settings) -> httpx.AsyncClient:
    app = create_app(settings, store=MemoryStore(), clock=FakeClock())
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with client(Settings(admin_token="admin-secret")) as c:
        yield c


async def registered(http: httpx.AsyncClient, **extra: object) -> dict[str, str]:
    resp = await http.post("/instances", json={"name": "Auth", "port": 1, "host": "h", "id": "a", **extra})
    assert resp.status_code == 201
    body: dict[str, str] = resp.json()
    return body


async def test_the_register_response_returns_the_clients_token_or_a_generated_one(http: httpx.AsyncClient) -> None:
    assert (await registered(http, lease_token=OWN))["lease_token"] == OWN
    resp = await http.post("/instances", json={"name": "Auth", "port": 1, "host": "h", "id": "b"})
    assert len(resp.json()["lease_token"]) >= 16


@pytest.mark.parametrize("headers", [{}, {"X-Lease-Token": "someone-elses-token-00000"}, {"X-Lease-Token": ""}])
async def test_renewing_removing_or_reregistering_without_the_token_is_403(http: httpx.AsyncClient,
                                                                            headers: dict[str, str]) -> None:
    await registered(http, lease_token=OWN)
    for resp in (await http.put("/instances/a/heartbeat", headers=headers),
                 await http.delete("/instances/a", headers=headers),
                 await http.post("/instances", json={"name": "Auth", "port": 2, "host": "h", "id": "a"},
                                 headers=headers)):
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"]["code"] == "lease_token_mismatch"
    assert (await http.get("/instances/a")).json()["port"] == 1, "nothing changed"


async def test_the_lease_token_renews_removes_and_reregisters(http: httpx.AsyncClient) -> None:
    await registered(http, lease_token=OWN)
    own = {"X-Lease-Token": OWN}
    assert (await http.put("/instances/a/heartbeat", headers=own)).status_code == 200
    again = await http.post("/instances", json={"name": "Auth", "port": 2, "host": "h", "id": "a", "lease_token": OWN},
                            headers=own)
    assert again.status_code == 200
    assert (await http.delete("/instances/a", headers=own)).status_code == 204


async def test_the_admin_token_needs_no_lease_token(http: httpx.AsyncClient) -> None:
    await registered(http, lease_token=OWN)
    admin = {"Authorization": "Bearer admin-secret"}
    assert (await http.put("/instances/a/heartbeat", headers=admin)).status_code == 200
    assert (await http.delete("/instances/a", headers=admin)).status_code == 204


async def test_unknown_ids_answer_404_before_any_token_check(http: httpx.AsyncClient) -> None:
    resp = await http.put("/instances/ghost/heartbeat")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "instance_not_found"


async def test_an_expired_id_may_be_taken_without_the_old_token() -> None:
    clock = FakeClock()
    app = create_app(Settings(instance_ttl_s=5), store=MemoryStore(), clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as http:
        await registered(http, lease_token=OWN)
        clock.advance(5)
        resp = await http.post("/instances", json={"name": "Auth", "port": 1, "host": "h", "id": "a"})
        assert resp.status_code == 201


async def test_the_shared_write_token_does_not_waive_lease_tokens() -> None:
    async with client(Settings(auth_token="services-share-this")) as http:
        bearer = {"Authorization": "Bearer services-share-this"}
        resp = await http.post("/instances", json={"name": "Auth", "port": 1, "host": "h", "id": "a",
                                                   "lease_token": OWN}, headers=bearer)
        assert resp.status_code == 201
        assert (await http.delete("/instances/a", headers=bearer)).status_code == 403
        assert (await http.delete("/instances/a", headers={**bearer, "X-Lease-Token": OWN})).status_code == 204


async def test_reads_need_a_token_when_the_read_token_is_set() -> None:
    settings = Settings(read_token="reader", auth_token="writer", admin_token="admin")
    async with client(settings) as http:
        for path in ("/services", "/services/Auth", "/instances", "/instances/a", "/events"):
            resp = await http.get(path)
            assert resp.status_code == 401, path
            assert resp.json()["error"]["code"] == "unauthorized"
        for token in ("reader", "writer", "admin"):
            assert (await http.get("/services", headers={"Authorization": f"Bearer {token}"})).status_code == 200
        assert (await http.get("/services", headers={"Authorization": "Bearer nope"})).status_code == 401
        for open_path in ("/healthz", "/metrics", "/openapi.json"):
            assert (await http.get(open_path)).status_code == 200, open_path
