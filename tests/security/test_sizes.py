"""Finding: unbounded sizes. A registration may take at most 16 KiB as stored, a service's event stream
keeps about 1 MiB, and every cache is bounded in bytes: a replica filled to its limits stays under its
stated memory ceiling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from registry_server.schemas import MAX_DOCUMENT_BYTES
from registry_server.store.keys import KeyLayout
from tests.support.processes import RegistryProcess
from tests.support.raw_http import send
from tests.support.redis_server import RedisServer, redis_command

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}
CEILING_MIB = 400
"""The memory ceiling of a replica stated in docs/security.md, above the registered instances' own data."""


def _metadata(total: int, salt: str = "") -> dict[str, str]:
    """About ``total`` bytes of metadata, in values of 1,000 characters."""
    return {f"k{n}": (salt + "v" * 1000)[:1000] for n in range(max(1, total // 1010))}


def test_a_registration_over_the_document_limit_is_refused_on_every_dialect(registry: RegistryProcess) -> None:
    meta = _metadata(MAX_DOCUMENT_BYTES + 2000)
    native = json.dumps({"name": "Big", "port": 1, "host": "10.0.0.1", "id": "big-1", "metadata": meta}).encode()
    assert len(native) < 64 * 1024  # under the body limit: refused for its document, not its body
    answer = send(registry.url, "POST", "/instances", native, JSON)
    assert answer.status == 422, answer.text
    consul = json.dumps({"Name": "Big", "ID": "big-1", "Port": 1, "Address": "10.0.0.1", "Meta": meta}).encode()
    assert send(registry.url, "PUT", "/v1/agent/service/register", consul, JSON).status == 400
    eureka = json.dumps({"instance": {"instanceId": "big-1", "hostName": "10.0.0.1", "app": "BIG",
                                      "port": {"$": 1}, "metadata": meta}}).encode()
    assert send(registry.url, "POST", "/eureka/apps/BIG", eureka, JSON).status == 400
    assert send(registry.url, "GET", "/instances/big-1").status == 404
    fits = json.dumps({"name": "Big", "port": 1, "host": "10.0.0.1", "id": "big-1",
                       "metadata": _metadata(MAX_DOCUMENT_BYTES - 2000)}).encode()
    assert send(registry.url, "POST", "/instances", fits, JSON).status == 201


@pytest.mark.parametrize("registry", ["redis"], indirect=True)
def test_a_services_event_stream_stays_about_one_mebibyte(registry: RegistryProcess,
                                                          redis_server: RedisServer) -> None:
    for n in range(200):  # every re-registration changes the document: one event each
        body = json.dumps({"name": "Churn", "port": 1, "host": "10.0.0.1", "id": "churn-1",
                           "lease_token": "churn-lease-token-0001",
                           "metadata": _metadata(15_000, salt=f"{n}-")}).encode()
        headers = {**JSON, "X-Lease-Token": "churn-lease-token-0001"}
        assert send(registry.url, "POST", "/instances", body, headers).status in (200, 201)
    usage = redis_command(redis_server.port, "MEMORY", "USAGE", KeyLayout().events("Churn"), "SAMPLES", "0")
    assert usage.startswith(":"), usage
    assert int(usage[1:].strip()) < 2 * 1024 * 1024, usage


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("registry", ["redis"], indirect=True)
def test_a_replica_filled_to_its_cache_limits_stays_under_its_ceiling(registry: RegistryProcess) -> None:
    for n in range(1500):  # 1,500 documents of 15 KB: 22 MB, past the 16 MiB document cache
        body = json.dumps({"name": f"svc-{n % 150}", "port": 1, "host": "10.0.0.1", "id": f"fill-{n}",
                           "metadata": _metadata(15_000, salt=f"{n}-")}).encode()
        assert send(registry.url, "POST", "/instances", body, JSON).status == 201
    for _ in range(2):
        assert send(registry.url, "GET", "/instances").status == 200
        for n in range(150):
            assert send(registry.url, "GET", f"/services/svc-{n}").status == 200
        assert send(registry.url, "GET", "/eureka/apps", headers={"Accept": "application/json"}).status == 200
    rss = _rss_mib(registry.pid)
    assert rss < CEILING_MIB, f"resident {rss:.0f} MiB"
    print(f"resident after filling: {rss:.0f} MiB")
