"""A registry SIGKILLed in the middle of registrations loses no acknowledged instance from any listing.

The service index (``reg:services``) spans services, so it cannot share a Lua script with an instance on
Redis Cluster; it is written before the instance, every time. A crash between the two steps leaves at
worst an indexed service without an instance; an idempotent re-registration repairs what an older
version left behind.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import urllib.request
from pathlib import Path

import aiohttp
import pytest
import redis

from tests.support.processes import RegistryProcess, start_registry
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

ROUNDS = 4
WRITERS = 16


def _listed_everywhere(registry: RegistryProcess, acknowledged: dict[str, str]) -> dict[str, list[str]]:
    """For each listing, the acknowledged instance ids it lacks."""
    def get(path: str) -> object:
        with urllib.request.urlopen(registry.url + path, timeout=10) as resp:
            return json.loads(resp.read())

    instances = {str(i["id"]) for i in get("/instances")["instances"]}  # type: ignore[index]
    services = {str(s["name"]) for s in get("/services")["services"]}  # type: ignore[index]
    targets = {str(label) for group in get("/prometheus/targets")  # type: ignore[attr-defined]
               for label in [group["labels"]["__meta_registry_instance_id"]]}
    return {
        "/instances": sorted(i for i in acknowledged if i not in instances),
        "/services": sorted(i for i, name in acknowledged.items() if name not in services),
        "/prometheus/targets": sorted(i for i in acknowledged if i not in targets),
    }


def _unindexed_in_redis(client: redis.Redis) -> list[str]:
    """Instance hashes whose service is missing from the index: what no listing or sweep can see."""
    indexed = {name.decode() for name in client.smembers("reg:services")}
    orphans = []
    for key in client.scan_iter(match="reg:{*}:inst:*", count=1000):
        name = key.decode().split("{", 1)[1].split("}", 1)[0]
        if name not in indexed:
            orphans.append(key.decode())
    return orphans


async def _register_burst(url: str, round_no: int, acknowledged: dict[str, str], kill_at: int,
                          reached: asyncio.Event) -> None:
    """Register instances of new service names until the registry stops answering; set ``reached`` once
    ``kill_at`` registrations in all are acknowledged."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        n = 0
        while True:
            n += 1
            name = f"svc-{round_no}-{secrets.token_hex(4)}-{n}"
            body = {"id": f"{name}-i", "name": name, "port": 8000 + n % 1000, "host": "127.0.0.1",
                    "lease_token": "t" * 32}
            try:
                async with session.post(url + "/instances", json=body) as resp:
                    if resp.status in (200, 201):
                        acknowledged[body["id"]] = name
                        if len(acknowledged) >= kill_at:
                            reached.set()
            except (TimeoutError, aiohttp.ClientError):
                return


async def test_sigkill_during_registration_bursts_leaves_every_acknowledged_instance_listed(
        tmp_path: Path, redis_server: RedisServer) -> None:
    rng = random.Random(1)
    acknowledged: dict[str, str] = {}
    for round_no in range(ROUNDS):
        registry = start_registry(tmp_path, redis_url=redis_server.url, ttl=600, name=f"registry-{round_no}")
        try:
            registry.wait_healthy()
            reached = asyncio.Event()
            kill_at = len(acknowledged) + 50 + rng.randrange(150)  # a different moment each round
            writers = [asyncio.create_task(_register_burst(registry.url, round_no, acknowledged, kill_at, reached))
                       for _ in range(WRITERS)]
            await asyncio.wait_for(reached.wait(), timeout=60)
            registry.kill()  # SIGKILL, registrations in flight
            await asyncio.gather(*writers)
        finally:
            registry.stop()
    assert len(acknowledged) >= ROUNDS * 50

    client = redis.Redis(port=redis_server.port)
    try:
        assert _unindexed_in_redis(client) == []
    finally:
        client.close()
    registry = start_registry(tmp_path, redis_url=redis_server.url, ttl=600, name="registry-check")
    try:
        registry.wait_healthy()
        missing = await asyncio.to_thread(_listed_everywhere, registry, acknowledged)
        assert missing == {"/instances": [], "/services": [], "/prometheus/targets": []}
    finally:
        registry.stop()


async def test_idempotent_reregistration_repairs_an_instance_left_out_of_the_index(
        tmp_path: Path, redis_server: RedisServer) -> None:
    registry = start_registry(tmp_path, redis_url=redis_server.url, ttl=600)
    try:
        registry.wait_healthy()
        body = {"id": "Orphan-1", "name": "Orphan", "port": 8080, "host": "127.0.0.1", "lease_token": "k" * 32}
        async with aiohttp.ClientSession() as session:
            async with session.post(registry.url + "/instances", json=body) as resp:
                assert resp.status == 201
            # What an older registry killed between its two writes left behind: the instance without
            # its service's index entry.
            client = redis.Redis(port=redis_server.port)
            try:
                assert client.srem("reg:services", "Orphan") == 1
            finally:
                client.close()
            assert (await asyncio.to_thread(_listed_everywhere, registry, {"Orphan-1": "Orphan"}))["/instances"] \
                == ["Orphan-1"]
            async with session.post(registry.url + "/instances", json=body,
                                    headers={"X-Lease-Token": "k" * 32}) as resp:
                assert resp.status == 200
        missing = await asyncio.to_thread(_listed_everywhere, registry, {"Orphan-1": "Orphan"})
        assert missing == {"/instances": [], "/services": [], "/prometheus/targets": []}
    finally:
        registry.stop()
