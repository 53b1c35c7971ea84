"""The ``py-eureka-client`` package against the registry's Eureka API: it registers (and shows in our
own API), renews, discovers a service registered through our own ``ServiceRegistryManager`` and calls
it, and its shutdown removes it."""

from __future__ import annotations

import os
import re
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from resilient_client import ServiceRegistryManager
from tests.support.interop_peers import instance_ids, start_backend
from tests.support.polling import async_wait_until
from tests.support.processes import ManagedProcess, RegistryProcess, free_port, running_registry
from tests.support.redis_server import RedisServer

pytest.importorskip("py_eureka_client")
pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def registry(tmp_path: Path, redis_server: RedisServer) -> Iterator[RegistryProcess]:
    with running_registry(tmp_path, redis_url=redis_server.url, ttl=10, sweep=0.5) as proc:
        proc.wait_healthy()
        yield proc


def heartbeats(registry: RegistryProcess, service: str) -> float:
    with urllib.request.urlopen(registry.url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    match = re.search(rf'^registry_heartbeats_total\{{service="{service}"\}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_py_eureka_client_registers_renews_discovers_our_client_service_and_calls_it(
        tmp_path: Path, registry: RegistryProcess) -> None:
    user, user_port = start_backend(tmp_path, "User")
    manager = ServiceRegistryManager(registry_url=registry.url, host="127.0.0.1", port=user_port,
                                     heartbeat_interval=1000)
    orders_port = free_port()
    orders = ManagedProcess(args=[sys.executable, "-m", "tests.support.interop_eureka_app", registry.url + "/eureka/",
                                  str(orders_port)], env={**os.environ, "PYTHONPATH": str(REPO)},
                            log_path=tmp_path / "eureka-app.log")
    try:
        assert await manager.register(name="User", port=user_port, version="1.0.0")
        orders.start()
        expected_id = f"127.0.0.1:orders:{orders_port}"

        async def in_our_api() -> bool:
            return instance_ids(registry.url, "ORDERS") == [expected_id]

        await async_wait_until(in_our_api, timeout=20, message="the Eureka client's instance in GET /services/ORDERS")

        async def called() -> bool:
            return "CALLED " in orders.log_text() or not orders.alive()

        await async_wait_until(called, timeout=30, message="the Eureka client to call USER")
        line = next(line for line in orders.log_text().splitlines() if line.startswith("CALLED "))
        assert f'"port": {user_port}' in line and '"service": "User"' in line

        async def renewed() -> bool:
            return heartbeats(registry, "ORDERS") >= 2

        await async_wait_until(renewed, timeout=20, message="renewals of the Eureka client's lease")

        orders.stop()
        assert "STOPPED" in orders.log_text(), orders.log_text()

        async def gone() -> bool:
            return instance_ids(registry.url, "ORDERS") == []

        await async_wait_until(gone, timeout=10, message="the Eureka client's cancel on shutdown")
    finally:
        orders.stop()
        await manager.close()
        user.stop()
