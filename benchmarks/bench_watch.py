"""Watching, measured: change latency across replicas, and what 1,000 watchers cost the heartbeat path.

    python -m benchmarks.bench_watch [--rounds 200] [--watchers 1000] [--seconds 10] [--connections 32]

(a) Two ``registry-server`` replicas A and B on one real Redis. A ``ServiceRegistryManager`` whose only
    registry URL is B watches service ``X``. Each round registers an instance through A, waits until the
    client has it, then deregisters it through A and times how long until the client's cache drops it.
    Prints p50/p99/max of that latency (goal: p99 < 200 ms).
(b) One replica on Redis with 1,000 instances in 100 services: heartbeat throughput with ``wrk`` (the
    ``bench_registry`` script), then with ``--watchers`` blocking queries (``wait=300s``, from one aiohttp
    process, spread over the 100 services) held open on the same replica, then without them again.
    Prints the ratio with watchers / without (goal: within 10 %, i.e. >= 0.90).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
from prometheus_client import CollectorRegistry

from benchmarks.bench_registry import heartbeat_lua, post, wrk
from resilient_client import ServiceRegistryManager
from tests.support.polling import wait_until
from tests.support.processes import ManagedProcess, RegistryProcess, start_registry
from tests.support.redis_server import RedisServer

REPO = Path(__file__).resolve().parents[1]
QUIET = {"REGISTRY_LOG_LEVEL": "warning"}
LEASE_TOKEN = "bench-watch-lease-token-0123456789"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _until(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("the client did not see the change")
        await asyncio.sleep(0.0005)


async def change_latency(a: RegistryProcess, b: RegistryProcess, rounds: int) -> list[float]:
    manager = ServiceRegistryManager(registry_url=b.url, cache_ttl=300_000, metrics_registry=CollectorRegistry())
    key = ("X", "UP")
    latencies: list[float] = []

    def ids() -> set[str]:
        view = manager.discovery.cache.peek(key)
        return set() if view is None else {inst.id for inst in view.instances}

    async with aiohttp.ClientSession() as http:
        async with http.post(a.url + "/instances", json={"name": "X", "port": 1, "host": "10.0.0.1",
                                                         "id": "x-base"}) as resp:
            assert resp.status in (200, 201)
        await manager.discover_services("X")
        try:
            for n in range(rounds):
                iid = f"x-{n}"
                async with http.post(a.url + "/instances", json={"name": "X", "port": 2, "host": "10.0.0.2",
                                                                 "id": iid}) as resp:
                    token = (await resp.json())["lease_token"]
                await manager.discover_services("X")  # keeps X in use
                await _until(lambda iid=iid: iid in ids())  # type: ignore[misc]
                await asyncio.sleep(0.02)  # let the next blocking query settle on B
                sent = time.perf_counter()
                async with http.delete(f"{a.url}/instances/{iid}", headers={"X-Lease-Token": token}) as resp:
                    assert resp.status == 204, resp.status
                await _until(lambda iid=iid: iid not in ids())  # type: ignore[misc]
                latencies.append(time.perf_counter() - sent)
        finally:
            await manager.close()
    return latencies


def blocking_watchers(registry: RegistryProcess) -> float:
    with urllib.request.urlopen(registry.url + "/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith('registry_watchers{kind="blocking"}'):
                return float(line.split()[-1])
    return 0.0


def heartbeat_cost(tmp: Path, redis: RedisServer, watchers: int, seconds: int,
                   connections: int) -> dict[str, dict[str, float]]:
    registry = start_registry(tmp, redis_url=redis.url, ttl=3600, sweep=1.0, extra_env=QUIET, name="single")
    load: ManagedProcess | None = None
    try:
        registry.wait_healthy()
        ids = []
        for n in range(1000):
            iid = f"bench-{n}"
            post(registry.url + "/instances", {"name": f"svc{n % 100}", "port": 1000 + n, "host": "10.0.0.1",
                                               "id": iid, "lease_token": LEASE_TOKEN})
            ids.append(iid)
        script = tmp / "heartbeat.lua"  # bench_registry's script, renewing with the instances' lease token
        script.write_text(heartbeat_lua(ids, LEASE_TOKEN))
        wrk(registry.url, 2, connections, script)  # warm-up
        results = {"without": wrk(registry.url, seconds, connections, script)}
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        load = ManagedProcess([sys.executable, "-m", "benchmarks.watch_load", registry.url, str(watchers), "100"],
                              env, tmp / "watch_load.log").start()
        wait_until(lambda: blocking_watchers(registry) >= watchers, timeout=60,
                   message=f"{watchers} blocking queries held open")
        results["with"] = wrk(registry.url, seconds, connections, script)
        results["with"]["watchers"] = blocking_watchers(registry)
        load.stop(timeout=5)
        load = None
        # The last run uses a fresh replica process on the same Redis, so that nothing the watchers left
        # behind (their slots are freed on disconnect) can colour the figure without them.
        registry.stop()
        registry = start_registry(tmp, redis_url=redis.url, ttl=3600, sweep=1.0, extra_env=QUIET,
                                  name="single-again")
        registry.wait_healthy()
        wrk(registry.url, 2, connections, script)  # warm-up
        results["without again"] = wrk(registry.url, seconds, connections, script)
        return results
    finally:
        if load is not None:
            load.stop(timeout=5)
        registry.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    opts = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    redis = RedisServer(data_dir=tmp / "redis")
    redis.start()
    try:
        a = start_registry(tmp, redis_url=redis.url, extra_env=QUIET, name="a")
        b = start_registry(tmp, redis_url=redis.url, extra_env=QUIET, name="b")
        try:
            a.wait_healthy()
            b.wait_healthy()
            latencies = asyncio.run(change_latency(a, b, opts.rounds))
        finally:
            a.stop()
            b.stop()
        ms = [value * 1000 for value in latencies]
        print(f"(a) deregistration through A seen by a client watching through B, {len(ms)} rounds:")
        print(f"    p50 {statistics.median(ms):.1f} ms   p99 {percentile(ms, 0.99):.1f} ms   "
              f"max {max(ms):.1f} ms   (goal: p99 < 200 ms)")

        redis.flushall()
        results = heartbeat_cost(tmp, redis, opts.watchers, opts.seconds, opts.connections)
        base = (results["without"]["rps"] + results["without again"]["rps"]) / 2
        print(f"(b) heartbeats, wrk -c{opts.connections} -d{opts.seconds}s, one replica on Redis:")
        print(f"    {'run':<16}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
        for name, r in results.items():
            print(f"    {name:<16}{r['rps']:>9.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['non2xx']:>9.0f}")
        print(f"    with {results['with'].get('watchers', 0):.0f} blocking queries held open: "
              f"ratio {results['with']['rps'] / base:.3f} of the mean without (goal >= 0.90)")
    finally:
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
