import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from resilient_client import (
    ManagerConfig,
    ServiceRegistryManager,
    aiohttp_metrics_handler,
    attach_to_aiohttp,
    install_signal_handlers,
    registry_lifespan,
)
from resilient_client.hooks import Event, RegistrationState, RegistrationStateChanged
from tests.support.client_fake_registry import FakeRegistry
from tests.support.polling import async_wait_until
from tests.support.processes import free_port


@pytest.fixture
async def registry() -> AsyncIterator[FakeRegistry]:
    fake = await FakeRegistry().start()
    try:
        yield fake
    finally:
        await fake.stop()


def manager_for(url: str) -> ServiceRegistryManager:
    return ServiceRegistryManager(config=ManagerConfig(registry_urls=(url,), host="127.0.0.1"),
                                  metrics_registry=CollectorRegistry())


def statuses_sent(registry: FakeRegistry) -> list[str]:
    return [seen.body["status"] for seen in registry.requests("PUT")]


async def test_the_starlette_lifespan_registers_then_reports_stopping_and_deregisters(
        registry: FakeRegistry) -> None:
    manager = manager_for(registry.url)
    lifespan = registry_lifespan(manager, "Auth", 3001, version="1.0.0")
    async with lifespan(None):
        await async_wait_until(lambda: _value(manager.registered), message="registration in the background")
        assert [inst["name"] for inst in registry.instances.values()] == ["Auth"]
    assert "STOPPING" in statuses_sent(registry)
    assert registry.instances == {}


async def test_the_aiohttp_helper_registers_on_startup_and_deregisters_on_shutdown(
        registry: FakeRegistry) -> None:
    app = web.Application()
    manager = manager_for(registry.url)
    attach_to_aiohttp(app, manager, "User", 3002)
    app.router.add_get("/metrics", aiohttp_metrics_handler(CollectorRegistry()))
    async with TestClient(TestServer(app)) as client:
        await async_wait_until(lambda: _value(manager.registered), message="registration in the background")
        assert [inst["name"] for inst in registry.instances.values()] == ["User"]
        assert (await client.get("/metrics")).status == 200
    assert "STOPPING" in statuses_sent(registry)
    assert registry.instances == {}


async def test_sigterm_reports_stopping_deregisters_then_hands_over(registry: FakeRegistry) -> None:
    manager = manager_for(registry.url)
    await manager.register("Auth", 3001)
    handed_over = asyncio.get_running_loop().create_future()
    uninstall = install_signal_handlers(manager, then=handed_over.set_result)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert await handed_over == signal.SIGTERM
    finally:
        uninstall()
        await manager.close()
    assert "STOPPING" in statuses_sent(registry)
    assert registry.instances == {}


async def _value(value: bool) -> bool:
    return value


def manager_without_registry(**overrides: object) -> ServiceRegistryManager:
    """A manager whose registry does not exist; a request to it takes until its timeout when black-holed."""
    config = ManagerConfig(registry_urls=(f"http://127.0.0.1:{free_port()}",), heartbeat_interval_ms=60_000,
                           retry_delay_ms=10_000, max_retries=5, **overrides)  # type: ignore[arg-type]
    return ServiceRegistryManager(config=config, metrics_registry=CollectorRegistry())


async def test_the_lifespan_starts_at_once_and_stops_at_once_while_the_registry_is_down() -> None:
    manager = manager_without_registry()
    started = time.monotonic()
    async with registry_lifespan(manager, "Auth", 3001)(None):
        entered = time.monotonic() - started
        assert manager.registration_state is RegistrationState.REGISTERING
    assert entered < 1.0
    assert time.monotonic() - started < 1.0
    assert manager.registration_state is RegistrationState.UNREGISTERED


async def test_the_aiohttp_helper_starts_at_once_and_stops_at_once_while_the_registry_is_down() -> None:
    app = web.Application()
    manager = manager_without_registry()
    attach_to_aiohttp(app, manager, "User", 3002)
    started = time.monotonic()
    async with TestClient(TestServer(app)):
        assert time.monotonic() - started < 1.0
        assert not manager.registered
    assert time.monotonic() - started < 1.0


async def test_shutting_down_waits_for_an_unanswering_registry_at_most_the_shutdown_timeout(
        registry: FakeRegistry) -> None:
    manager = ServiceRegistryManager(config=ManagerConfig(registry_urls=(registry.url,), host="127.0.0.1",
                                                          request_timeout_ms=30_000, shutdown_timeout_ms=300),
                                     metrics_registry=CollectorRegistry())
    async with registry_lifespan(manager, "Auth", 3001)(None):
        await async_wait_until(lambda: _value(manager.registered), message="registration")
        registry.stall = asyncio.Event()
        started = time.monotonic()
    registry.stall.set()
    assert 0.25 < time.monotonic() - started < 1.0


async def test_registration_state_is_reported_as_events_and_as_a_gauge(registry: FakeRegistry) -> None:
    events: list[Event] = []
    metrics = CollectorRegistry()
    manager = ServiceRegistryManager(config=ManagerConfig(registry_urls=(registry.url,), host="127.0.0.1",
                                                          retry_delay_ms=5),
                                     metrics_registry=metrics, hooks=[events.append])
    registry.fail_registrations = 2
    assert manager.registration_state is RegistrationState.UNREGISTERED
    await manager.register_in_background("Auth", 3001)
    assert metrics.get_sample_value("resilient_client_registered", {"service": "Auth"}) == 0.0
    await async_wait_until(lambda: _value(manager.registered), message="registration after two failures")
    assert metrics.get_sample_value("resilient_client_registered", {"service": "Auth"}) == 1.0
    await manager.deregister()
    await manager.close()
    assert metrics.get_sample_value("resilient_client_registered", {"service": "Auth"}) == 0.0
    assert [event.state for event in events if isinstance(event, RegistrationStateChanged)] == [
        RegistrationState.REGISTERING, RegistrationState.REGISTERED, RegistrationState.UNREGISTERED]


async def test_a_registration_never_accepted_is_not_deregistered(registry: FakeRegistry) -> None:
    registry.fail_registrations = 100
    manager = ServiceRegistryManager(config=ManagerConfig(registry_urls=(registry.url,), retry_delay_ms=5),
                                     metrics_registry=CollectorRegistry())
    await manager.register_in_background("Auth", 3001)
    await async_wait_until(lambda: _value(len(registry.requests("POST")) >= 2), message="two attempts")
    await manager.deregister()
    await manager.close()
    assert registry.requests("DELETE") == []
    assert "host" not in registry.requests("POST")[0].body


async def test_async_with_a_manager_registering_in_the_background_enters_and_leaves_at_once() -> None:
    started = time.monotonic()
    async with manager_without_registry() as manager:
        await manager.register_in_background("Worker", 3003)
        assert manager.registration_state is RegistrationState.REGISTERING
    assert time.monotonic() - started < 1.0
