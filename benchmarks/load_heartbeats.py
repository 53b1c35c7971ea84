"""Many instances heartbeating against one registry process: errors, latency and false expiries.

    python -m benchmarks.load_heartbeats [--instances 2000] [--interval 1] [--duration 60] [--ttl 3 x interval]
                                         [--connections 64] [--registry-url URL] [--closed-loop] [--json]

Without ``--registry-url`` it starts a ``redis-server`` and one ``registry-server`` (TTL ``--ttl``, sweep
every second) on loopback and stops them at the end. One load process (this one, one aiohttp session)
registers ``--instances`` instances spread over 20 services, then sends each one a heartbeat every
``--interval`` seconds for ``--duration`` seconds, spread evenly (instance ``i`` beats at phase
``i / instances`` of the interval), each with its lease token. It counts non-2xx answers, errors and
timeouts, and at the end reads ``registry_expirations_total`` and lists every instance: an instance that
heartbeats every interval and still expired is a false expiry. CPU seconds of the registry, Redis and
the load process show where the time goes. ``--closed-loop`` measures capacity instead: ``--connections``
workers send heartbeats back to back for ``--duration`` seconds (TTL one hour).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

T = TypeVar("T")

SERVICES = 20
TIMEOUT_S = 5.0


@dataclass
class LoadResult:
    instances: int
    interval_s: float
    duration_s: float
    registered: int = 0
    sent: int = 0
    ok: int = 0
    non_2xx: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    timeouts: int = 0
    latencies_s: list[float] = field(default_factory=list)
    max_late_s: float = 0.0
    elapsed_s: float = 0.0
    expirations: float = 0.0
    registry_answered: float = 0.0
    listed_after: int = 0
    cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def heartbeats_per_s(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s else 0.0

    def percentile_ms(self, q: float) -> float:
        if not self.latencies_s:
            return float("nan")
        ordered = sorted(self.latencies_s)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def false_expiries(self) -> int:
        """Instances that heartbeated all along and are gone (or were counted expired)."""
        return max(int(self.expirations), self.instances - self.listed_after)

    @property
    def failures(self) -> int:
        return sum(self.non_2xx.values()) + sum(self.errors.values()) + self.timeouts

    def table(self) -> str:
        target = self.instances / self.interval_s
        rows = [
            ("instances x interval x duration", f"{self.instances} x {self.interval_s:g} s x {self.duration_s:g} s"),
            ("registered", f"{self.registered}"),
            ("heartbeats sent / answered 200", f"{self.sent} / {self.ok}"),
            ("heartbeats/s achieved (target)", f"{self.heartbeats_per_s:.0f} ({target:.0f})"),
            ("non-2xx", f"{sum(self.non_2xx.values())} {dict(self.non_2xx) or ''}".strip()),
            ("errors", f"{sum(self.errors.values())} {dict(self.errors) or ''}".strip()),
            ("timeouts (> 5 s)", f"{self.timeouts}"),
            ("latency p50 / p99 / max", f"{self.percentile_ms(0.5):.1f} / {self.percentile_ms(0.99):.1f} / "
                                        f"{self.percentile_ms(1.0):.1f} ms"),
            ("most a heartbeat left late", f"{1000 * self.max_late_s:.1f} ms"),
            ("heartbeats the registry handled", f"{self.registry_answered:.0f} (its registry_http_requests_total)"),
            ("registry_expirations_total", f"{self.expirations:.0f}"),
            ("instances listed at the end", f"{self.listed_after}"),
            ("false expiries", f"{self.false_expiries}"),
        ]
        rows += [(f"CPU {name}", f"{cpu:.1f} s ({100 * cpu / self.elapsed_s:.0f}% of one core)")
                 for name, cpu in self.cpu_s.items() if self.elapsed_s]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def instance_ids(count: int) -> list[tuple[str, str]]:
    """(service, id) pairs, spread over :data:`SERVICES` services."""
    return [(f"Load-{i % SERVICES:02d}", f"Load-{i % SERVICES:02d}-{i:06d}") for i in range(count)]


async def _register_all(session: aiohttp.ClientSession, url: str, ids: list[tuple[str, str]],
                        result: LoadResult) -> dict[str, str]:
    tokens: dict[str, str] = {}
    gate = asyncio.Semaphore(32)

    async def one(index: int, service: str, instance_id: str) -> None:
        body = {"name": service, "port": 10000 + index % 50000, "host": "127.0.0.1", "id": instance_id,
                "lease_token": f"load-token-{instance_id}"}
        while True:
            async with gate, session.post(url + "/instances", json=body) as resp:
                answer = await resp.json()
                retry_after = resp.headers.get("Retry-After")
                if resp.status == 503 and retry_after is not None:  # overloaded: come back when told
                    pass
                elif resp.status not in (200, 201):
                    raise RuntimeError(f"registration of {instance_id} answered {resp.status}: {answer}")
                else:
                    tokens[instance_id] = str(answer.get("lease_token") or body["lease_token"])
                    return
            await asyncio.sleep(float(retry_after))

    await asyncio.gather(*(one(i, service, iid) for i, (service, iid) in enumerate(ids)))
    result.registered = len(tokens)
    return tokens


async def _beat(session: aiohttp.ClientSession, url: str, instance_id: str, token: str,
                result: LoadResult) -> None:
    started = time.monotonic()
    try:
        async with session.put(f"{url}/instances/{instance_id}/heartbeat",
                               headers={"X-Lease-Token": token}) as resp:
            await resp.read()
            status = resp.status
    except TimeoutError:
        result.timeouts += 1
        return
    except aiohttp.ClientError as exc:
        result.errors[type(exc).__name__] += 1
        return
    result.latencies_s.append(time.monotonic() - started)
    if 200 <= status < 300:
        result.ok += 1
    else:
        result.non_2xx[status] += 1


async def run_load(url: str, *, instances: int, interval_s: float, duration_s: float,
                   connections: int = 64, closed_loop: bool = False,
                   loaded: Callable[[], None] | None = None) -> LoadResult:
    """Register ``instances``, heartbeat each every ``interval_s`` for ``duration_s``, then check them all.

    ``closed_loop``: instead of the schedule, ``connections`` workers send heartbeats back to back (round
    the instances) for ``duration_s``: the most heartbeats per second the registry answers. ``loaded()`` is
    called when the heartbeats begin (the registrations done), and again when they end.
    """
    result = LoadResult(instances, interval_s, duration_s)
    ids = instance_ids(instances)
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tokens = await _register_all(session, url, ids, result)
        loop = asyncio.get_running_loop()
        pending: set[asyncio.Task[None]] = set()
        start = loop.time() + 0.1
        if loaded is not None:
            loaded()
        if closed_loop:
            turn = itertools.count()

            async def worker() -> None:
                while loop.time() < start + duration_s:
                    _, instance_id = ids[next(turn) % instances]
                    result.sent += 1
                    await _beat(session, url, instance_id, tokens[instance_id], result)

            await asyncio.gather(*(worker() for _ in range(connections)))
        rounds = 0 if closed_loop else max(1, round(duration_s / interval_s))
        step = interval_s / instances
        for beat in range(rounds * instances):
            due = start + beat * step
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                result.max_late_s = max(result.max_late_s, -delay)
            _, instance_id = ids[beat % instances]
            task = loop.create_task(_beat(session, url, instance_id, tokens[instance_id], result))
            pending.add(task)
            task.add_done_callback(pending.discard)
            result.sent += 1
        if pending:
            await asyncio.wait(pending)
        result.elapsed_s = loop.time() - start
        if loaded is not None:
            loaded()
        async with session.get(url + "/metrics") as resp:
            text = await resp.text()
        result.expirations = _metric_sum(text, "registry_expirations_total")
        result.registry_answered = _metric_sum(text, "registry_http_requests_total",
                                               route="/instances/{id}/heartbeat")
        async with session.get(url + "/instances") as resp:
            listed = {inst["id"] for inst in (await resp.json())["instances"]}
        result.listed_after = len(listed & {iid for _, iid in ids})
    return result


def _metric_sum(text: str, name: str, **labels: str) -> float:
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and labels.items() <= sample.labels.items())


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its reaped children (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run(main: Coroutine[Any, Any, T]) -> T:
    """On uvloop when it is installed (as the registry runs), to leave the registry as much CPU as we can."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between heartbeats of one instance")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of heartbeats")
    parser.add_argument("--ttl", type=float, help="instance TTL of the registry this starts (default: 3 intervals)")
    parser.add_argument("--connections", type=int, default=64, help="most connections to the registry at once")
    parser.add_argument("--registry-url", help="load this registry instead of starting Redis and a registry")
    parser.add_argument("--closed-loop", action="store_true",
                        help="capacity: --connections workers send heartbeats back to back (TTL 1 h)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    opts = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support.processes import start_registry
    from tests.support.redis_server import RedisServer

    redis = registry = None
    url = opts.registry_url
    if url is None:
        tmp = Path(tempfile.mkdtemp(prefix="load-heartbeats-"))
        ttl = opts.ttl or (3600.0 if opts.closed_loop else 3 * opts.interval)
        redis = RedisServer(data_dir=tmp / "redis")
        redis.start()
        registry = start_registry(tmp, redis_url=redis.url, ttl=ttl, sweep=1.0,
                                  extra_env={"REGISTRY_LOG_LEVEL": "warning"})
        registry.wait_healthy()
        url = registry.url
    try:
        pids = {"registry-server": registry.pid} if registry else {}
        if redis is not None and redis.proc is not None:
            pids["redis-server"] = redis.proc.pid
        cpu_before = {name: process_cpu_s(pid) for name, pid in pids.items()}
        own_before = _own_cpu_s()
        result = _run(run_load(url.rstrip("/"), instances=opts.instances, interval_s=opts.interval,
                               duration_s=opts.duration, connections=opts.connections,
                               closed_loop=opts.closed_loop))
        result.cpu_s = {name: process_cpu_s(pid) - cpu_before[name] for name, pid in pids.items()}
        result.cpu_s["load generator"] = _own_cpu_s() - own_before
    finally:
        if registry is not None:
            registry.stop()
        if redis is not None:
            redis.stop()
    print(result.table())
    if opts.json:
        print(json.dumps({"instances": result.instances, "heartbeats_per_s": round(result.heartbeats_per_s, 1),
                          "ok": result.ok, "non_2xx": sum(result.non_2xx.values()),
                          "errors": sum(result.errors.values()), "timeouts": result.timeouts,
                          "p50_ms": round(result.percentile_ms(0.5), 2), "p99_ms": round(result.percentile_ms(0.99), 2),
                          "mean_ms": round(1000 * statistics.fmean(result.latencies_s or [0.0]), 2),
                          "false_expiries": result.false_expiries, "cpu_s": result.cpu_s}))
    sys.exit(0 if result.failures == 0 and result.false_expiries == 0 else 1)


if __name__ == "__main__":
    main()
