"""A fleet of callers against a failing service: with a retry budget of 0.2 the service receives at most
1.2 times the calls, where without one every call tries every instance on every pass."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from resilient_client import BackoffConfig, BreakerConfig, ClientConfig
from tests.support.e2e_backends import SERVICE, Backend
from tests.support.faults_client import client_for, value
from tests.support.faults_processes import Spawned, start_fault_backend, wait_registered

pytestmark = pytest.mark.integration

CALLERS = 8
CALLS = 60
"""Per caller: 60 first attempts allow 12 retries, more than the floor's 10 per window."""
BACKENDS = 2
PASSES = 3
BASE = ClientConfig(attempt_timeout_s=2.0, total_timeout_s=10.0, max_passes=PASSES,
                    backoff=BackoffConfig(base_s=0.001, max_s=0.005),
                    breaker=BreakerConfig(fail_max=1_000_000))  # the budget alone limits the traffic here


def received(backends: list[Backend]) -> int:
    return sum(backend.hits().get("GET unavailable", 0) for backend in backends)


async def fleet_calls(registry_url: str, config: ClientConfig) -> float:
    """Every caller (a client of its own) makes its calls; the calls that ended on the budget."""
    async def caller() -> float:
        async with client_for(registry_url, config=config) as (client, _, metrics):
            for _ in range(CALLS):
                assert (await client.get(SERVICE, "/unavailable")).status == 503
            return value(metrics, "resilient_client_retry_budget_exhausted_total", service=SERVICE)

    return sum(await asyncio.gather(*(caller() for _ in range(CALLERS))))


@pytest.mark.parametrize(("retry_budget", "most"), [(None, BACKENDS * PASSES), (0.2, 1.2)])
async def test_a_fleet_sends_a_failing_service_its_calls_times_at_most(spawned: Spawned, retry_budget: float | None,
                                                                      most: float) -> None:
    registry = spawned.registry(ttl=30.0)
    backends = spawned.backends([start_fault_backend(spawned.tmp_path, registry.url, heartbeat_ms=2_000)
                                 for _ in range(BACKENDS)])
    wait_registered(registry.url, BACKENDS)
    before = received(backends)
    exhausted = await fleet_calls(registry.url, replace(BASE, retry_budget=retry_budget))
    sent = received(backends) - before
    calls = CALLERS * CALLS
    if retry_budget is None:
        assert sent == calls * BACKENDS * PASSES  # every instance, every pass
        assert exhausted == 0
    else:
        assert calls < sent <= calls * most
        assert exhausted > 0
