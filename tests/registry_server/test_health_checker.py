"""The checker, in process: the registry's app on the memory store, checking a real HTTP backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from aiohttp import web

from registry_server.health_checker import HealthChecker
from registry_server.registry import Registry
from registry_server.settings import Settings, load_settings
from tests.support.processes import free_port
from tests.support.registry_api import TOKEN, Api, make_api


@dataclass
class Backend:
    """A real HTTP backend whose health endpoint answers as the test says."""

    port: int
    mode: str = "ok"
    hits: list[str] = field(default_factory=list)


BACKEND = web.AppKey("backend", Backend)


async def _health(request: web.Request) -> web.StreamResponse:
    backend = request.app[BACKEND]
    backend.hits.append(request.path)
    if backend.mode == "500":
        return web.Response(status=500, text="database unreachable")
    if backend.mode == "redirect":
        raise web.HTTPFound("/elsewhere")
    if backend.mode == "slow":
        await asyncio.sleep(5)
    if backend.mode == "big":
        return web.Response(body=b"x" * 1_000_000)
    return web.Response(text="ok")


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    app = web.Application()
    app[BACKEND] = state = Backend(free_port())
    app.router.add_get("/health", _health)
    app.router.add_get("/elsewhere", _health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", state.port).start()
    yield state
    await runner.cleanup()


async def _api(settings: Settings) -> AsyncIterator[Api]:
    app, clock, metrics = make_api(settings)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://registry",
                                 headers={"X-Lease-Token": TOKEN}) as http:
        yield Api(http, clock, app, metrics)
    await app.state.health_checker.stop()


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async for made in _api(Settings(instance_ttl_s=600)):
        yield made


@pytest.fixture
async def api_checking_all() -> AsyncIterator[Api]:
    async for made in _api(Settings(instance_ttl_s=600, health_check_interval_s=5)):
        yield made


async def run_due(api: Api) -> int:
    """Start the checks due now and wait for them; how many ran."""
    checker: HealthChecker = api.app.state.health_checker
    registry: Registry = api.app.state.registry
    tasks = await checker.start_due(registry)
    await asyncio.gather(*tasks)
    return len(tasks)


async def register(api: Api, backend: Backend, **checks: object) -> str:
    resp = await api.register(name="Pay", host="127.0.0.1", port=backend.port, id="Pay-1", **checks)
    assert resp.status_code == 201, resp.text
    return "Pay-1"


async def up_ids(api: Api) -> list[str]:
    resp = await api.http.get("/services/Pay", params={"status": "UP"})
    return [inst["id"] for inst in resp.json()["instances"]]


async def test_failing_checks_take_it_out_of_up_discovery_and_a_passing_one_brings_it_back(
        api: Api, backend: Backend) -> None:
    await register(api, backend, health_check={"interval": 5, "timeout": 1, "failures": 2})
    api.clock.advance(5)
    assert await run_due(api) == 1
    shown = (await api.http.get("/instances/Pay-1")).json()
    assert (shown["status"], shown["health"]["status"], shown["health"]["output"]) == ("UP", "passing", "HTTP 200")
    assert shown["health"]["checked_at"].endswith("Z")

    backend.mode = "500"
    api.clock.advance(5)
    assert await run_due(api) == 1
    assert await up_ids(api) == ["Pay-1"], "one failure is not enough"
    api.clock.advance(5)
    assert await run_due(api) == 1
    assert await up_ids(api) == []
    shown = (await api.http.get("/instances/Pay-1")).json()
    assert (shown["status"], shown["health"]["status"]) == ("DOWN", "critical")
    assert shown["health"]["output"] == "HTTP 500: database unreachable"
    beat = await api.http.put("/instances/Pay-1/heartbeat", json={"status": "UP"})
    assert beat.json()["status"] == "DOWN", "its own heartbeat cannot bring it back"

    backend.mode = "ok"
    api.clock.advance(5)
    assert await run_due(api) == 1
    assert await up_ids(api) == ["Pay-1"]
    assert api.metric("registry_health_checks_total", service="Pay", result="failed") == 2
    assert api.metric("registry_health_checks_total", service="Pay", result="passed") == 2
    assert api.metric("registry_health_check_transitions_total", service="Pay", to="critical") == 1
    assert api.metric("registry_health_check_transitions_total", service="Pay", to="passing") == 1
    assert api.metric("registry_health_check_duration_seconds_count") == 4


async def test_a_check_is_not_due_again_before_its_interval(api: Api, backend: Backend) -> None:
    await register(api, backend, health_check={"interval": 5, "timeout": 1, "failures": 2})
    api.clock.advance(5)
    assert await run_due(api) == 1
    api.clock.advance(4.9)
    assert await run_due(api) == 0
    api.clock.advance(0.1)
    assert await run_due(api) == 1


async def test_a_stopping_checker_hands_back_the_next_due_time_of_the_checks_it_ran(
        api: Api, backend: Backend) -> None:
    await register(api, backend, health_check={"interval": 5, "timeout": 1, "failures": 2})
    api.clock.advance(5)
    assert await run_due(api) == 1
    checker: HealthChecker = api.app.state.health_checker
    await checker.stop()
    registry: Registry = api.app.state.registry
    api.clock.advance(4.9)  # past the claim's hold (timeout + 1 s), before the next interval
    assert await registry.store.claim_health_checks(api.clock.now_ms(), 2_000, 10) == [], (
        "another replica would not check it again before its interval")
    api.clock.advance(0.1)
    assert await registry.store.claim_health_checks(api.clock.now_ms(), 2_000, 10) == [("Pay", "Pay-1")]


async def test_a_redirect_is_not_followed_and_fails(api: Api, backend: Backend) -> None:
    await register(api, backend, health_check={"interval": 5, "timeout": 1, "failures": 1})
    backend.mode = "redirect"
    api.clock.advance(5)
    await run_due(api)
    shown = (await api.http.get("/instances/Pay-1")).json()
    assert (shown["health"]["status"], shown["health"]["output"]) == ("critical", "HTTP 302: 302: Found")
    assert backend.hits == ["/health"], "the redirect's target was never called"


async def test_no_answer_within_the_timeout_fails(api: Api, backend: Backend) -> None:
    await register(api, backend, health_check={"interval": 5, "timeout": 0.2, "failures": 1})
    backend.mode = "slow"
    api.clock.advance(5)
    await run_due(api)
    shown = (await api.http.get("/instances/Pay-1")).json()
    assert (shown["health"]["status"], shown["health"]["output"]) == ("critical", "no answer within 0.2s")


async def test_a_large_body_is_read_only_up_to_the_cap_and_passes(api: Api, backend: Backend) -> None:
    await register(api, backend, health_check={"interval": 5, "timeout": 1, "failures": 1})
    backend.mode = "big"
    api.clock.advance(5)
    await run_due(api)
    shown = (await api.http.get("/instances/Pay-1")).json()
    assert (shown["health"]["status"], shown["health"]["output"]) == ("passing", "HTTP 200")


async def test_a_dead_backend_fails_its_checks(api: Api, backend: Backend) -> None:
    resp = await api.register(name="Pay", host="127.0.0.1", port=free_port(), id="Pay-1",
                              health_check={"interval": 5, "timeout": 1, "failures": 1})
    assert resp.status_code == 201
    api.clock.advance(5)
    await run_due(api)
    shown = (await api.http.get("/instances/Pay-1")).json()
    assert (shown["status"], shown["health"]["status"]) == ("DOWN", "critical")
    assert "Connect" in shown["health"]["output"]


async def test_the_default_is_no_checks_and_a_registration_may_opt_in(api: Api, backend: Backend) -> None:
    resp = await api.register(name="Pay", host="127.0.0.1", port=backend.port, id="Pay-0")
    assert resp.json()["health"] == {"status": "unchecked", "checked_at": None, "output": ""}
    api.clock.advance(3600)
    assert await run_due(api) == 0
    await register(api, backend, health_check={"interval": 5})
    api.clock.advance(5)
    assert await run_due(api) == 1


async def test_with_the_default_on_every_instance_is_checked_unless_it_opts_out(
        api_checking_all: Api, backend: Backend) -> None:
    api = api_checking_all
    for n in range(10):
        resp = await api.register(name="Pay", host="127.0.0.1", port=backend.port, id=f"Pay-{n}")
        assert resp.status_code == 201
    await api.register(name="Pay", host="127.0.0.1", port=backend.port, id="Pay-out", health_check=False)
    ran = [await run_due(api)]
    for _ in range(5):
        api.clock.advance(1)
        ran.append(await run_due(api))
    assert sum(ran) == 10, "each checked once in its first interval, the one that opted out never"
    assert max(ran) < 10, "spread over the interval, not all at once"


async def test_an_instance_critical_for_too_long_is_deregistered_and_counted_apart(
        api: Api, backend: Backend) -> None:
    await register(api, backend, health_check={"interval": 5, "timeout": 1, "failures": 1, "deregister_after": 10})
    backend.mode = "500"
    for _ in range(4):
        api.clock.advance(5)
        await run_due(api)
    assert (await api.http.get("/instances/Pay-1")).status_code == 404
    assert api.metric("registry_health_check_deregistrations_total", service="Pay") == 1
    assert api.metric("registry_expirations_total", service="Pay") == 0


@pytest.mark.parametrize("health_check", [{"interval": 0}, {"interval": 5, "failures": 0}, {"interval": 5, "x": 1},
                                          {"timeout": 1}, "yes"])
async def test_a_bad_health_check_is_refused_with_422(api: Api, backend: Backend, health_check: object) -> None:
    resp = await api.register(name="Pay", host="127.0.0.1", port=backend.port, health_check=health_check)
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["field"].startswith("health_check")


def test_the_settings_come_from_env_and_flags_and_flags_win() -> None:
    settings = load_settings(["--health-check-interval", "5"], {"REGISTRY_HEALTH_CHECK_INTERVAL": "7",
                                                                "REGISTRY_HEALTH_CHECK_TIMEOUT": "1.5",
                                                                "REGISTRY_HEALTH_CHECK_FAILURES": "3"})
    assert (settings.health_check_interval_s, settings.health_check_timeout_s,
            settings.health_check_failures) == (5.0, 1.5, 3)
    defaults = load_settings([], {})
    assert (defaults.health_check_interval_s, defaults.health_check_timeout_s,
            defaults.health_check_failures, defaults.health_check_deregister_after_s) == (0.0, 2.0, 2, 0.0)
