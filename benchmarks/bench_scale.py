"""Scale, memory and mass expiry of the registry on a real Redis, in one run.

    python -m benchmarks.bench_scale [--quick] [--seconds 8] [--connections 32] [--repeats 2] [--cycles 2]
                                     [--small 1000] [--large 100000] [--expiring 10000] [--profile DIR]

1. Scale: heartbeat throughput (``wrk -t1 -c32``, ``bench_registry``'s heartbeat script with the lease
   token) of a registry whose Redis holds ``--large`` instances, against one whose Redis holds ``--small``,
   in 100 services each. The instances are seeded directly through ``RedisStore`` (not HTTP), TTL 3600 s.
   The heartbeats of the large run renew ``--sample`` ids spread evenly over the whole set; a warm-up pass
   first puts them in the replica's id -> service cache, as steady state would. Runs go small, large,
   large, small, ... (a drift of the machine's load cancels out); the ratio is mean(large) / mean(small)
   (target >= 0.90). One more run renews ids this replica has never seen (a cache miss costs one more
   round trip): shown, no target.
2. Memory: Redis ``used_memory`` before and after seeding the large set, per instance (target <= 1 KiB),
   with ``MEMORY USAGE`` of one instance hash, the leases sorted sets' and event streams' share per
   instance and one id-owner key.
3. Mass expiry, ``--cycles`` times: a registry with ``REGISTRY_SWEEP_INTERVAL=1`` and 1,000 live instances
   that ``wrk`` renews; ``--expiring`` more instances registered through the store with one registration
   time and one short TTL, so that every lease runs out at the same instant E, in the same 100 services.
   Polls the expiring leases left in Redis every 0.1 s (in every window alike) and reports how long after E
   the last of them was counted (target: within 2 sweep intervals; the time of the registry's log line
   for the sweep that counted the last one, checked against ``registry_expirations_total`` afterwards:
   polling ``/metrics`` during the windows would load the registry being measured) and gone from Redis,
   the id-owner keys left behind, and the heartbeat p99 of a window from E - 1 s against the mean of the
   windows before and after each expiry (target <= 2x). The
   windows send heartbeats at a fixed rate, half the maximum ``wrk`` measured (``hey``, as
   ``bench_registry``'s latency figures); ``--saturate`` sends them as fast as ``wrk`` can instead, where
   p99 is the length of the queue and grows with any other work.

Needs ``redis-server``, ``wrk`` and ``hey`` (and ``py-spy`` for ``--profile``). Everything listens on 127.0.0.1;
every process is stopped by its process group. The machine is shared: the figures are ratios within this
run, and the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import redis

from benchmarks.bench_registry import HEARTBEAT_BODY, LEASE_TOKEN, heartbeat_lua, hey, wrk
from registry_server.model import InstanceRegistration, lease_token_hash
from registry_server.store.redis_store import RedisStore, connect
from registry_server.store.redis_url import parse_redis_url
from tests.support.processes import RegistryProcess, start_registry
from tests.support.redis_server import RedisServer

SERVICES = 100
QUIET = {"REGISTRY_LOG_LEVEL": "warning"}
KIB = 1024


@dataclass
class Row:
    figure: str
    value: str
    target: str
    met: bool | None  # None: informational


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, figure: str, value: str, target: str = "-", met: bool | None = None) -> None:
        self.rows.append(Row(figure, value, target, met))


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- seeding through the store ------------------------------------------------------------------------


async def _seed(url: str, prefix: str, first: int, stop: int, now_ms: int, ttl_ms: int, batch: int) -> None:
    # Generous waits: a seeding burst on a loaded machine is not a failure.
    store = RedisStore(connect(parse_redis_url(url), timeout_s=30.0), op_timeout_s=60.0)
    token_hash = lease_token_hash(LEASE_TOKEN)

    def one(n: int) -> Awaitable[object]:
        return store.register(InstanceRegistration(id=f"{prefix}-{n}", name=f"svc{n % SERVICES}", host="10.0.0.1",
                                           port=1000 + n % 60000, lease_token_hash=token_hash), now_ms, ttl_ms)

    try:
        if first < stop:
            await one(first)  # loads the scripts once, before the concurrent batches
        for start in range(first + 1, stop, batch):
            await asyncio.gather(*(one(n) for n in range(start, min(stop, start + batch))))
    finally:
        await store.close()


def _seed_slice(url: str, prefix: str, first: int, stop: int, now_ms: int, ttl_ms: int, batch: int) -> None:
    try:
        import uvloop  # the loop the registry itself runs on, when installed
    except ImportError:
        asyncio.run(_seed(url, prefix, first, stop, now_ms, ttl_ms, batch))
    else:
        uvloop.run(_seed(url, prefix, first, stop, now_ms, ttl_ms, batch))


def seed(url: str, prefix: str, count: int, *, now_ms: int | None = None, ttl_ms: int = 3_600_000,
         batch: int = 500, workers: int = 2) -> float:
    """Register ``prefix-0 .. prefix-(count-1)`` in ``svc0..svc99`` through ``RedisStore``, from ``workers``
    processes (the client's CPU is the limit, not Redis); returns the seconds it took."""
    started = time.monotonic()
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    bounds = [count * w // workers for w in range(workers + 1)]
    with ProcessPoolExecutor(workers) as pool:
        for done in [pool.submit(_seed_slice, url, prefix, bounds[w], bounds[w + 1], now_ms, ttl_ms, batch)
                     for w in range(workers)]:
            done.result()
    return time.monotonic() - started


def profiler(opts: argparse.Namespace, pid: int, seconds: float, name: str) -> subprocess.Popen[bytes] | None:
    """With ``--profile DIR``: py-spy samples process ``pid`` for ``seconds`` into ``DIR/name.txt`` (raw)."""
    if not opts.profile:
        return None
    out = Path(opts.profile) / f"{name}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(["py-spy", "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "200", "-f", "raw",
                             "-o", str(out), "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def finish(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is not None:
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(spy.pid, signal.SIGKILL)
            spy.wait(timeout=10)


def heartbeat_script(path: Path, ids: list[str]) -> Path:
    path.write_text(heartbeat_lua(ids, LEASE_TOKEN))
    return path


def spread(prefix: str, total: int, count: int) -> list[str]:
    """``count`` ids spread evenly over ``prefix-0 .. prefix-(total-1)``."""
    step = max(1, total // count)
    return [f"{prefix}-{i * step}" for i in range(min(count, total))]


def warm(url: str, script: Path, ids: int, connections: int, rate_hint: float) -> None:
    """Renew every id of ``script`` at least once (fills the replica's id -> service cache)."""
    wrk(url, max(2, math.ceil(1.3 * ids / max(rate_hint, 100.0))), connections, script)


# -- 1 and 2: scale and memory -------------------------------------------------------------------------


def memory_figures(url: str, count: int, before: int, report: Report) -> None:
    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        after = int(r.info("memory")["used_memory"])
        per = (after - before) / count
        inst_key = "reg:{svc0}:inst:scale-0"
        inst = int(r.memory_usage(inst_key, samples=0) or 0)
        owner = int(r.memory_usage("reg:id:{scale-0}", samples=0) or 0)
        zsets = sum(int(r.memory_usage(f"reg:{{svc{s}}}:leases", samples=0) or 0) for s in range(SERVICES))
        streams = sum(int(r.memory_usage(f"reg:{{svc{s}}}:events", samples=0) or 0) for s in range(SERVICES))
        events = sum(int(r.xlen(f"reg:{{svc{s}}}:events")) for s in range(SERVICES))
        keys = int(r.dbsize())
        encodings = (r.object("encoding", inst_key), r.object("encoding", "reg:{svc0}:leases"))
        fields = r.hgetall(inst_key)
        longest = max(len(v) for v in fields.values())
        # The same hash written again with hash-max-listpack-value raised above its longest field (`doc`).
        default_limit = r.config_get("hash-max-listpack-value")["hash-max-listpack-value"]
        r.config_set("hash-max-listpack-value", str(max(64, 2 * longest)))
        r.hset("bench:listpack-probe", mapping=fields)
        packed = int(r.memory_usage("bench:listpack-probe", samples=0) or 0)
        r.delete("bench:listpack-probe")
        r.config_set("hash-max-listpack-value", default_limit)
    finally:
        r.close()
    report.add(f"Redis used_memory per instance ({count:,})", f"{per:.0f} B", "<= 1024 B", per <= KIB)
    report.add("  instance hash (MEMORY USAGE)", f"{inst} B ({encodings[0]}; longest field {longest} B)")
    if encodings[0] != "listpack":
        report.add(f"  same hash as listpack (hash-max-listpack-value {max(64, 2 * longest)})",
                   f"{packed} B (this Redis: {default_limit} B)")
    report.add("  leases sorted set, share", f"{zsets / count:.0f} B ({encodings[1]})")
    report.add("  id owner key (MEMORY USAGE)", f"{owner} B")
    report.add("  event streams, share", f"{streams / count:.0f} B ({events:,} events kept)")
    report.add("  rest (keyspace entries, allocator)", f"{per - inst - owner - (zsets + streams) / count:.0f} B")
    report.notes.append(f"memory: used_memory {before / 2**20:.1f} MiB before, {after / 2**20:.1f} MiB after "
                        f"seeding {count:,} instances ({keys:,} keys). The event streams are capped per "
                        f"service (here ~{events / SERVICES:,.0f} events each), so their share per instance "
                        f"shrinks as services grow.")


def scale(tmp: Path, opts: argparse.Namespace, report: Report) -> None:
    small_redis = RedisServer(data_dir=tmp / "redis-small")
    large_redis = RedisServer(data_dir=tmp / "redis-large")
    registries: list[RegistryProcess] = []
    try:
        small_redis.start()
        large_redis.start()
        seconds_small = seed(small_redis.url, "scale", opts.small)
        r = redis.Redis.from_url(large_redis.url)
        before = int(r.info("memory")["used_memory"])
        r.close()
        seconds_large = seed(large_redis.url, "scale", opts.large)
        print(f"seeded {opts.small:,} instances in {seconds_small:.1f} s, {opts.large:,} in {seconds_large:.1f} s "
              f"({opts.large / seconds_large:,.0f}/s)", flush=True)
        opts.seed_rate = opts.large / seconds_large
        memory_figures(large_redis.url, opts.large, before, report)

        small = start_registry(tmp, redis_url=small_redis.url, ttl=3600, sweep=1.0, extra_env=QUIET, name="small")
        registries.append(small)
        large = start_registry(tmp, redis_url=large_redis.url, ttl=3600, sweep=1.0, extra_env=QUIET, name="large")
        registries.append(large)
        small.wait_healthy()
        large.wait_healthy()
        sample = min(opts.sample, opts.large)
        small_script = heartbeat_script(tmp / "hb-small.lua", spread("scale", opts.small, opts.small))
        large_script = heartbeat_script(tmp / "hb-large.lua", spread("scale", opts.large, sample))
        first = wrk(small.url, 2, opts.connections, small_script)  # warm-up, and a rate hint
        warm(small.url, small_script, opts.small, opts.connections, first["rps"])
        warm(large.url, large_script, sample, opts.connections, first["rps"])

        runs: dict[str, list[dict[str, float]]] = {"small": [], "large": []}
        pair = [("small", small, small_script), ("large", large, large_script)]
        for rep in range(opts.repeats):
            # small, large, large, small, ...: a drift in the machine's load cancels out of the ratio
            for which, proc, script in pair if rep % 2 == 0 else pair[::-1]:
                load = os.getloadavg()[0]
                spy = profiler(opts, proc.pid, opts.seconds - 1, f"heartbeat-{which}-{rep + 1}") if rep == 0 else None
                stats = redis.Redis.from_url((small_redis if which == "small" else large_redis).url)
                stats.config_resetstat()
                cpu = stats.info("cpu")
                result = wrk(proc.url, opts.seconds, opts.connections, script)
                finish(spy)
                # Redis's own work per heartbeat: the script's time in Redis, and Redis's CPU per request.
                evalsha = stats.info("commandstats").get("cmdstat_evalsha", {})
                cpu_after = stats.info("cpu")
                stats.close()
                result["redis_us_per_call"] = float(evalsha.get("usec_per_call", float("nan")))
                result["redis_cpu_us"] = 1e6 * sum(cpu_after[k] - cpu[k] for k in ("used_cpu_sys", "used_cpu_user")) \
                    / max(1.0, result["rps"] * opts.seconds)
                result["load"] = load
                runs[which].append(result)
                print(f"  heartbeat {which:<5} run {rep + 1}: {result['rps']:7.0f} req/s  p99 "
                      f"{result['p99_ms']:6.1f} ms  non-2xx {result['non2xx']:.0f}  Redis: EVALSHA "
                      f"{result['redis_us_per_call']:.1f} us/call, {result['redis_cpu_us']:.0f} us CPU/request  "
                      f"(load {load:.2f})", flush=True)
        # Ids this replica has never renewed: outside the warm sample, spread over the rest of the set.
        warm_ids = set(spread("scale", opts.large, sample))
        rest = [i for i in (f"scale-{n}" for n in range(opts.large)) if i not in warm_ids]
        cold_ids = rest[::max(1, len(rest) // (4 * sample))]
        cold = wrk(large.url, opts.seconds, opts.connections, heartbeat_script(tmp / "hb-cold.lua", cold_ids))
        print(f"  heartbeat large, ids new to the replica: {cold['rps']:7.0f} req/s  p99 {cold['p99_ms']:6.1f} ms",
              flush=True)

        mean_small = statistics.mean(x["rps"] for x in runs["small"])
        mean_large = statistics.mean(x["rps"] for x in runs["large"])
        ratio = mean_large / mean_small
        pairs = ", ".join(f"{lg['rps'] / sm['rps']:.2f}" for sm, lg in zip(runs["small"], runs["large"], strict=True))
        errors = sum(x["non2xx"] + x["socket_errors"] for xs in runs.values() for x in xs)
        report.add(f"heartbeat req/s, {opts.large:,} / {opts.small:,} instances (ABBA)",
                   f"{ratio:.2f} ({mean_large:.0f} / {mean_small:.0f}; per pair {pairs})", ">= 0.90",
                   ratio >= 0.90 and errors == 0)
        report.add(f"  p99 at {opts.large:,} / at {opts.small:,}",
                   f"{statistics.mean(x['p99_ms'] for x in runs['large']):.1f} / "
                   f"{statistics.mean(x['p99_ms'] for x in runs['small']):.1f} ms")
        report.add(f"  Redis EVALSHA us/call at {opts.large:,} / at {opts.small:,}",
                   f"{statistics.mean(x['redis_us_per_call'] for x in runs['large']):.1f} / "
                   f"{statistics.mean(x['redis_us_per_call'] for x in runs['small']):.1f} (Redis CPU per request "
                   f"{statistics.mean(x['redis_cpu_us'] for x in runs['large']):.0f} / "
                   f"{statistics.mean(x['redis_cpu_us'] for x in runs['small']):.0f} us)")
        report.add("  ids new to the replica (cache miss) / small",
                   f"{cold['rps'] / mean_small:.2f} ({cold['rps']:.0f} req/s)")
        if errors:
            report.notes.append(f"scale: {errors:.0f} non-2xx answers or socket errors in the heartbeat runs")
    finally:
        for proc in registries:
            proc.stop()
        large_redis.stop()
        small_redis.stop()


# -- 3: mass expiry -----------------------------------------------------------------------------------


def expirations(url: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        return sum(float(line.rsplit(" ", 1)[1]) for line in resp.read().decode().splitlines()
                   if line.startswith("registry_expirations_total{"))


def still_stored(client: redis.Redis, until_ms: int) -> int:
    """Instances in Redis whose lease ends at or before ``until_ms`` (the expiring set; the live ones end
    an hour later)."""
    pipe = client.pipeline(transaction=False)
    for s in range(SERVICES):
        pipe.zcount(f"reg:{{svc{s}}}:leases", "-inf", until_ms)
    return sum(int(n) for n in pipe.execute())


@dataclass
class Sample:
    at_ms: int
    stored: int  # expiring instances still in Redis (-1: not asked)


class Poller(threading.Thread):
    """Every ``interval`` s, when given ``until_ms``: how many of the expiring instances Redis still holds,
    stamped with the wall ms of the answer (a pipeline of ZCOUNTs: nothing the registry has to answer)."""

    def __init__(self, redis_url: str, until_ms: int | None = None, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.until_ms, self.interval = until_ms, interval
        self.client = redis.Redis.from_url(redis_url, socket_timeout=5)
        self.samples: list[Sample] = []
        self._halt = threading.Event()

    def sample(self) -> Sample:
        stored = -1 if self.until_ms is None else still_stored(self.client, self.until_ms)
        return Sample(time.time_ns() // 1_000_000, stored)

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append(self.sample())
            self._halt.wait(self.interval)

    def stop(self) -> list[Sample]:
        self._halt.set()
        self.join(timeout=10)
        return self.samples


_SWEEP_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO registry_server.registry: expired "
                         r"(?:(\d+) instances of|\S+ \()")


def counted_at(log: str, after_ms: int, goal: int) -> tuple[float, int]:
    """When the registry had counted ``goal`` expiries after ``after_ms`` (wall ms; ``inf`` if never), and
    how many it counted: from its log, one line per sweep that removes (written once the sweep has counted
    each removal in ``registry_expirations_total``). Read afterwards, so that no poll of ``/metrics``
    loads the registry during the measurement."""
    total = 0
    for line in log.splitlines():
        match = _SWEEP_LINE.match(line)
        if match is None:
            continue
        at_ms = int(time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S"))) * 1000 + int(match.group(2))
        if at_ms < after_ms:
            continue
        total += int(match.group(3) or 1)
        if total >= goal:
            return at_ms, total
    return float("inf"), total


@dataclass
class Pace:
    """How the mass-expiry windows load the registry: heartbeats at a fixed ``rate`` (``hey``, one instance,
    the body our client sends), or with ``saturate`` as fast as ``wrk`` can (closed loop: then p99 is the
    queue's length, and any extra work lengthens it)."""
    rate: float
    saturate: bool
    connections: int
    script: Path
    instance_id: str


def window(url: str, redis_url: str, seconds: int, pace: Pace,
           until_ms: int | None = None) -> tuple[dict[str, float], Poller]:
    poller = Poller(redis_url, until_ms)
    poller.start()
    try:
        if pace.saturate:
            result = wrk(url, seconds, pace.connections, pace.script)
        else:
            result = hey(f"{url}/instances/{pace.instance_id}/heartbeat", seconds, pace.rate, method="PUT",
                         headers={"X-Lease-Token": LEASE_TOKEN, "Content-Type": "application/json"},
                         body=HEARTBEAT_BODY)
    finally:
        poller.stop()
    return result, poller


def seconds_after(samples: list[Sample], expiry_ms: int, done: Callable[[Sample], bool]) -> float:
    at = next((x.at_ms for x in samples if done(x)), None)
    return float("inf") if at is None else (at - expiry_ms) / 1000


def mass_expiry(tmp: Path, opts: argparse.Namespace, report: Report) -> None:
    sweep_s = 1.0
    server = RedisServer(data_dir=tmp / "redis-expiry")
    registry: RegistryProcess | None = None
    try:
        server.start()
        registry = start_registry(tmp, redis_url=server.url, ttl=3600, sweep=sweep_s, name="expiry",
                                  extra_env={"REGISTRY_LOG_LEVEL": "info"})  # one line per sweep that removes
        registry.wait_healthy()
        took_live = seed(server.url, "live", 1000)
        rate = opts.seed_rate or 1000 / max(took_live, 1e-3)  # instances seeded per s (the latter, with overhead)
        script = heartbeat_script(tmp / "hb-live.lua", [f"live-{n}" for n in range(1000)])
        first = wrk(registry.url, 2, opts.connections, script)
        warm(registry.url, script, 1000, opts.connections, first["rps"])
        pace = Pace(first["rps"] / 2, opts.saturate, opts.connections, script, "live-0")
        if opts.saturate:
            print(f"  mass-expiry windows: heartbeats as fast as wrk -c{opts.connections} can", flush=True)
        else:
            print(f"  mass-expiry windows: heartbeats at {pace.rate:.0f}/s, half the {first['rps']:.0f}/s measured",
                  flush=True)
        normal: list[float] = []
        during: list[float] = []
        removed_after: list[float] = []
        counted_after: list[float] = []
        owners_left: list[int] = []
        for cycle in range(opts.cycles):
            spy = profiler(opts, registry.pid, opts.window - 1, f"normal-{cycle + 1}")
            before, _ = window(registry.url, server.url, opts.window, pace)
            finish(spy)
            normal.append(before["p99_ms"])
            base = expirations(registry.url)
            t0 = time.time_ns() // 1_000_000
            margin_ms = int(1000 * (1.6 * opts.expiring / rate + 4.0))  # seeding must end well before E
            expiry_ms = t0 + margin_ms
            took = seed(server.url, f"doom{cycle}", opts.expiring, now_ms=t0, ttl_ms=margin_ms)
            now = time.time_ns() // 1_000_000
            if now > expiry_ms - 1500:
                report.notes.append(f"mass expiry cycle {cycle + 1}: seeding took {took:.1f} s, too close to E")
            time.sleep(max(0.0, (expiry_ms - 1000 - now) / 1000))  # the window starts 1 s before E
            load = os.getloadavg()[0]
            spy = profiler(opts, registry.pid, opts.window - 1, f"sweep-{cycle + 1}")
            result, poller = window(registry.url, server.url, opts.window, pace, expiry_ms)
            finish(spy)
            samples = poller.samples
            goal = base + opts.expiring
            deadline = time.monotonic() + 10
            while expirations(registry.url) < goal and time.monotonic() < deadline:  # after the window
                time.sleep(0.2)
            counted = expirations(registry.url) - base
            while (not samples or samples[-1].stored != 0) and time.monotonic() < deadline:
                samples.append(poller.sample())
            during.append(result["p99_ms"])
            removed_after.append(seconds_after(samples, expiry_ms, lambda x: x.stored == 0))
            at_ms, _logged = counted_at(registry.log_text(), expiry_ms, opts.expiring)
            counted_after.append((at_ms - expiry_ms) / 1000)
            pipe = poller.client.pipeline(transaction=False)
            for n in range(opts.expiring):
                pipe.exists(f"reg:id:{{doom{cycle}-{n}}}")
            owners_left.append(sum(int(x) for x in pipe.execute()))
            poller.client.close()
            after, _ = window(registry.url, server.url, opts.window, pace)
            normal.append(after["p99_ms"])
            errors = before["non2xx"] + result["non2xx"] + after["non2xx"]
            print(f"  expiry cycle {cycle + 1}: {opts.expiring:,} seeded in {took:.1f} s; gone from Redis "
                  f"{removed_after[-1]:.2f} s and counted {counted_after[-1]:.2f} s after E (counted {counted:.0f}, "
                  f"owner keys left {owners_left[-1]}); heartbeat p99 {before['p99_ms']:.1f} before, "
                  f"{result['p99_ms']:.1f} during ({result['rps']:.0f} req/s), {after['p99_ms']:.1f} ms after; "
                  f"non-2xx {errors:.0f} (load {load:.2f})", flush=True)
            if errors:
                report.notes.append(f"mass expiry cycle {cycle + 1}: {errors:.0f} non-2xx heartbeat answers")
        worst = max(counted_after)
        report.add(f"{opts.expiring:,} expiries swept and counted, s after E",
                   " / ".join(f"{x:.2f}" for x in counted_after) + f" (sweep every {sweep_s:g} s)",
                   f"<= {2 * sweep_s:g} s", worst <= 2 * sweep_s)
        report.add("  gone from Redis, s after E", " / ".join(f"{x:.2f}" for x in removed_after))
        report.add("  id owner keys left behind", " / ".join(f"{x:,}" for x in owners_left), "0",
                   max(owners_left) == 0)
        p99_ratio = statistics.mean(during) / statistics.mean(normal)
        report.add("heartbeat p99 during the sweep / normal",
                   f"{p99_ratio:.2f} ({' / '.join(f'{x:.1f}' for x in during)} vs "
                   f"{' / '.join(f'{x:.1f}' for x in normal)} ms)", "<= 2.0", p99_ratio <= 2.0)
        log = registry.log_text()
        problems = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
        sweeps = [line for line in log.splitlines() if "expired " in line]
        if problems or sweeps:
            report.notes.append(f"mass expiry: the registry logged {len(sweeps)} sweep lines and {len(problems)} "
                                "warnings/errors, first and last:\n"
                                + "\n".join(line[:240] for line in [*sweeps[:2], *problems[:3], "...",
                                                                      *problems[-2:]]))
    finally:
        if registry is not None:
            registry.stop()
        server.stop()


# -- main -----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short run (10k vs 1k, 2k expiring, 3 s runs)")
    parser.add_argument("--seconds", type=int, default=8, help="length of each scale wrk run")
    parser.add_argument("--window", type=int, default=5, help="length of each mass-expiry window")
    parser.add_argument("--saturate", action="store_true",
                        help="load the mass-expiry windows as fast as wrk can instead of at half that rate")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="small/large pairs of scale runs")
    parser.add_argument("--cycles", type=int, default=2, help="mass expiries")
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=5000, help="ids renewed in the large runs")
    parser.add_argument("--expiring", type=int, default=10_000)
    parser.add_argument("--parts", default="scale,expiry", help="which parts to run (scale, expiry)")
    parser.add_argument("--keep", action="store_true", help="keep the logs' directory")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the registry in the first heartbeat runs, "
                        "the windows before each sweep and the sweep windows, raw output to DIR")
    opts = parser.parse_args()
    opts.seed_rate = 0.0  # measured by the scale part; the expiry part times its seeding by it
    if opts.quick:
        opts.seconds, opts.window, opts.repeats, opts.cycles = 3, 3, 1, 1
        opts.large, opts.sample, opts.expiring = 10_000, 2000, 2000
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install {tool})")
    load_before = loadavg()
    started = time.monotonic()
    print(f"load average before: {load_before} ({os.cpu_count()} CPUs)", flush=True)
    report = Report()
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    parts = set(opts.parts.split(","))
    try:
        if "scale" in parts:
            scale(tmp, opts, report)
        if "expiry" in parts:
            mass_expiry(tmp, opts, report)
    finally:
        if opts.keep:
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    width = max(len(row.figure) for row in report.rows) + 2
    print(f"{'figure':<{width}}{'value':<60}{'target':<11}met")
    for row in report.rows:
        met = "-" if row.met is None else ("yes" if row.met else "NO")
        print(f"{row.figure:<{width}}{row.value:<60}{row.target:<11}{met}")
    for note in report.notes:
        print(f"\n{note}")
    print(f"\nload average before: {load_before}; after: {loadavg()}; took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
