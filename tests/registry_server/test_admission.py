"""Admission: beyond the in-flight limit a write is refused at once with 503 + Retry-After, and the leases
that run out while the registry sheds are held, not expired."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from registry_server.api.admission import TARGET_LAG_S, TICK_S, Admission
from registry_server.api.cross_origin import CrossOrigin
from registry_server.api.middleware import FrontLayer
from registry_server.app import create_app
from registry_server.metrics import RegistryMetrics
from registry_server.model import InstanceStatus, Renewal
from registry_server.registry import Registry
from registry_server.settings import Settings
from registry_server.store.memory import MemoryStore
from tests.support.clock import FakeClock

TTL_S = 10


class HeldStore(MemoryStore):
    """A memory store whose heartbeats wait until released: a request in flight for as long as a test needs."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.waiting = 0

    async def heartbeat(self, instance_id: str, status: InstanceStatus | None, now_ms: int, ttl_ms: int, *,
                        lease_token_hash: str | None = None) -> Renewal | None:
        self.waiting += 1
        await self.release.wait()
        return await super().heartbeat(instance_id, status, now_ms, ttl_ms, lease_token_hash=lease_token_hash)


async def until(condition: object, deadline_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not condition():  # type: ignore[operator]
        assert loop.time() < end, "condition not reached before the deadline"
        await asyncio.sleep(0)


async def test_a_write_beyond_the_limit_is_refused_at_once_reads_and_health_still_served() -> None:
    store, clock, metrics = HeldStore(), FakeClock(), CollectorRegistry()
    app = create_app(Settings(instance_ttl_s=TTL_S, max_in_flight=1), store=store, clock=clock,
                     metrics_registry=metrics)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as http:
        created = await http.post("/instances", json={"name": "Auth", "host": "h", "port": 1, "id": "a"})
        assert created.status_code == 201
        lease = {"x-lease-token": created.json()["lease_token"]}
        held = asyncio.create_task(http.put("/instances/a/heartbeat", headers=lease))
        await until(lambda: store.waiting == 1)
        refused = await http.put("/instances/a/heartbeat", headers=lease)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "overloaded"
        again = await http.post("/instances", json={"name": "Auth", "host": "h", "port": 2, "id": "b"})
        assert again.status_code == 503, "registrations are writes too"
        assert (await http.get("/services/Auth")).status_code == 200, "reads have twice the limit"
        health = await http.get("/healthz")
        assert health.status_code == 200 and health.json()["shedding"] is True
        assert metrics.get_sample_value("registry_requests_shed_total") == 2
        store.release.set()
        assert (await held).status_code == 200


async def test_no_lease_runs_out_while_shedding_and_a_real_death_expires_a_ttl_after_it() -> None:
    store, clock, metrics = MemoryStore(), FakeClock(), CollectorRegistry()
    app = create_app(Settings(instance_ttl_s=TTL_S), store=store, clock=clock, metrics_registry=metrics)
    registry: Registry = app.state.registry
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as http:
        tokens = {}
        for port, iid in enumerate(("alive", "dead"), start=1):
            created = await http.post("/instances", json={"name": "Auth", "host": "h", "port": port, "id": iid})
            assert created.status_code == 201
            tokens[iid] = created.json()["lease_token"]
        clock.advance(1)
        registry.protection.shed()  # the registry starts refusing heartbeats (as Admission does)
        for _ in range(2 * TTL_S):  # twenty seconds of overload: no heartbeat gets through, sweeps go on
            clock.advance(1)
            registry.protection.shed()
            assert await registry.sweep() == []
        overload_ended = clock.now_ms()
        clock.advance(0.5)
        assert await registry.sweep() == [], "within the quiet period the leases are still renewed"
        assert registry.protection.shedding_since_ms is not None
        clock.advance(1)
        assert await registry.sweep() == []
        assert registry.protection.shedding_since_ms is None
        assert (metrics.get_sample_value("registry_lease_extensions_total") or 0) >= 2 * 2 * TTL_S
        renewed = await http.put("/instances/alive/heartbeat", headers={"x-lease-token": tokens["alive"]})
        assert renewed.status_code == 200, "no 404, no re-registration"
        expired: list[str] = []
        while not expired:  # "dead" never heartbeats again: it expires one TTL after the overload
            clock.advance(0.5)
            beat = await http.put("/instances/alive/heartbeat", headers={"x-lease-token": tokens["alive"]})
            assert beat.status_code == 200
            expired = [gone.id for gone in await registry.sweep()]
        assert expired == ["dead"]
        assert clock.now_ms() - overload_ended <= (1.5 + TTL_S + 0.5) * 1000, "quiet period + TTL + a sweep"



async def test_a_loop_behind_cuts_the_share_of_writes_and_holds_leases_until_it_catches_up() -> None:
    held: list[float] = []
    release = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/slow":
            await release.wait()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    admission = Admission(8, shed=lambda: held.append(time.monotonic()),
                          refused=Counter("refused", "refused", registry=CollectorRegistry()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_front(app, admission)),
                                 base_url="http://r") as http:
        assert (await http.put("/instances/a/heartbeat")).status_code == 204  # the control starts ticking
        slow = asyncio.create_task(http.get("/slow"))  # a request in flight: the loop has work queued
        await until(lambda: admission.in_flight == 1)
        busy_until = time.monotonic() + 4 * TARGET_LAG_S
        while time.monotonic() < busy_until:  # the fault: the loop kept busy, as a CPU-bound overload does
            pass
        await until(lambda: admission.share < 1.0)
        assert admission.share == 0.8 and held, "one late tick cuts the share and holds the leases"
        release.set()
        assert (await slow).status_code == 204
        await until(lambda: admission.share == 1.0)  # the loop runs on time again: back to all writes
        assert (await http.put("/instances/a/heartbeat")).status_code == 204


async def test_a_late_loop_with_nothing_in_flight_sheds_nothing() -> None:
    held: list[float] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    admission = Admission(8, shed=lambda: held.append(time.monotonic()),
                          refused=Counter("refused", "refused", registry=CollectorRegistry()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_front(app, admission)),
                                 base_url="http://r") as http:
        assert (await http.put("/instances/a/heartbeat")).status_code == 204  # the control starts ticking
        ticks_seen = admission.share
        busy_until = time.monotonic() + 4 * TARGET_LAG_S
        while time.monotonic() < busy_until:  # late, but idle: no request waits
            pass
        for _ in range(3):
            assert (await http.put("/instances/a/heartbeat")).status_code == 204
            await asyncio.sleep(TICK_S)  # pacing: let the control tick between requests
        assert admission.share == ticks_seen == 1.0
        assert held == []


def test_the_share_falls_by_a_fifth_per_late_tick_and_rises_by_a_twentieth_per_timely_one() -> None:
    admission = Admission(8, shed=lambda: None,
                          refused=Counter("refused", "refused", registry=CollectorRegistry()))
    for _ in range(3):
        admission.adjust(2 * TARGET_LAG_S)
    assert admission.share == pytest.approx(0.8 ** 3)
    admission.adjust(TARGET_LAG_S / 2)
    assert admission.share == pytest.approx(0.8 ** 3 + 0.05)
    for _ in range(40):
        admission.adjust(0.0)
    assert admission.share == 1.0
    for _ in range(100):
        admission.adjust(1.0)
    assert admission.share == pytest.approx(0.02), "never below the floor: some writes always get through"


def _front(app: ASGIApp, admission: Admission) -> FrontLayer:
    """``app`` behind the front layer, which asks ``admission`` first."""
    return FrontLayer(app, admission=admission, metrics=RegistryMetrics(CollectorRegistry()),
                      cross_origin=CrossOrigin(()), handlers={})
