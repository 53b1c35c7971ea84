"""The Flask example as a user runs it, with a real registry and the aiohttp User example: it registers,
calls User through the synchronous client from its request threads, and deregisters on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.e2e_backends import REPO, registered
from tests.support.polling import wait_until
from tests.support.processes import ManagedProcess, RegistryProcess, free_port, http_status, start_registry

pytestmark = pytest.mark.integration


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryProcess]:
    proc = start_registry(tmp_path, redis_url=None)
    try:
        proc.wait_healthy()
        yield proc
    finally:
        proc.stop()


def start_example(tmp_path: Path, script: str, registry: RegistryProcess) -> tuple[ManagedProcess, int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE_REGISTRY_") and k != "HOST"}
    env.update({"PYTHONPATH": str(REPO), "SERVICE_REGISTRY_URL": registry.url, "PORT": str(port)})
    return ManagedProcess([sys.executable, str(REPO / "examples" / script)], env,
                          tmp_path / f"{script}.log").start(), port


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def test_the_flask_example_registers_calls_user_from_many_threads_and_deregisters_on_sigterm(
        registry: RegistryProcess, tmp_path: Path) -> None:
    user, user_port = start_example(tmp_path, "user_service.py", registry)
    orders, port = start_example(tmp_path, "flask_service.py", registry)
    try:
        wait_until(lambda: registered(registry.url, "User"), timeout=30, message="User registered")
        instances = wait_until(lambda: registered(registry.url, "Orders"), timeout=30,
                               message="Orders registered")
        assert [(item["host"], item["port"]) for item in instances] == [("127.0.0.1", port)]
        wait_until(lambda: http_status(f"http://127.0.0.1:{port}/health") == 200, timeout=30,
                   message="Flask listening")
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda _: get_json(f"http://127.0.0.1:{port}/orders/42"), range(40)))
        assert answers == [{"order": "order-of-42", "user": {"id": "42", "name": "Ada", "served_by": user_port}}
                           ] * 40
        assert http_status(f"http://127.0.0.1:{port}/orders/7") == 404
        assert orders.proc is not None
        started = time.monotonic()
        orders.proc.send_signal(signal.SIGTERM)
        orders.proc.wait(timeout=10)
        assert time.monotonic() - started < 2.0, orders.log_text()
        assert registered(registry.url, "Orders") == []
    finally:
        orders.stop(timeout=5)
        user.stop(timeout=5)
