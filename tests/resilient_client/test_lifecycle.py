import asyncio
import os
import signal
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
from tests.support.client_fake_registry import FakeRegistry


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
    lifespan = registry_lifespan(manager_for(registry.url), "Auth", 3001, version="1.0.0")
    async with lifespan(None):
        assert [inst["name"] for inst in registry.instances.values()] == ["Auth"]
    assert "STOPPING" in statuses_sent(registry)
    assert registry.instances == {}


async def test_the_aiohttp_helper_registers_on_startup_and_deregisters_on_shutdown(
        registry: FakeRegistry) -> None:
    app = web.Application()
    attach_to_aiohttp(app, manager_for(registry.url), "User", 3002)
    app.router.add_get("/metrics", aiohttp_metrics_handler(CollectorRegistry()))
    async with TestClient(TestServer(app)) as client:
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
