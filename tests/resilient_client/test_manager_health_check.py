"""The manager asks the registry for health checks: an argument, or SERVICE_REGISTRY_HEALTH_CHECK_INTERVAL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from resilient_client import ManagerConfig, ServiceRegistryManager
from tests.support.client_fake_registry import FakeRegistry


@pytest.fixture
async def registry() -> AsyncIterator[FakeRegistry]:
    fake = await FakeRegistry().start()
    try:
        yield fake
    finally:
        await fake.stop()


async def _registered_body(registry: FakeRegistry, config: ManagerConfig, **kwargs: object) -> dict[str, object]:
    manager = ServiceRegistryManager(config=config, metrics_registry=CollectorRegistry(), **kwargs)  # type: ignore[arg-type]
    async with manager:
        assert await manager.register("Pay", 4000) is not None
    body: dict[str, object] = registry.requests("POST", "/instances")[-1].body
    return body


async def test_without_a_setting_the_registration_asks_for_nothing(registry: FakeRegistry) -> None:
    body = await _registered_body(registry, ManagerConfig(registry_urls=(registry.url,), host="127.0.0.1"))
    assert "health_check" not in body


async def test_the_argument_asks_for_checks_at_that_interval_in_milliseconds(registry: FakeRegistry) -> None:
    body = await _registered_body(registry, ManagerConfig(registry_urls=(registry.url,), host="127.0.0.1"),
                                  health_check_interval=5000)
    assert body["health_check"] == {"interval": 5.0}


def test_the_environment_sets_it_and_zero_asks_for_no_checks() -> None:
    assert ManagerConfig.from_env({"SERVICE_REGISTRY_HEALTH_CHECK_INTERVAL": "5000"}).health_check_interval_ms == 5000
    assert ManagerConfig.from_env({}).health_check_interval_ms is None
    with pytest.raises(ValueError, match="SERVICE_REGISTRY_HEALTH_CHECK_INTERVAL"):
        ManagerConfig.from_env({"SERVICE_REGISTRY_HEALTH_CHECK_INTERVAL": "soon"})


async def test_zero_asks_the_registry_for_no_checks(registry: FakeRegistry) -> None:
    config = ManagerConfig.from_env({"SERVICE_REGISTRY_URL": registry.url, "HOST": "127.0.0.1",
                                     "SERVICE_REGISTRY_HEALTH_CHECK_INTERVAL": "0"})
    assert (await _registered_body(registry, config))["health_check"] is False
