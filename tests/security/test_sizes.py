"""Finding: unbounded sizes. A registration may take at most 16 KiB as stored, a service's event stream
keeps about 1 MiB, and every cache is bounded in bytes: a replica filled to its limits stays under its
stated memory ceiling."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from registry_server.model import InstanceRegistration
from registry_server.schemas import MAX_DOCUMENT_BYTES
from registry_server.store.keys import KeyLayout
from registry_server.store.redis_store import RedisStore, connect
from registry_server.store.redis_url import parse_redis_url
from tests.support.processes import RegistryProcess
from tests.support.raw_http import send
from tests.support.redis_server import RedisServer, redis_command

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}
CEILING_MIB = 384
"""The memory ceiling of a replica stated in docs/security.md (the sum of its bounds and a baseline), above
the registered instances' own data."""


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
    assert int(usage[1:].strip()) < 1.25 * 1024 * 1024, usage  # trimmed exactly: 1.03 MiB measured


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _stalled_watcher(registry: RegistryProcess) -> socket.socket:
    """A change stream whose reader never reads: what it is sent piles up in the replica's buffers."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", registry.port))
    sock.sendall(b"GET /events HTTP/1.1\r\nHost: registry\r\nAccept: text/event-stream\r\n\r\n")
    return sock


def _fill_document(n: int) -> dict[str, object]:
    """A distinct registration whose document the cache charges most: 64 metadata entries (the most allowed,
    each charged beside the text) filling it to 16 KiB, and a host of 253 characters for the base URL cache."""
    host = ".".join([f"h{n:05d}" + "x" * 57] * 4)[:253]
    metadata = {f"k{i}": f"{n}-{i}-".ljust(226, "v") for i in range(64)}
    return {"name": f"svc-{n % 150}", "port": 1 + n % 60_000, "host": host, "id": f"fill-{n:06d}-" + "i" * 112,
            "lease_token": "fill-lease-token-0001", "metadata": metadata}


async def _register_elsewhere(redis_url: str, numbers: range) -> int:
    """Register straight into the store, as other replicas would (quicker than through HTTP); the bytes."""
    store = RedisStore(connect(parse_redis_url(redis_url)), op_timeout_s=30.0)
    limit = asyncio.Semaphore(32)
    now = int(time.time() * 1000)

    async def one(n: int) -> int:
        fields = _fill_document(n)
        registration = InstanceRegistration(**{k: v for k, v in fields.items() if k != "lease_token"})  # type: ignore[arg-type]
        async with limit:
            await store.register(registration, now, 600_000)
        return len(json.dumps(fields))

    try:
        return sum(await asyncio.gather(*(one(n) for n in numbers)))
    finally:
        await store.close()


@pytest.mark.parametrize("registry", ["redis"], indirect=True)
def test_a_replica_with_every_bounded_structure_filled_stays_under_its_ceiling(registry: RegistryProcess,
                                                                              redis_server: RedisServer) -> None:
    """Fills the parsed-document cache past its bound (3,400 distinct documents, about 140 MiB as charged,
    decoded as the replica reads them and follows their changes), the rendered-answer cache (every
    service), the timestamp, base URL and id caches in part, the Redis event streams of 150 services, and
    the buffers of change streams nobody reads."""
    baseline = _rss_mib(registry.pid)
    watchers = [_stalled_watcher(registry) for _ in range(2)]

    def register(n: int) -> int:
        body = json.dumps(_fill_document(n)).encode()
        answer = send(registry.url, "POST", "/instances", body, {**JSON, "X-Lease-Token": "fill-lease-token-0001"})
        assert answer.status in (200, 201), answer.text
        return len(body)

    try:
        with ThreadPoolExecutor(6) as pool:
            stored = sum(pool.map(register, range(300)))
        stored += asyncio.run(_register_elsewhere(redis_server.url, range(300, 3400)))
        for path in ["/instances", "/prometheus/targets", "/services", *(f"/services/svc-{n}" for n in range(150))]:
            answer = send(registry.url, "GET", path, timeout=30)
            assert answer.status == 200, answer.text
        rss = _rss_mib(registry.pid)
    finally:
        for sock in watchers:
            sock.close()
    # The ceiling, and the instances' own data while a full listing is built (about four times their text).
    allowed = CEILING_MIB + 4 * stored / 2**20
    print(f"resident: {baseline:.0f} MiB at the start, {rss:.0f} MiB after filling, of {allowed:.0f} allowed "
          f"({stored / 2**20:.0f} MiB registered)")
    assert rss < allowed, f"resident {rss:.0f} MiB, allowed {allowed:.0f} MiB"
