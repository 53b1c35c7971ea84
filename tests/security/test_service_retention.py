"""Dead service names are cleaned up, against a real registry process on Redis and on the memory store:
names registered and deregistered leave no Redis key, index entry or metric series once the retention
has passed, and a name that comes back goes on above its last revision."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlparse

import httpx
import pytest

from tests.support.polling import wait_until
from tests.support.processes import RegistryProcess, running_registry
from tests.support.redis_server import redis_command

pytestmark = pytest.mark.integration

NAMES = [f"churn-{i}" for i in range(60)]
RETENTION_S = 2.0


def _keys(port: int) -> int:
    reply = redis_command(port, "DBSIZE")
    match = re.match(r":(\d+)", reply)
    assert match, reply
    return int(match.group(1))


def _series(http: httpx.Client) -> set[str]:
    return set(re.findall(r'service="(churn-\d+)"', http.get("/metrics").text))


def _churn(http: httpx.Client) -> dict[str, int]:
    """Register and deregister one instance of each name; the revision each ended at."""
    revisions = {}
    for name in NAMES:
        made = http.post("/instances", json={"name": name, "host": "10.0.0.1", "port": 1, "id": f"{name}-1"})
        assert made.status_code == 201, made.text
        gone = http.delete(f"/instances/{name}-1", headers={"X-Lease-Token": made.json()["lease_token"]})
        assert gone.status_code == 204
        revisions[name] = int(http.get(f"/services/{name}").headers["X-Registry-Index"])
    return revisions


@pytest.fixture(params=["memory", "redis"])
def registry(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[RegistryProcess, int | None]]:
    port = None
    url = None
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        port = urlparse(url).port
        assert port is not None
        redis_command(port, "FLUSHALL")
    env = {"REGISTRY_SERVICE_RETENTION": str(RETENTION_S)}
    with running_registry(tmp_path_factory.mktemp(f"retention-{request.param}"), redis_url=url, ttl=30,
                          sweep=0.1, extra_env=env) as proc:
        yield proc, port


def test_dead_names_leave_no_keys_index_entry_or_series_and_come_back_above_their_revision(
        registry: tuple[RegistryProcess, int | None]) -> None:
    proc, redis_port = registry
    with httpx.Client(base_url=proc.url, timeout=10) as http:
        baseline = _keys(redis_port) if redis_port is not None else 0
        assert http.post("/instances", json={"name": "steady", "host": "10.0.0.2", "port": 1}).status_code == 201
        revisions = _churn(http)
        assert NAMES[-1] in _series(http)  # the first names may be dropped already
        wait_until(lambda: not _series(http), timeout=20, message="the churned names' series to be dropped")
        if redis_port is not None:
            # what remains: the steady service's keys and the owner of its id, the index, epoch and floor
            wait_until(lambda: _keys(redis_port) <= baseline + 8, timeout=20,
                       message="the churned names' keys to be dropped")
            assert redis_command(redis_port, "SMEMBERS", "reg:services").count("churn-") == 0
        assert [s["name"] for s in http.get("/services").json()["services"]] == ["steady"]
        back = http.post("/instances", json={"name": "churn-7", "host": "10.0.0.3", "port": 1})
        assert back.status_code == 201
        index = int(http.get("/services/churn-7").headers["X-Registry-Index"])
        assert index > revisions["churn-7"]
