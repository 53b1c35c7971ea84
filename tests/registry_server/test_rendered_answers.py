"""Discovery answers are served again briefly, but never stale on membership, status or expiry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from registry_server.app import create_app
from registry_server.settings import Settings
from registry_server.store.memory import MemoryStore
from tests.support.clock import FakeClock

TOKEN = "rendered-answers-token-01"


class CountingStore(MemoryStore):
    reads = 0

    async def service(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        return await super().service(*args, **kwargs)


@pytest.fixture
async def setup() -> AsyncIterator[tuple[httpx.AsyncClient, CountingStore, FakeClock]]:
    store, clock = CountingStore(), FakeClock()
    app = create_app(Settings(instance_ttl_s=10), store=store, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r",
                                 headers={"X-Lease-Token": TOKEN}) as http:
        yield http, store, clock


async def register(http: httpx.AsyncClient, iid: str) -> None:
    resp = await http.post("/instances", json={"name": "A", "port": 1, "host": "h", "id": iid, "lease_token": TOKEN})
    assert resp.status_code == 201


async def test_a_repeated_discovery_is_served_without_reading_the_store(setup: Any) -> None:
    http, store, _clock = setup
    await register(http, "a")
    first = await http.get("/services/A")
    reads = store.reads
    again = await http.get("/services/A")
    assert store.reads == reads
    assert again.content == first.content
    assert again.headers["x-registry-index"] == first.headers["x-registry-index"]
    other_filter = await http.get("/services/A", params={"status": "DOWN"})
    assert other_filter.json()["instances"] == [], "each filter has its own answer"


async def test_a_change_through_this_replica_shows_at_once(setup: Any) -> None:
    http, _store, _clock = setup
    await register(http, "a")
    await http.get("/services/A")
    await register(http, "b")
    assert [i["id"] for i in (await http.get("/services/A")).json()["instances"]] == ["a", "b"]
    assert (await http.put("/instances/a/heartbeat", json={"status": "DOWN"})).status_code == 200
    assert (await http.get("/services/A", params={"status": "UP"})).json()["instances"][0]["id"] == "b"
    assert (await http.delete("/instances/b")).status_code == 204
    assert [i["id"] for i in (await http.get("/services/A")).json()["instances"]] == ["a"]


async def test_a_heartbeat_repeating_the_status_keeps_the_answer_and_a_new_status_drops_it(setup: Any) -> None:
    http, store, _clock = setup
    await register(http, "a")
    await http.get("/services/A")
    reads = store.reads
    assert (await http.put("/instances/a/heartbeat", json={"status": "UP"})).status_code == 200
    await http.get("/services/A")
    assert store.reads == reads, "the manager's every heartbeat says UP: that changes nothing a reader sees"
    assert (await http.put("/instances/a/heartbeat", json={"status": "DOWN"})).status_code == 200
    assert (await http.get("/services/A")).json()["instances"][0]["status"] == "DOWN"
    assert store.reads == reads + 1


async def test_heartbeat_timestamps_lag_at_most_half_a_second(setup: Any) -> None:
    http, _store, clock = setup
    await register(http, "a")
    before = (await http.get("/services/A")).json()["instances"][0]["last_heartbeat"]
    clock.advance(0.2)
    assert (await http.put("/instances/a/heartbeat")).status_code == 200
    assert (await http.get("/services/A")).json()["instances"][0]["last_heartbeat"] == before
    clock.advance(0.3)
    assert (await http.get("/services/A")).json()["instances"][0]["last_heartbeat"] != before


async def test_an_answer_is_never_served_past_its_first_expiry(setup: Any) -> None:
    http, _store, clock = setup
    await register(http, "a")
    clock.advance(9.8)
    assert [i["id"] for i in (await http.get("/services/A")).json()["instances"]] == ["a"]
    clock.advance(0.2)  # the lease ran out, inside what would otherwise be the answer's half second
    assert (await http.get("/services/A")).json()["instances"] == []
