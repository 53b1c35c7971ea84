"""Redis frozen (SIGSTOP: it accepts connections but answers nothing) rather than killed.

SPEC and README: a store that cannot be reached answers ``503 store_unavailable`` within 2 s — for every
request, however many arrive at once, for as long as the outage lasts. A killed Redis refuses connections
at once; a frozen one makes every store call wait for its timeout, which is where a bound can slip.
"""

from __future__ import annotations

import os
import signal
import time

import aiohttp
import pytest

from tests.support.faults_probe import ProbeLog, probe_once
from tests.support.faults_processes import Spawned

pytestmark = pytest.mark.integration

ANSWER_LIMIT_S = 2.0
OUTAGE_S = 5.0


async def test_every_request_to_a_registry_whose_redis_is_frozen_answers_503_within_2_s(spawned: Spawned) -> None:
    registry = spawned.registry(ttl=30.0)
    assert spawned.redis.proc is not None
    probes = ProbeLog()
    async with aiohttp.ClientSession() as http:
        os.killpg(spawned.redis.proc.pid, signal.SIGSTOP)
        try:
            outage_ends = time.monotonic() + OUTAGE_S
            while time.monotonic() < outage_ends:  # the outage lasts OUTAGE_S; 8 requests at once all along
                await probe_once(http, registry.url, probes)
        finally:
            os.killpg(spawned.redis.proc.pid, signal.SIGCONT)
    rounds = len(probes.answers) // 8
    print(f"\nfrozen Redis: {len(probes.answers)} answers in {rounds} rounds of 8 concurrent requests, "
          f"slowest {probes.slowest():.2f}s; statuses {sorted(probes.statuses())}")
    assert 500 not in probes.statuses()
    assert probes.bad(limit_s=ANSWER_LIMIT_S) == [], sorted(probes.bad(limit_s=ANSWER_LIMIT_S), key=lambda a: a[4])
    assert rounds >= 2
