"""Blocking discovery queries, ETags and watcher limits, in process on the memory store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from registry_server.app import create_app
from registry_server.change_hub import ChangeHub
from registry_server.settings import Settings
from registry_server.store.memory import MemoryStore
from tests.support.clock import FakeClock

TOKEN = "lease-token-of-the-test-0001"


@pytest.fixture
async def app() -> AsyncIterator[Starlette]:
    application = create_app(Settings(instance_ttl_s=30, max_watchers=3), store=MemoryStore(), clock=FakeClock())
    hub: ChangeHub = application.state.hub
    hub.start()  # the lifespan does this in a served app; the ASGI test transport runs no lifespan
    yield application
    await hub.stop()


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r", timeout=30,
                                 headers={"X-Lease-Token": TOKEN}) as client:
        yield client


async def register(http: httpx.AsyncClient, iid: str, **extra: object) -> None:
    resp = await http.post("/instances", json={"name": "Auth", "port": 1, "host": "h", "id": iid,
                                               "lease_token": TOKEN, **extra})
    assert resp.status_code in (200, 201), resp.text


async def test_discovery_carries_the_revision_and_a_weak_etag(http: httpx.AsyncClient) -> None:
    empty = await http.get("/services/Auth")
    assert empty.headers["x-registry-index"] == "0"
    await register(http, "a")
    resp = await http.get("/services/Auth")
    assert resp.headers["x-registry-index"] == "1"
    assert resp.headers["etag"].startswith('W/"1-')
    filtered = await http.get("/services/Auth", params={"status": "UP"})
    assert filtered.headers["etag"] != resp.headers["etag"], "the filter is part of the representation"


async def test_if_none_match_answers_304_until_the_service_changes(http: httpx.AsyncClient) -> None:
    await register(http, "a")
    first = await http.get("/services/Auth")
    etag = first.headers["etag"]
    assert (await http.put("/instances/a/heartbeat")).status_code == 200  # a heartbeat is no change
    unchanged = await http.get("/services/Auth", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged.headers["x-registry-index"] == first.headers["x-registry-index"]
    await register(http, "b")
    changed = await http.get("/services/Auth", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert [i["id"] for i in changed.json()["instances"]] == ["a", "b"]


async def test_a_blocking_query_behind_the_revision_answers_at_once(http: httpx.AsyncClient) -> None:
    await register(http, "a")
    await register(http, "b")
    resp = await asyncio.wait_for(http.get("/services/Auth", params={"index": "1", "wait": "60s"}), 5)
    assert resp.headers["x-registry-index"] == "2"


async def test_a_blocking_query_ahead_of_the_revision_answers_at_once(http: httpx.AsyncClient) -> None:
    """An index from before a store reset must not hang until the wait runs out."""
    await register(http, "a")
    resp = await asyncio.wait_for(http.get("/services/Auth", params={"index": "57", "wait": "60s"}), 5)
    assert resp.headers["x-registry-index"] == "1"


async def test_a_blocking_query_wakes_when_the_service_changes(http: httpx.AsyncClient) -> None:
    await register(http, "a")
    waiting = asyncio.create_task(http.get("/services/Auth", params={"index": "1", "wait": "60s"}))
    other = await asyncio.wait_for(http.get("/services/Other", params={"index": "0", "wait": "50ms"}), 5)
    assert other.headers["x-registry-index"] == "0", "a change elsewhere does not answer this watcher"
    assert not waiting.done()
    assert (await http.put("/instances/a/heartbeat", json={"status": "DOWN"})).status_code == 200
    resp = await asyncio.wait_for(waiting, 5)
    assert resp.headers["x-registry-index"] == "2"
    assert resp.json()["instances"][0]["status"] == "DOWN"


async def test_a_blocking_query_answers_unchanged_when_its_wait_runs_out(http: httpx.AsyncClient) -> None:
    await register(http, "a")
    resp = await asyncio.wait_for(http.get("/services/Auth", params={"index": "1", "wait": "100ms"}), 5)
    assert resp.status_code == 200
    assert resp.headers["x-registry-index"] == "1"


@pytest.mark.parametrize(("param", "value"), [("index", "-1"), ("index", "abc"), ("wait", "soon"), ("wait", "5h")])
async def test_bad_index_or_wait_answers_422_naming_it(http: httpx.AsyncClient, param: str, value: str) -> None:
    resp = await http.get("/services/Auth", params={param: value})
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["field"] == param


async def test_watchers_beyond_the_limit_get_503_with_retry_after(app: Starlette, http: httpx.AsyncClient) -> None:
    hub: ChangeHub = app.state.hub
    waiting = [asyncio.create_task(http.get("/services/Auth", params={"index": "0", "wait": "60s"}))
               for _ in range(3)]
    for _ in range(200):  # let the three take their slots
        if hub._counts["blocking"] == 3:
            break
        await asyncio.sleep(0.01)
    over = await http.get("/services/Auth", params={"index": "0", "wait": "60s"})
    assert over.status_code == 503
    assert over.json()["error"]["code"] == "too_many_watchers"
    assert 1 <= int(over.headers["retry-after"]) <= 5
    plain = await http.get("/services/Auth")
    assert plain.status_code == 200, "plain discovery is not a watcher"
    metrics = (await http.get("/metrics")).text
    assert 'registry_watchers{kind="blocking"} 3.0' in metrics
    hub.close()  # shutdown releases them all at once
    answers = await asyncio.wait_for(asyncio.gather(*waiting), 5)
    assert [a.status_code for a in answers] == [200, 200, 200]


async def test_wakeups_are_counted(http: httpx.AsyncClient) -> None:
    waiting = asyncio.create_task(http.get("/services/Auth", params={"index": "0", "wait": "60s"}))
    await register(http, "a")
    await asyncio.wait_for(waiting, 5)
    assert "registry_watch_wakeups_total 1.0" in (await http.get("/metrics")).text
