"""A real registry process for each attack, on the memory store and on a Redis of the test's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import RegistryProcess, running_registry
from tests.support.redis_server import RedisServer


@pytest.fixture(params=["memory", "redis"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RegistryProcess]:
    redis_url = None
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        redis_url = server.url
    with running_registry(tmp_path, redis_url=redis_url, ttl=60) as proc:
        proc.wait_healthy()
        yield proc
