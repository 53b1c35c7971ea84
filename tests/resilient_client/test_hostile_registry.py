"""Against a registry that redirects, answers too much or answers nonsense (real processes): credentials
stay on the registry's origin, and only the documented exceptions leave the client."""

from __future__ import annotations

import json
import os
import sys
import tracemalloc
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from resilient_client import ManagerConfig, RegistryRequestError, RegistryUnavailableError, ServiceRegistryManager
from tests.support.e2e_backends import REPO
from tests.support.polling import wait_until
from tests.support.processes import ManagedProcess, free_port, http_status

pytestmark = pytest.mark.integration

TOKEN = "admin-token-that-must-stay-home"


@dataclass
class Registries:
    hostile: str
    elsewhere: str

    def seen_elsewhere(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.elsewhere}/_seen", timeout=5) as resp:
            return list(json.loads(resp.read()))


@pytest.fixture(scope="module")
def registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registries]:
    tmp = tmp_path_factory.mktemp("hostile")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    other_port, hostile_port = free_port(), free_port()
    elsewhere = f"http://localhost:{other_port}"  # another origin: another host name and port
    processes = [ManagedProcess([sys.executable, "-m", "tests.support.hostile_registry", str(other_port)], env,
                                tmp / "elsewhere.log").start(),
                 ManagedProcess([sys.executable, "-m", "tests.support.hostile_registry", str(hostile_port),
                                 elsewhere], env, tmp / "hostile.log").start()]
    try:
        for port in (other_port, hostile_port):
            wait_until(lambda port=port: http_status(f"http://127.0.0.1:{port}/services/Redirected") in (200, 307),
                       timeout=30, message=f"the process on {port}")
        yield Registries(f"http://127.0.0.1:{hostile_port}", elsewhere)
    finally:
        for process in processes:
            process.stop(timeout=5)


def manager_for(url: str, **config: Any) -> ServiceRegistryManager:
    return ServiceRegistryManager(config=ManagerConfig(registry_urls=(url,), auth_token=TOKEN, max_retries=0,
                                                       request_timeout_ms=10_000, **config),
                                  metrics_registry=CollectorRegistry(), watch=False)


def carries_credentials(request: dict[str, Any], lease_token: str) -> bool:
    headers = {name.lower(): value for name, value in request["headers"].items()}
    return TOKEN in headers.get("authorization", "") or "x-lease-token" in headers or lease_token in request["body"]


async def test_a_redirected_registration_raises_and_sends_nothing_elsewhere(registries: Registries) -> None:
    async with manager_for(registries.hostile) as manager:
        with pytest.raises(RegistryRequestError) as refused:
            await manager.register("Redirected", 3001)
        assert (refused.value.status, refused.value.code) == (307, "redirect_not_followed")
        assert manager.lease_token is not None
        assert not [seen for seen in registries.seen_elsewhere()
                    if carries_credentials(seen, manager.lease_token)]


async def test_redirected_heartbeats_deregistrations_and_lookups_send_no_credentials_elsewhere(
        registries: Registries) -> None:
    manager = manager_for(registries.hostile)
    assert await manager.register("Victim", 3001) is not None
    assert not await manager.set_status("DOWN")  # the heartbeat that carries it is redirected: not delivered
    with pytest.raises(RegistryRequestError, match="redirect"):
        await manager.discover_services("Redirected")
    await manager.deregister()
    await manager.close()
    lease_token = manager.lease_token
    assert lease_token is not None
    assert not [seen for seen in registries.seen_elsewhere() if carries_credentials(seen, lease_token)]


@pytest.mark.parametrize("service", ["Deep", "BadPort"])
async def test_an_answer_the_client_cannot_read_is_registry_unavailable(registries: Registries,
                                                                        service: str) -> None:
    async with manager_for(registries.hostile) as manager:
        with pytest.raises(RegistryUnavailableError):
            await manager.discover_services(service)


@pytest.mark.parametrize("service", ["Huge", "Long"])
async def test_an_answer_over_the_cap_is_not_read_into_memory(registries: Registries, service: str) -> None:
    tracemalloc.start()
    try:
        async with manager_for(registries.hostile, max_answer_bytes=1024 * 1024) as manager:
            with pytest.raises(RegistryUnavailableError, match="over the cap"):
                await manager.discover_services(service)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024  # the answer is 8 MiB
