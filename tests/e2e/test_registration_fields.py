"""What the client registers as, against a real registry: its peer address when no host is configured, a
422 naming the field for a bind address, and the registry's validation details kept in the error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from resilient_client import ManagerConfig, RegistryRequestError, ServiceRegistryManager
from tests.support.e2e_backends import registered
from tests.support.processes import RegistryProcess, start_registry

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    proc = start_registry(Path(tmp_path_factory.mktemp("fields")), redis_url=None)
    try:
        proc.wait_healthy()
        yield proc
    finally:
        proc.stop()


def manager_for(registry: RegistryProcess, environ: dict[str, str]) -> ServiceRegistryManager:
    config = ManagerConfig.from_env({"SERVICE_REGISTRY_URL": registry.url, "SERVICE_REGISTRY_MAX_RETRIES": "0",
                                     **environ})
    return ServiceRegistryManager(config=config, metrics_registry=CollectorRegistry(), watch=False)


@pytest.mark.parametrize("environ", [{}, {"HOST": "0.0.0.0"}, {"HOST": "::"}])
async def test_without_a_reachable_host_the_registry_records_the_peer_address(
        registry: RegistryProcess, environ: dict[str, str]) -> None:
    async with manager_for(registry, environ) as manager:
        assert await manager.register("Peer", 4100) is not None
        assert [(item["host"], item["port"]) for item in registered(registry.url, "Peer")] == [("127.0.0.1", 4100)]


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
async def test_a_bind_address_given_as_host_is_refused_naming_the_field(registry: RegistryProcess,
                                                                        host: str) -> None:
    async with manager_for(registry, {}) as manager:
        with pytest.raises(RegistryRequestError) as refused:
            await manager.register("Bound", 4101, host=host)
    assert (refused.value.status, refused.value.code) == (422, "validation_error")
    assert [detail["field"] for detail in refused.value.details] == ["host"]
    assert "host" in str(refused.value)
