"""Active health checks with real processes: registry replicas on a real Redis, backends SIGKILLed or sick."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.bench_health import _post, checks_run, register, start_backend, up_ids
from tests.support.polling import wait_until
from tests.support.processes import free_port, start_registry
from tests.support.redis_server import RedisServer
from tests.support.sse import SseReader

pytestmark = pytest.mark.integration

INTERVAL, TIMEOUT, FAILURES = 1.0, 0.5, 2
CHECKS = {"REGISTRY_HEALTH_CHECK_INTERVAL": str(INTERVAL), "REGISTRY_HEALTH_CHECK_TIMEOUT": str(TIMEOUT),
          "REGISTRY_HEALTH_CHECK_FAILURES": str(FAILURES), "REGISTRY_LOG_LEVEL": "warning"}
SLACK_S = 1.5
"""Discovery polling, process start-up and a loaded machine, on top of the bound the checks promise."""


def test_a_killed_or_sick_backend_leaves_up_discovery_within_the_bound_and_comes_back(
        tmp_path: Path, redis_server: RedisServer) -> None:
    registry = start_registry(tmp_path, redis_url=redis_server.url, ttl=90, extra_env=CHECKS)
    killed_port, sick_port = free_port(), free_port()
    killed, sick = start_backend(tmp_path, killed_port), start_backend(tmp_path, sick_port)
    try:
        registry.wait_healthy()
        register(registry, "Killed", "killed-1", killed_port)
        register(registry, "Sick", "sick-1", sick_port)
        assert up_ids(registry, "Killed") == {"killed-1"} and up_ids(registry, "Sick") == {"sick-1"}
        bound = INTERVAL * FAILURES + TIMEOUT + SLACK_S

        killed.kill()
        began = time.monotonic()
        wait_until(lambda: not up_ids(registry, "Killed"), timeout=bound, interval=0.02,
                   message="the killed backend out of UP discovery")
        assert time.monotonic() - began <= bound, "its 90 s lease would have kept it listed"

        _post(f"http://127.0.0.1:{sick_port}/sick")
        wait_until(lambda: not up_ids(registry, "Sick"), timeout=bound, interval=0.02,
                   message="the backend answering 500 out of UP discovery")
        _post(f"http://127.0.0.1:{sick_port}/well")
        wait_until(lambda: up_ids(registry, "Sick") == {"sick-1"}, timeout=INTERVAL + SLACK_S, interval=0.02,
                   message="the recovered backend back within one interval")
    finally:
        sick.stop()
        registry.stop()


def test_two_replicas_check_each_instance_about_once_per_interval_and_one_takes_over(
        tmp_path: Path, redis_server: RedisServer) -> None:
    backend_port = free_port()
    backend = start_backend(tmp_path, backend_port)
    a = start_registry(tmp_path, redis_url=redis_server.url, ttl=90, extra_env=CHECKS, name="a")
    b = start_registry(tmp_path, redis_url=redis_server.url, ttl=90, extra_env=CHECKS, name="b")
    instances = 20
    try:
        a.wait_healthy()
        b.wait_healthy()
        for n in range(instances):
            register(a, "Pair", f"pair-{n}", backend_port)
        wait_until(lambda: checks_run(a) + checks_run(b) >= instances * 3, timeout=10, message="three rounds")
        a0, b0, began = checks_run(a), checks_run(b), time.monotonic()
        wait_until(lambda: time.monotonic() - began >= 4 * INTERVAL, timeout=10, message="four intervals")
        per_interval = (checks_run(a) - a0 + checks_run(b) - b0) / instances / ((time.monotonic() - began) / INTERVAL)
        assert 0.6 <= per_interval <= 1.2, f"{per_interval:.2f} checks per instance per interval, not ~1 (nor 2)"

        a.kill()  # b takes over every check a held or would have run
        b0, began = checks_run(b), time.monotonic()
        wait_until(lambda: checks_run(b) - b0 >= instances * 2, timeout=INTERVAL * 2 + 3 + TIMEOUT + SLACK_S * 2,
                   message="the replica left checking every instance")
        assert time.monotonic() - began <= 2 * INTERVAL + 1 + TIMEOUT + 2 * SLACK_S
    finally:
        a.stop()
        b.stop()
        backend.stop()


def test_the_change_stream_shows_an_instance_going_critical_and_recovering_as_get_shows_it(
        tmp_path: Path, redis_server: RedisServer) -> None:
    registry = start_registry(tmp_path, redis_url=redis_server.url, ttl=90, extra_env=CHECKS)
    port = free_port()
    backend = start_backend(tmp_path, port)
    stream = SseReader("")
    try:
        registry.wait_healthy()
        register(registry, "Watched", "watched-1", port)

        def current() -> dict[str, Any]:
            answer: dict[str, Any] = httpx.get(f"{registry.url}/instances/watched-1").json()
            return answer

        wait_until(lambda: current()["health"]["status"] == "passing", timeout=INTERVAL * 3 + SLACK_S,
                   message="a first passing check")
        stream = SseReader(f"{registry.url}/events?service=Watched").start()
        wait_until(lambda: stream.of_type("ready"), timeout=10, message="the stream to be ready")

        def changes() -> list[dict[str, Any]]:
            return [json.loads(e.data)["instance"] for e in stream.of_type("status_changed")]

        _post(f"http://127.0.0.1:{port}/sick")
        wait_until(lambda: len(changes()) >= 1, timeout=INTERVAL * FAILURES + TIMEOUT + SLACK_S,
                   message="an event of the instance going critical")
        down = changes()[0]
        assert (down["status"], down["health"]["status"]) == ("DOWN", "critical")
        assert down["health"]["output"].startswith("HTTP 500"), down["health"]
        now = current()
        assert {k: v for k, v in down.items() if k != "last_heartbeat" and k != "expires_at"} == {
            k: v for k, v in now.items() if k != "last_heartbeat" and k != "expires_at"
        }, "the event shows the instance as GET /instances/{id} does (but for the lease its heartbeats move)"

        _post(f"http://127.0.0.1:{port}/well")
        wait_until(lambda: len(changes()) >= 2, timeout=INTERVAL + SLACK_S, message="an event of the recovery")
        back = changes()[1]
        assert (back["status"], back["health"]["status"], back["health"]["output"]) == ("UP", "passing", "HTTP 200")
    finally:
        stream.close()
        backend.stop()
        registry.stop()
