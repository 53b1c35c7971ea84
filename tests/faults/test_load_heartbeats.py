"""Fault 5, the CI-sized load: the code of ``benchmarks/load_heartbeats.py`` against one registry process
on a real Redis, with fewer instances for less time. Zero false expiries and zero errors.

The full run (2,000 instances every second for 60 s) is ``python -m benchmarks.load_heartbeats``.
"""

from __future__ import annotations

import pytest

from benchmarks.load_heartbeats import run_load
from tests.support.faults_processes import Spawned

pytestmark = pytest.mark.integration

INSTANCES = 200  # a third of what one registry answered at a quiet moment on the 2-core machine
INTERVAL_S = 1.0
DURATION_S = 10.0
TTL_S = 3.0  # three heartbeat intervals, as the defaults are (30 s heartbeats, 90 s TTL)


async def test_200_instances_heartbeating_every_second_for_10_s_lose_nothing(spawned: Spawned) -> None:
    registry = spawned.registry(ttl=TTL_S, sweep=1.0)
    result = await run_load(registry.url, instances=INSTANCES, interval_s=INTERVAL_S, duration_s=DURATION_S)
    print("\n" + result.table())
    assert result.registered == INSTANCES
    assert result.sent == INSTANCES * DURATION_S / INTERVAL_S
    assert (dict(result.non_2xx), dict(result.errors), result.timeouts) == ({}, {}, 0)
    assert result.ok == result.sent
    assert result.expirations == 0
    assert result.listed_after == INSTANCES
    assert result.false_expiries == 0
