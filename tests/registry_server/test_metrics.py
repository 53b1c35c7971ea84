"""The registry's own metrics: watches timed apart from requests, the standard process and Python series,
and a bounded ``method`` label."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.types import Message

from registry_server.app import create_app
from registry_server.change_hub import ChangeHub
from registry_server.settings import Settings
from registry_server.store.memory import MemoryStore
from tests.support.clock import FakeClock

TOKEN = "lease-token-of-the-test-0001"


@pytest.fixture
def metrics() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def app(metrics: CollectorRegistry) -> AsyncIterator[Starlette]:
    application = create_app(Settings(instance_ttl_s=30), store=MemoryStore(), clock=FakeClock(),
                             metrics_registry=metrics)
    hub: ChangeHub = application.state.hub
    hub.start()  # the lifespan does this in a served app; the ASGI test transport runs no lifespan
    yield application
    await hub.stop()


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r", timeout=30) as client:
        resp = await client.post("/instances", json={"name": "Auth", "port": 1, "host": "h", "id": "a",
                                                     "lease_token": TOKEN})
        assert resp.status_code == 201, resp.text
        yield client


async def test_a_blocking_query_is_timed_as_a_watch_not_as_a_request(http: httpx.AsyncClient,
                                                                     metrics: CollectorRegistry) -> None:
    route = {"method": "GET", "route": "/services/{name}"}
    assert (await http.get("/services/Auth", params={"index": "0", "wait": "5s"})).status_code == 200
    assert metrics.get_sample_value("registry_watch_duration_seconds_count", {"kind": "blocking"}) == 1
    assert metrics.get_sample_value("registry_http_request_duration_seconds_count", route) is None
    assert metrics.get_sample_value("registry_http_requests_total", {**route, "status": "200"}) == 1

    assert (await http.get("/services/Auth")).status_code == 200  # no index: an ordinary request
    assert metrics.get_sample_value("registry_http_request_duration_seconds_count", route) == 1
    assert metrics.get_sample_value("registry_watch_duration_seconds_count", {"kind": "blocking"}) == 1


async def test_a_consul_blocking_query_is_timed_as_a_watch(http: httpx.AsyncClient,
                                                          metrics: CollectorRegistry) -> None:
    # Auth changed after index 1 - 1: the blocking query answers at once
    assert (await http.get("/v1/catalog/service/Auth", params={"index": "1", "wait": "5s"})).status_code == 200
    assert metrics.get_sample_value("registry_watch_duration_seconds_count", {"kind": "blocking"}) == 1
    assert metrics.get_sample_value("registry_http_request_duration_seconds_count",
                                    {"method": "GET", "route": "/v1/catalog/service/{name}"}) is None


async def test_a_change_stream_is_timed_as_a_watch_when_it_ends(app: Starlette, metrics: CollectorRegistry) -> None:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": "/events", "raw_path": b"/events", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"r")], "client": ("127.0.0.1", 1), "server": ("r", 80)}
    started = asyncio.Event()
    leave = asyncio.Event()
    sent: list[Message] = []

    async def receive() -> Message:
        await leave.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        started.set()

    served = asyncio.create_task(app(scope, receive, send))
    await asyncio.wait_for(started.wait(), 10)
    assert sent[0]["status"] == 200
    assert metrics.get_sample_value("registry_watch_duration_seconds_count", {"kind": "stream"}) is None
    leave.set()  # the consumer goes away
    await asyncio.wait_for(served, 10)
    assert metrics.get_sample_value("registry_watch_duration_seconds_count", {"kind": "stream"}) == 1
    assert metrics.get_sample_value("registry_http_request_duration_seconds_count",
                                    {"method": "GET", "route": "/events"}) is None


async def test_the_registry_exports_the_standard_process_and_python_series(http: httpx.AsyncClient) -> None:
    text = (await http.get("/metrics")).text
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                 "process_start_time_seconds", "python_info", "python_gc_collections_total"):
        assert f"\n{name}" in text, name


async def test_an_unknown_method_is_counted_as_other(http: httpx.AsyncClient, metrics: CollectorRegistry) -> None:
    assert (await http.request("BREW", "/services/Auth")).status_code == 405
    assert metrics.get_sample_value("registry_http_requests_total",
                                    {"method": "other", "route": "/services/{name}", "status": "405"}) == 1
    assert metrics.get_sample_value("registry_http_requests_total",
                                    {"method": "BREW", "route": "/services/{name}", "status": "405"}) is None
