"""Fault-injection fixtures: real Redis, real ``registry-server`` processes, real backends, real kills."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.faults_processes import Spawned
from tests.support.redis_server import RedisServer


@pytest.fixture
def spawned(tmp_path: Path, redis_server: RedisServer) -> Iterator[Spawned]:
    spawned = Spawned(tmp_path, redis_server)
    try:
        yield spawned
    finally:
        spawned.stop_all()
