"""A service starts, answers and stops at once while the registry is down, and registers once it is up.

The services are the examples as a user runs them: Starlette with ``registry_lifespan`` on hypercorn, and
aiohttp with ``attach_to_aiohttp``.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.e2e_backends import REPO, registered
from tests.support.polling import wait_until
from tests.support.processes import ManagedProcess, free_port, http_status, start_registry

pytestmark = pytest.mark.integration

EXAMPLES = {"starlette": ("auth_service.py", "Auth"), "aiohttp": ("user_service.py", "User")}


@pytest.fixture(params=sorted(EXAMPLES))
def example(request: pytest.FixtureRequest) -> tuple[str, str]:
    return EXAMPLES[request.param]


def start_service(tmp_path: Path, script: str, registry_port: int) -> tuple[ManagedProcess, int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE_REGISTRY_") and k != "HOST"}
    env.update({"PYTHONPATH": str(REPO), "SERVICE_REGISTRY_URL": f"http://127.0.0.1:{registry_port}",
                "PORT": str(port), "SERVICE_REGISTRY_RETRY_DELAY": "200", "SERVICE_REGISTRY_MAX_RETRIES": "50",
                "SERVICE_REGISTRY_HEARTBEAT_INTERVAL": "500"})
    process = ManagedProcess([sys.executable, str(REPO / "examples" / script)], env,
                             tmp_path / f"{script}-{port}.log").start()
    return process, port


@pytest.fixture
def stopped_afterwards() -> Iterator[list[ManagedProcess]]:
    started: list[ManagedProcess] = []
    yield started
    for process in started:
        process.stop(timeout=5)


def test_a_service_answers_health_within_a_second_while_the_registry_is_down(
        example: tuple[str, str], tmp_path: Path, stopped_afterwards: list[ManagedProcess]) -> None:
    process, port = start_service(tmp_path, example[0], free_port())
    stopped_afterwards.append(process)
    wait_until(lambda: http_status(f"http://127.0.0.1:{port}/metrics") == 200, timeout=30,
               message="the service listening")  # (the interpreter's own start-up is not the service's)
    started = time.monotonic()
    assert http_status(f"http://127.0.0.1:{port}/health", timeout=5) == 200
    assert time.monotonic() - started < 1.0, process.log_text()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        metrics = resp.read().decode()
    assert f'resilient_client_registered{{service="{example[1]}"}} 0.0' in metrics


def test_sigterm_while_registration_retries_exits_within_a_second(
        example: tuple[str, str], tmp_path: Path, stopped_afterwards: list[ManagedProcess]) -> None:
    process, port = start_service(tmp_path, example[0], free_port())
    stopped_afterwards.append(process)
    wait_until(lambda: http_status(f"http://127.0.0.1:{port}/health") == 200, timeout=30,
               message="the service answering")
    assert process.proc is not None
    started = time.monotonic()
    process.proc.send_signal(signal.SIGTERM)
    process.proc.wait(timeout=10)
    assert time.monotonic() - started < 1.0, process.log_text()


def test_a_service_started_before_the_registry_registers_once_it_comes_up(
        example: tuple[str, str], tmp_path: Path, stopped_afterwards: list[ManagedProcess]) -> None:
    registry_port = free_port()
    process, port = start_service(tmp_path, example[0], registry_port)
    stopped_afterwards.append(process)
    wait_until(lambda: http_status(f"http://127.0.0.1:{port}/health") == 200, timeout=30,
               message="the service answering without a registry")
    registry = start_registry(tmp_path, redis_url=None, port=registry_port)
    stopped_afterwards.append(registry)
    registry.wait_healthy()
    instances = wait_until(lambda: registered(registry.url, example[1]), timeout=30,
                           message=f"{example[1]} registered once the registry is up")
    assert [(item["host"], item["port"]) for item in instances] == [("127.0.0.1", port)]
