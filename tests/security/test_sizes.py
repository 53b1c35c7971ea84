"""Finding: unbounded sizes. A registration may take at most 16 KiB as stored, a service's event stream
keeps about 1 MiB, and every cache and buffer is bounded in bytes: a replica filled to its limits, on
Redis or on the memory store, stays under its stated memory ceiling."""

from __future__ import annotations

import asyncio
import json
import select
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
CEILING_MIB = 861
"""The memory ceiling of a replica on Redis stated in docs/security.md (the sum of its bounds and a
baseline), besides its watchers and the registered instances."""
MEMORY_CEILING_MIB = 720
"""The same on the memory store, which holds no document or id cache but an event history."""
WATCHER_KIB = 150
"""What each change stream takes at most, its connection included, once its reader stopped reading."""
LISTING_PER_REGISTERED = 4
"""What a full listing takes while it is built, per byte of registered documents."""
MEMORY_PER_REGISTERED = 1.5
MEMORY_PER_INSTANCE_KIB = 1
"""What the memory store holds per instance: about one and a half times its document, and 1 KiB."""


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


def _stalled_watcher(registry: RegistryProcess, service: str | None = None) -> socket.socket:
    """A change stream (of ``service``, or of all) whose reader never reads: what it is sent piles up in
    the replica's buffers."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", registry.port))
    query = f"?service={service}" if service else ""
    sock.sendall(f"GET /events{query} HTTP/1.1\r\nHost: registry\r\nAccept: text/event-stream\r\n\r\n".encode())
    return sock


def _stalled_watchers(registry: RegistryProcess) -> list[socket.socket]:
    """Ten streams of every service, each sent more than the kernel buffers for it (3 MB) and then more
    than its own bound, so that together they pass the bound of all; and 90 streams of one service each,
    which cost the replica their connections (most of what they are sent waits in the kernel)."""
    return ([_stalled_watcher(registry) for _ in range(10)]
            + [_stalled_watcher(registry, f"svc-{n}") for n in range(90)])


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


def _stream_opening(registry: RegistryProcess, last_event_id: str) -> bytes:
    """What a change stream resumed after ``last_event_id`` sends up to its ``ready`` event."""
    with socket.create_connection(("127.0.0.1", registry.port), timeout=10) as sock:
        sock.sendall(f"GET /events HTTP/1.1\r\nHost: registry\r\nLast-Event-ID: {last_event_id}\r\n\r\n".encode())
        opening = b""
        while b"event: ready" not in opening:
            chunk = sock.recv(65536)
            assert chunk, opening
            opening += chunk
        return opening


def _told_events_were_lost(watchers: list[socket.socket], within_s: float = 10.0) -> list[bool]:
    """Read the stalled streams at last: which of them the replica told that events were lost (it dropped
    their buffer), by ``within_s``."""
    tails = {sock: b"" for sock in watchers}
    told: set[socket.socket] = set()
    deadline = time.monotonic() + within_s
    while tails and (remaining := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select(list(tails), [], [], remaining)
        for sock in readable:
            chunk = sock.recv(1 << 20)
            tail = tails.pop(sock)[-100:] + chunk
            if b"consumer too slow" in tail:
                told.add(sock)
            elif chunk:
                tails[sock] = tail
    return [sock in told for sock in watchers]


def _register(registry: RegistryProcess, numbers: range) -> int:
    """Register through HTTP, six at a time; the bytes."""
    def one(n: int) -> int:
        body = json.dumps(_fill_document(n)).encode()
        answer = send(registry.url, "POST", "/instances", body, {**JSON, "X-Lease-Token": "fill-lease-token-0001"})
        assert answer.status in (200, 201), answer.text
        return len(body)

    with ThreadPoolExecutor(6) as pool:
        return sum(pool.map(one, numbers))


def _read_everything(registry: RegistryProcess) -> None:
    """Every answer the rendered-answer cache keeps: a full listing, the targets, each service."""
    for path in ["/instances", "/prometheus/targets", "/services", *(f"/services/svc-{n}" for n in range(150))]:
        answer = send(registry.url, "GET", path, timeout=30)
        assert answer.status == 200, answer.text


def _check_ceiling(registry: RegistryProcess, baseline: float, allowed: float, stored: int) -> None:
    rss = _rss_mib(registry.pid)
    print(f"resident: {baseline:.0f} MiB at the start, {rss:.0f} MiB after filling, of {allowed:.0f} allowed "
          f"({stored / 2**20:.0f} MiB registered)")
    assert rss < allowed, f"resident {rss:.0f} MiB, allowed {allowed:.0f} MiB"


def _check_watchers_overflowed(watchers: list[socket.socket]) -> None:
    """Every stream of every service outgrew its buffer and was told so when read at last."""
    assert _told_events_were_lost(watchers[:10]) == [True] * 10


@pytest.mark.parametrize("registry", ["redis"], indirect=True)
def test_a_replica_on_redis_with_every_bounded_structure_filled_stays_under_its_ceiling(
        registry: RegistryProcess, redis_server: RedisServer) -> None:
    """Fills the parsed-document cache past its bound (3,400 distinct documents, about 140 MiB as charged,
    decoded as the replica reads them and follows their changes), the rendered-answer cache (every
    service), the Redis event streams of 150 services, and the buffers of 100 change streams nobody
    reads, each and all together past their bounds."""
    baseline = _rss_mib(registry.pid)
    watchers = _stalled_watchers(registry)
    try:
        stored = _register(registry, range(300))
        stored += asyncio.run(_register_elsewhere(redis_server.url, range(300, 3400)))
        _read_everything(registry)
        allowed = CEILING_MIB + len(watchers) * WATCHER_KIB / 1024 + LISTING_PER_REGISTERED * stored / 2**20
        _check_ceiling(registry, baseline, allowed, stored)
        _check_watchers_overflowed(watchers)
    finally:
        for sock in watchers:
            sock.close()


@pytest.mark.parametrize("registry", ["memory"], indirect=True)
def test_a_replica_on_the_memory_store_with_every_bounded_structure_filled_stays_under_its_ceiling(
        registry: RegistryProcess) -> None:
    """Fills the event history past its bound (1,350 registrations of 16 KiB, about 34 MiB as charged),
    the rendered-answer cache, and the buffers of 100 change streams nobody reads, each and all together
    past their bounds; the store holds the instances themselves."""
    baseline = _rss_mib(registry.pid)
    watchers = _stalled_watchers(registry)
    instances = 1350
    try:
        stored = _register(registry, range(instances))
        _read_everything(registry)
        allowed = (MEMORY_CEILING_MIB + len(watchers) * WATCHER_KIB / 1024 + instances * MEMORY_PER_INSTANCE_KIB / 1024
                   + (MEMORY_PER_REGISTERED + LISTING_PER_REGISTERED) * stored / 2**20)
        _check_ceiling(registry, baseline, allowed, stored)
        _check_watchers_overflowed(watchers)
        assert b"no longer held" in _stream_opening(registry, "1-0"), "the history was trimmed past its bound"
    finally:
        for sock in watchers:
            sock.close()
