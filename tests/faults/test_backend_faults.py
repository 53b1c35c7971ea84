"""Fault 4: a backend SIGKILLed while it serves a request, and a backend that accepts but never answers.

Idempotent calls (GET) fail over within the per-attempt timeout; a POST that was sent is not repeated on
another instance: the caller gets ``ServiceUnavailableError`` naming the service, its ``last_error`` naming
the instance's URL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

import pytest

from resilient_client import ServiceUnavailableError
from resilient_client.errors import AttemptTimeoutError, ConnectionLostError
from resilient_client.response import Response
from tests.support.e2e_backends import SERVICE, Backend
from tests.support.faults_client import ATTEMPT_TIMEOUT_S, client_for
from tests.support.faults_processes import Spawned, arrivals, start_blackhole, start_fault_backend, wait_registered
from tests.support.polling import async_wait_until

pytestmark = pytest.mark.integration

HEARTBEAT_MS = 300
MARGIN_S = 1.0
T = TypeVar("T")


async def timed(call: Awaitable[T]) -> tuple[T | BaseException, float]:
    """The call's result (or the exception it raised) and when it ended (monotonic)."""
    try:
        result: T | BaseException = await call
    except Exception as exc:
        result = exc
    return result, time.monotonic()


def victim_and_healthy(spawned: Spawned, registry_url: str) -> tuple[Backend, Backend]:
    victim, healthy = spawned.backends([
        start_fault_backend(spawned.tmp_path, registry_url, heartbeat_ms=HEARTBEAT_MS, slow_s=60.0),
        start_fault_backend(spawned.tmp_path, registry_url, heartbeat_ms=HEARTBEAT_MS, slow_s=0.0)])
    wait_registered(registry_url, 2)
    return victim, healthy


async def kill_when_it_serves(victim: Backend, method: str) -> float:
    """SIGKILL the victim once a ``method /slow`` request is inside its handler; when it was killed."""
    async def serving() -> bool:
        return (await asyncio.to_thread(arrivals, victim)).get(f"{method} slow", 0) >= 1

    await async_wait_until(serving, timeout=5, message=f"the victim to be serving {method} /slow")
    killed_at = time.monotonic()
    victim.process.kill()
    return killed_at


async def test_a_get_in_flight_on_a_killed_backend_fails_over_at_once(spawned: Spawned) -> None:
    registry = spawned.registry(ttl=5.0)
    victim, healthy = victim_and_healthy(spawned, registry.url)
    async with client_for(registry.url) as (client, _, _):
        # Two concurrent calls: round-robin starts one on each instance, so one is on the victim.
        calls = [asyncio.create_task(timed(client.get(SERVICE, "/slow"))) for _ in range(2)]
        killed_at = await kill_when_it_serves(victim, "GET")
        results = await asyncio.gather(*calls)
    for result, _ in results:
        assert isinstance(result, Response), result
        assert (result.status, result.json()["port"]) == (200, healthy.port)
    failed_over_in = max(ended for _, ended in results) - killed_at
    assert failed_over_in < MARGIN_S, f"failover took {failed_over_in:.3f}s after the kill"


async def test_a_post_in_flight_on_a_killed_backend_is_reported_not_repeated(spawned: Spawned) -> None:
    registry = spawned.registry(ttl=5.0)
    victim, healthy = victim_and_healthy(spawned, registry.url)
    async with client_for(registry.url) as (client, _, _):
        calls = [asyncio.create_task(timed(client.post(SERVICE, "/slow", json={"order": n}))) for n in range(2)]
        killed_at = await kill_when_it_serves(victim, "POST")
        results = await asyncio.gather(*calls)
    answered = [result for result, _ in results if isinstance(result, Response)]
    failed = [result for result, _ in results if not isinstance(result, Response)]
    assert [(r.status, r.json()["port"]) for r in answered] == [(200, healthy.port)]
    assert len(failed) == 1 and isinstance(failed[0], ServiceUnavailableError), failed
    assert failed[0].service == SERVICE
    assert isinstance(failed[0].last_error, ConnectionLostError)
    assert f"127.0.0.1:{victim.port}" in str(failed[0])
    assert arrivals(healthy) == {"POST slow": 1}, "the POST sent to the killed backend was repeated"
    assert max(ended for _, ended in results) - killed_at < MARGIN_S


async def test_a_get_to_a_backend_that_never_answers_fails_over_within_the_attempt_timeout(
        spawned: Spawned) -> None:
    registry = spawned.registry(ttl=5.0)
    hole_port, hole = start_blackhole(spawned.tmp_path)
    spawned.add(hole)
    healthy = spawned.backends([start_fault_backend(spawned.tmp_path, registry.url, heartbeat_ms=HEARTBEAT_MS)])[0]
    async with client_for(registry.url, heartbeat_ms=HEARTBEAT_MS) as (client, manager, _):
        assert await manager.register(SERVICE, hole_port, host="127.0.0.1") is not None
        wait_registered(registry.url, 2)
        durations = []
        for _ in range(4):  # round-robin over two instances: two of the calls start on the black hole
            started = time.monotonic()
            resp = await client.get(SERVICE, "/whoami")
            durations.append(time.monotonic() - started)
            assert (resp.status, resp.json()["port"]) == (200, healthy.port)
        await manager.deregister()
    assert all(d < ATTEMPT_TIMEOUT_S + MARGIN_S for d in durations), durations
    assert sum(d >= ATTEMPT_TIMEOUT_S * 0.9 for d in durations) == 2, durations
    assert hole.log_text().count("accepted") >= 2


async def test_a_post_to_a_backend_that_never_answers_is_reported_not_repeated(spawned: Spawned) -> None:
    registry = spawned.registry(ttl=5.0)
    hole_port, hole = start_blackhole(spawned.tmp_path)
    spawned.add(hole)
    healthy = spawned.backends([start_fault_backend(spawned.tmp_path, registry.url, heartbeat_ms=HEARTBEAT_MS)])[0]
    async with client_for(registry.url, heartbeat_ms=HEARTBEAT_MS) as (client, manager, _):
        assert await manager.register(SERVICE, hole_port, host="127.0.0.1") is not None
        wait_registered(registry.url, 2)
        results = []
        for n in range(2):  # round-robin: one of the two starts on the black hole
            started = time.monotonic()
            result, ended = await timed(client.post(SERVICE, "/slow", json={"order": n}))
            results.append((result, ended - started))
        await manager.deregister()
    answered = [r for r, _ in results if isinstance(r, Response)]
    failed = [(r, took) for r, took in results if not isinstance(r, Response)]
    assert [(r.status, r.json()["port"]) for r in answered] == [(200, healthy.port)]
    assert len(failed) == 1, failed
    error, took = failed[0]
    assert isinstance(error, ServiceUnavailableError) and error.service == SERVICE
    assert isinstance(error.last_error, AttemptTimeoutError) and error.last_error.sent
    assert f"127.0.0.1:{hole_port}" in str(error)
    assert ATTEMPT_TIMEOUT_S * 0.9 <= took < ATTEMPT_TIMEOUT_S + MARGIN_S
    assert arrivals(healthy) == {"POST slow": 1}, "the POST sent to the black hole was repeated"
    assert "read " in hole.log_text()
