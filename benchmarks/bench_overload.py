"""Overload: one registry process offered 2x and 3x the heartbeats it can answer, open-loop.

    python -m benchmarks.bench_overload [--ratios 2 3] [--duration 60] [--interval 1] [--ttl 10]
                                        [--capacity-duration 10] [--open-step 4] [--no-pin] [--ignore-retry-after]
                                        [--no-pacing] [--max-in-flight N] [--log-level L] [--json]

In one run, each phase on a fresh ``redis-server`` and ``registry-server`` (TTL ``--ttl``, sweep every
second, its defaults otherwise; ``--no-pacing``: heartbeats are not paced). The registry has core 0 and
may use half of it (a CPU quota in a cgroup, as a container's CPU limit; without root, it shares the core
with a CPU hog instead), and the load generator has core 1 (``--no-pin``: no pinning, no limit): a load
generator needs a core of its own to offer three times what a registry process answers. Redis runs on
core 1 too, at a higher priority than the generator (as root). Heartbeats go
over a lean HTTP/1.1 client on keep-alive connections: each instance its own, and another while one is
busy.

For each ratio ``r``:

1. Capacity, measured just before (and again just after: the machine's speed drifts by minutes, so the
   useful share is of the mean of the two): 32 workers send heartbeats back to back for
   ``--capacity-duration`` seconds; ``C`` is the heartbeats per second answered 200. Next to each, the
   open-loop capacity ``C_open`` (:func:`open_capacity`): what a plain replica sustains when heartbeats
   come open-loop, each instance on its own connection.
2. ``N = r * C * interval`` instances register and heartbeat at 90 % of ``C`` (a
   running fleet, its connections open and in use) until all are registered and have had two turns. Then,
   for the overload, each heartbeats every ``--interval`` seconds
   on its own schedule (phase ``i / N``) without waiting for answers (open loop), with a 2 s client
   timeout and as many connections as it takes, for ``--duration`` seconds. As the client library does,
   an instance answered with ``Retry-After`` (a ``503``, or a paced ``200``) sends its next heartbeat
   then, at a random point of the second after it, and keeps its interval from there
   (``--ignore-retry-after``: it keeps its schedule whatever the answers). Meanwhile a prober reads
   ``GET /services/{name}`` and ``GET /healthz`` five times a second each, and one extra instance stops
   heartbeating a third of the way in (a real death). Then the instances go on at 60 % of ``C`` (at most
   every half TTL), each on its own schedule as in the overload, for two TTLs, and until the dead instance has
   expired.

Reported per ratio: useful answers (200 within the timeout) per second and as a share of ``C`` and of
``C_open``; 503s and their latency; timeouts; false expiries (``registry_expirations_total`` other than
the dead instance, or instances missing at the end, whichever is more: an instance that expired is missing
too), with the last heartbeats of up to five of them; p99 of the prober's reads; how long after the
overload every heartbeat was answered 200 again (recovery); when the dead instance expired, after its
lease ran out and after the overload stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.load_heartbeats import _metric_sum, _run, instance_ids, process_cpu_s, run_load
from resilient_client._backoff import come_back_after

CLIENT_TIMEOUT_S = 2.0
SKIPPED = -2
"""In :attr:`OverloadResult.lost`: a turn not sent, its instance having been told to come back later."""
_IDEMPOTENT = (b"PUT ", b"GET ", b"DELETE ")
PROBE_EVERY_S = 0.2


@dataclass
class OverloadResult:
    ratio: float
    capacity_per_s: float
    """``C`` measured just before, which sized the fleet."""
    instances: int
    duration_s: float
    sent: int = 0
    ok: int = 0
    shed: int = 0
    other: dict[int, int] = field(default_factory=dict)
    timeouts: int = 0
    errors: int = 0
    shed_latencies_s: list[float] = field(default_factory=list)
    probe_latencies_s: dict[str, list[float]] = field(default_factory=dict)
    probe_failures: int = 0
    expirations: float = 0.0
    missing_at_end: int = 0
    lost: dict[str, list[tuple[float, float, int, float]]] = field(default_factory=dict)
    """For (up to five of) the live instances missing at the end: their last heartbeats, as (sent, seconds
    since the overload began; seconds to the answer; status; ``Retry-After``), and turns they skipped while
    told to wait (status :data:`SKIPPED`, and how much longer), to tell what their leases were last given."""
    up_one_interval_after: int = 0
    """The registered instances listed UP one heartbeat interval after the overload."""
    recovery_s: float = 0.0
    not_200_after: dict[int, int] = field(default_factory=dict)
    """Heartbeats after the overload answered other than ``200``, by status (0: timeout, -1: error)."""
    death_detected_after_lease_s: float | None = None
    death_detected_after_overload_s: float | None = None
    requests_shed_metric: float = 0.0
    heartbeats_paced_metric: float = 0.0
    paced: int = 0
    """Heartbeats answered 200 with ``Retry-After``."""
    deferred: int = 0
    """Heartbeats not sent because their instance was told to come back later."""
    generator_late_s: float = 0.0
    """The most the load generator fell behind its own schedule (large: the figures measure it, not the
    registry)."""
    warm_up_s: float = 0.0
    """How long the fleet took to register and warm up before the overload."""
    never_registered: int = 0
    capacity_after_per_s: float | None = None
    """``C`` measured again just after: the useful share is of the mean of the two."""
    open_capacity_per_s: list[float] = field(default_factory=list)
    """``C_open`` measured just before and just after (see :func:`open_capacity`)."""
    connections_opened: int = 0
    """Connections the instances opened during the overload (the first, or after a timeout or the
    registry's idle timer closed one): each costs the registry more than a request on an open one."""
    registry_cpu_s: float | None = None
    """CPU time the registry process used during the overload (``None``: not measured)."""

    @property
    def useful_per_s(self) -> float:
        return self.ok / self.duration_s

    @property
    def mean_capacity_per_s(self) -> float:
        after = self.capacity_after_per_s
        return self.capacity_per_s if after is None else (self.capacity_per_s + after) / 2

    @property
    def mean_open_capacity_per_s(self) -> float | None:
        found = self.open_capacity_per_s
        return sum(found) / len(found) if found else None

    @property
    def false_expiries(self) -> int:
        # A live instance that expired is also missing at the end (it never registers again): counted once.
        return max(0, int(self.expirations) - 1, self.missing_at_end)

    def summary(self) -> dict[str, Any]:
        return {
            "ratio": self.ratio, "capacity_per_s": round(self.capacity_per_s),
            "capacity_after_per_s": _round(self.capacity_after_per_s), "instances": self.instances,
            "offered_per_s": round(self.instances / 1.0), "sent": self.sent,
            "useful_per_s": round(self.useful_per_s), "useful_share_of_capacity": round(
                self.useful_per_s / self.mean_capacity_per_s, 3),
            "open_capacity_per_s": [round(c) for c in self.open_capacity_per_s],
            "useful_share_of_open_capacity": None if not self.mean_open_capacity_per_s else round(
                self.useful_per_s / self.mean_open_capacity_per_s, 3),
            "paced_200": self.paced, "deferred_by_retry_after": self.deferred,
            "registry_counted": {"shed": round(self.requests_shed_metric),
                                 "paced": round(self.heartbeats_paced_metric)},
            "shed_503": self.shed, "shed_p99_ms": round(1000 * _pct(self.shed_latencies_s, 0.99), 1),
            "other_status": self.other, "timeouts": self.timeouts, "errors": self.errors,
            "false_expiries": self.false_expiries, "lost": self.lost,
            "probe_p99_ms": {name: round(1000 * _pct(values, 0.99), 1)
                             for name, values in self.probe_latencies_s.items()},
            "probe_failures": self.probe_failures, "recovery_s": round(self.recovery_s, 2),
            "not_200_after": self.not_200_after,
            "up_one_interval_after": self.up_one_interval_after,
            "death_detected_after_lease_s": _round(self.death_detected_after_lease_s),
            "death_detected_after_overload_s": _round(self.death_detected_after_overload_s),
            "generator_late_s": round(self.generator_late_s, 2), "never_registered": self.never_registered,
            "warm_up_s": round(self.warm_up_s, 1),
            "connections_opened": self.connections_opened,
            "registry_cores": _round(None if self.registry_cpu_s is None else self.registry_cpu_s / self.duration_s),
            "registry_cpu_us_per_answer": _round(
                None if self.registry_cpu_s is None
                else 1e6 * self.registry_cpu_s / max(1, self.ok + self.shed + sum(self.other.values()))),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class CpuQuota:
    """A cgroup that lets its processes use half a core, enforced every 10 ms (as a container's CPU limit
    is): the registry gets the same CPU whatever the shape of its load. Sharing a core with a CPU hog
    instead, a process that often waits (closed-loop clients) gets more of the core from the scheduler than
    one that never does (an overload): the capacity and the overload would be measured on different
    machines. ``None`` from :meth:`create` without a writable cgroup ``cpu`` controller (not root)."""

    PERIOD_US = 10_000

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls) -> CpuQuota | None:
        for root, v2 in ((Path("/sys/fs/cgroup/cpu"), False), (Path("/sys/fs/cgroup"), True)):
            if not (root / ("cgroup.controllers" if v2 else "cpu.cfs_quota_us")).exists():
                continue
            path = root / f"bench-overload-{os.getpid()}"
            try:
                path.mkdir(exist_ok=True)
                half = cls.PERIOD_US // 2
                if v2:
                    (path / "cpu.max").write_text(f"{half} {cls.PERIOD_US}")
                else:
                    (path / "cpu.cfs_period_us").write_text(str(cls.PERIOD_US))
                    (path / "cpu.cfs_quota_us").write_text(str(half))
            except OSError:
                with contextlib.suppress(OSError):
                    path.rmdir()
                continue
            return cls(path)
        return None

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()


class Fleet:
    """A fresh Redis and one registry process, stopped at the end. Pinned: the registry has core 0 and half
    of it (a :class:`CpuQuota`, or beside a CPU hog where no quota can be set), Redis and the load generator
    core 1."""

    def __init__(self, ttl_s: float, *, pinned: bool, pace_heartbeats: bool = True,
                 max_in_flight: int | None = None, log_level: str = "warning") -> None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.support.processes import start_registry
        from tests.support.redis_server import RedisServer

        tmp = Path(tempfile.mkdtemp(prefix="bench-overload-"))
        self.redis = RedisServer(data_dir=tmp / "redis")
        self.redis.start()
        if pinned and self.redis.proc is not None:
            # Redis has core 1 with the load generator, ahead of it: a store on a host of its own is not
            # slowed by the registry's clients (raising a priority needs root; without it, it stays as is).
            os.sched_setaffinity(self.redis.proc.pid, {1})
            with contextlib.suppress(PermissionError):
                os.setpriority(os.PRIO_PROCESS, self.redis.proc.pid, -10)
        wrapper = ["taskset", "-c", "0"] if pinned else []
        self.quota = CpuQuota.create() if pinned else None
        self.hog = (subprocess.Popen([*wrapper, sys.executable, "-c", "while True: pass"])
                    if pinned and self.quota is None else None)
        self.registry = None
        try:  # a registry that does not start must not leave the hog and Redis behind
            self.registry = start_registry(tmp, redis_url=self.redis.url, ttl=ttl_s, sweep=1.0, wrapper=wrapper,
                                           extra_env={"REGISTRY_LOG_LEVEL": log_level,
                                                      "REGISTRY_PACE_HEARTBEATS": "on" if pace_heartbeats else "off",
                                                      **({"REGISTRY_MAX_IN_FLIGHT": str(max_in_flight)}
                                                         if max_in_flight else {})})
            if self.quota is not None:
                self.quota.add(self.registry.pid)
            self.registry.wait_healthy()
        except BaseException:
            self.stop()
            raise
        self.url = self.registry.url
        self.pid = self.registry.pid

    def stop(self) -> None:
        if self.registry is not None:
            self.registry.stop()
        self.redis.stop()
        if self.quota is not None:
            self.quota.remove()
        if self.hog is not None:
            self.hog.kill()
            self.hog.wait()


class RawHttp:
    """A lean HTTP/1.1 client on keep-alive connections: the load generator must spend far less per request
    than the registry does, or it, not the registry, is what saturates. A request that times out closes its
    connection, as aiohttp does (and the client library with it)."""

    opened = 0
    """Connections opened by every client of this process."""

    def __init__(self, url: str) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def request(self, raw: bytes) -> tuple[int, float]:
        """(status, the Retry-After it gave in seconds, 0 without one). As aiohttp does for an idempotent
        method (RFC 9112, section 9.3.1), a request that a reused connection fails before any answer (the
        server's idle timer closed it as the request went out) is sent once more, on a new connection."""
        retry = raw.startswith(_IDEMPOTENT)
        while True:
            while self.idle and self.idle[-1][0].at_eof():  # closed by the server's idle timer: as aiohttp
                self.idle.pop()[1].close()  # does, drop it rather than send on it
            reused = bool(self.idle)
            if reused:
                reader, writer = self.idle.pop()
            else:
                RawHttp.opened += 1
                reader, writer = await asyncio.open_connection(self.host, self.port)
            try:
                writer.write(raw)
                head = await reader.readline()
            except ConnectionError:
                head = b""
            except BaseException:
                writer.close()
                raise
            if head or not (reused and retry):
                break
            writer.close()
            retry = False
        retry_after = 0.0
        try:
            status = int(head.split(b" ", 2)[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                lower = line.lower()
                if lower.startswith(b"content-length:"):
                    length = int(line[15:])
                elif lower.startswith(b"retry-after:"):
                    retry_after = float(line[12:])
            await reader.readexactly(length)
        except BaseException:
            writer.close()
            raise
        self.idle.append((reader, writer))
        return status, retry_after

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


def _registration_request(host: str, service: str, n: int, instance_id: str, token: str) -> bytes:
    body = json.dumps({"name": service, "host": "127.0.0.1", "port": 10000 + n % 50000, "id": instance_id,
                       "lease_token": token}).encode()
    return (f"POST /instances HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"X-Lease-Token: {token}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def _heartbeat_request(host: str, instance_id: str, token: str) -> bytes:
    return (f"PUT /instances/{instance_id}/heartbeat HTTP/1.1\r\nHost: {host}\r\n"
            f"X-Lease-Token: {token}\r\nContent-Length: 0\r\n\r\n").encode()


async def _beat(http: RawHttp, raw: bytes) -> tuple[int, float, float]:
    """(status, or 0 for a timeout, -1 for an error; seconds; the Retry-After given)."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(CLIENT_TIMEOUT_S):
            status, retry_after = await http.request(raw)
    except TimeoutError:
        return 0, time.monotonic() - started, 0.0
    except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
        return -1, time.monotonic() - started, 0.0
    return status, time.monotonic() - started, retry_after


async def _register_victim(url: str, victim: tuple[str, str]) -> str:
    """Register the instance that will die, as a service starting beside a busy fleet would: with its own
    lease token (so that a retry after a timeout is the same registration), again after a timeout or when
    told, for up to a minute. Its lease token."""
    service, instance_id = victim
    token = f"load-token-{instance_id}"
    raw = _registration_request(url.removeprefix("http://"), service, 0, instance_id, token)
    http = RawHttp(url)
    deadline = time.monotonic() + 60
    try:
        while True:
            status, _, retry_after = await _beat(http, raw)
            if status in (200, 201):
                return token
            if status > 0 and status != 503:
                raise RuntimeError(f"registration of {instance_id} answered {status}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"registration of {instance_id} not answered within a minute")
            await asyncio.sleep(retry_after)
    finally:
        http.close()


async def overload(url: str, *, ratio: float, capacity: float, interval_s: float, duration_s: float,
                   ttl_s: float, honour_retry_after: bool = True, registry_pid: int | None = None) -> OverloadResult:
    instances = max(1, round(ratio * capacity * interval_s))
    result = OverloadResult(ratio, capacity, instances, duration_s)
    ids = instance_ids(instances)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S)) as session:
        victim = ("Victim", "Victim-000000")  # registered once the fleet is warm, so that it lapses only when it dies
        host = url.removeprefix("http://")
        tokens = {iid: f"overload-token-{iid}" for _, iid in ids}
        requests = {iid: _heartbeat_request(host, iid, token) for iid, token in tokens.items()}
        # An instance registers in its first turn of the warm-up (and again in its next while refused), then
        # heartbeats: no lease waits for the whole fleet to register before its first renewal.
        registrations = {iid: _registration_request(host, service, n, iid, tokens[iid])
                         for n, (service, iid) in enumerate(ids)}
        registered: set[str] = set()
        pools = {iid: RawHttp(url) for iid in tokens}  # each instance its own keep-alive connection(s)
        loop = asyncio.get_running_loop()
        answers_after: list[tuple[float, int]] = []
        pending: set[asyncio.Task[None]] = set()

        not_before: dict[str, float] = {}
        """When an instance told to come back later (Retry-After on a 503 or a paced 200) may send again: by the
        client library's own rule, at a random point of the second after the whole seconds it was given."""
        answers: defaultdict[str, deque[tuple[float, float, int, float]]] = defaultdict(lambda: deque(maxlen=6))
        """Each instance's last heartbeats and skipped turns, for those lost (see :attr:`OverloadResult.lost`)."""

        async def one(instance_id: str, during: bool | None) -> None:
            """One heartbeat (or registration) of the warm-up (``during`` None), the overload (True) or
            after it (False)."""
            registering = instance_id not in registered
            raw = registrations[instance_id] if registering else requests[instance_id]
            status, took, retry_after = await _beat(pools[instance_id], raw)
            if during is not None:
                answers[instance_id].append((round(loop.time() - took - start, 2), round(took, 2), status, retry_after))
            if retry_after and honour_retry_after:
                not_before[instance_id] = loop.time() + come_back_after(retry_after, interval_s)
            if registering and status in (200, 201):
                registered.add(instance_id)
                status = 200
            if during is None:
                return
            if not during:
                answers_after.append((loop.time(), status))
                return
            result.sent += 1
            if status == 200:
                result.ok += 1
                result.paced += 1 if retry_after else 0
            elif status == 503:
                result.shed += 1
                result.shed_latencies_s.append(took)
            elif status == 0:
                result.timeouts += 1
            elif status == -1:
                result.errors += 1
            else:
                result.other[status] = result.other.get(status, 0) + 1

        def launch(instance_id: str, during: bool | None) -> None:
            task = loop.create_task(one(instance_id, during))
            pending.add(task)
            task.add_done_callback(pending.discard)

        async def keep_schedules(begins: float, interval_s: float, *, during: bool,
                                 ends: Callable[[float], bool]) -> None:
            """Every instance heartbeats every ``interval_s`` on its own schedule (phase ``i / N`` from
            ``begins``), whatever the answers, except that one told to come back later sends then (as the
            client library does: see ``not_before``) and keeps its interval from there; until ``ends(due)``."""
            schedule = [(begins + n * interval_s / instances, n) for n in range(instances)]
            while not ends(schedule[0][0]):
                due, n = schedule[0]
                instance_id = ids[n][1]
                resume = not_before.get(instance_id, 0.0)
                if resume > due:
                    result.deferred += 1 if during else 0
                    answers[instance_id].append((round(due - start, 2), 0.0, SKIPPED, round(resume - due, 2)))
                    heapq.heapreplace(schedule, (resume, n))
                    continue
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:  # behind its own schedule: still let answers in, or the generator starves itself
                    if during:
                        result.generator_late_s = max(result.generator_late_s, -delay)
                    await asyncio.sleep(0)
                if not_before.get(instance_id, 0.0) > due:  # told to wait while this one slept
                    continue
                heapq.heapreplace(schedule, (due + interval_s, n))
                launch(instance_id, during)

        async def victim_beats() -> float:
            """Heartbeats the victim until it 'dies'; when its lease (as last renewed) runs out."""
            lease_ends = loop.time() + ttl_s
            while loop.time() < victim_stops:
                status, _, retry_after = await _beat(pools[victim[1]], requests[victim[1]])
                if status in (200, 503):  # a paced or refused heartbeat: the lease covers the delay, plus a TTL
                    lease_ends = max(lease_ends, loop.time() + retry_after + ttl_s)
                await asyncio.sleep(max(interval_s, retry_after if honour_retry_after else 0.0))  # its schedule
            return lease_ends

        async def probe() -> None:
            name = ids[0][0]
            while loop.time() < overload_ends:
                for label, path in (("GET /services/{name}", f"/services/{name}"), ("GET /healthz", "/healthz")):
                    began = time.monotonic()
                    try:
                        async with session.get(url + path) as resp:
                            await resp.read()
                            ok = resp.status == 200
                    except (TimeoutError, aiohttp.ClientError):
                        ok = False
                    result.probe_latencies_s.setdefault(label, []).append(time.monotonic() - began)
                    result.probe_failures += 0 if ok else 1
                await asyncio.sleep(PROBE_EVERY_S)  # the prober's own pace

        async def watch_victim(lease_ends_task: asyncio.Task[float]) -> None:
            deadline = overload_ends + 10 * ttl_s
            while loop.time() < deadline:
                try:
                    async with session.get(f"{url}/instances/{victim[1]}") as resp:
                        await resp.read()
                        gone = resp.status == 404
                except (TimeoutError, aiohttp.ClientError):
                    gone = False
                if gone and lease_ends_task.done():
                    now = loop.time()
                    result.death_detected_after_lease_s = now - lease_ends_task.result()
                    result.death_detected_after_overload_s = now - overload_ends
                    return
                await asyncio.sleep(0.1)  # polling pace

        # Warm-up: the fleet registers and heartbeats at 90 % of the capacity, each instance on its own
        # connection, until every instance is registered and has had two turns: a running fleet, whose
        # connections are open and in use, is then offered the overload (opening them all beforehand would
        # leave the first ones idle past the registry's idle timer, closed before the load begins).
        warm_step = max(instances / (0.9 * capacity), interval_s) / instances
        warm_start = loop.time()
        turn = 0
        while not (turn >= 2 * instances and len(registered) == instances) and turn < 100 * instances:
            await asyncio.sleep(max(0.0, warm_start + turn * warm_step - loop.time()))
            instance_id = ids[turn % instances][1]
            if not_before.get(instance_id, 0.0) <= loop.time():  # told to come back later: not this turn
                launch(instance_id, None)
            turn += 1
        result.warm_up_s = loop.time() - warm_start
        victim_token = await _register_victim(url, victim)
        requests[victim[1]] = _heartbeat_request(host, victim[1], victim_token)
        pools[victim[1]] = RawHttp(url)
        start = loop.time() + 0.2
        overload_ends = start + duration_s
        victim_stops = start + duration_s / 3
        victim_task = loop.create_task(victim_beats())
        async def listed(*, up_only: bool) -> set[str]:
            """The ids of the instances listed (only those UP, with ``up_only``): a full listing may take longer
            than a heartbeat's timeout after an overload."""
            async with session.get(url + "/instances", timeout=aiohttp.ClientTimeout(total=30)) as resp:
                return {inst["id"] for inst in (await resp.json())["instances"]
                        if not up_only or inst["status"] == "UP"}

        async def count_up() -> None:
            """One heartbeat interval after the overload: how many of the fleet are listed UP."""
            await asyncio.sleep(max(0.0, overload_ends + interval_s - loop.time()))
            result.up_one_interval_after = len(registered & await listed(up_only=True))

        watcher = loop.create_task(watch_victim(victim_task))
        prober = loop.create_task(probe())
        counter = loop.create_task(count_up())
        cpu_at_start = 0.0 if registry_pid is None else process_cpu_s(registry_pid)
        opened_at_start = RawHttp.opened
        await keep_schedules(start, interval_s, during=True, ends=lambda due: due >= overload_ends)
        result.connections_opened = RawHttp.opened - opened_at_start
        if registry_pid is not None:
            result.registry_cpu_s = process_cpu_s(registry_pid) - cpu_at_start
        # After it, the fleet heartbeats more slowly (as after raising its interval): 60 % of the capacity,
        # still at most every half TTL; for two TTLs, and on until the dead instance's expiry is seen (the
        # live ones go on heartbeating while the figures are read, or the wait would expire them).
        calm_ends = overload_ends + 2 * ttl_s
        await keep_schedules(overload_ends, min(ttl_s / 2, instances / (0.6 * capacity)), during=False,
                             ends=lambda due: due >= calm_ends and watcher.done())
        await prober
        await counter
        if pending:
            await asyncio.wait(pending)
        await watcher
        for pool in pools.values():
            pool.close()
        bad = [(at, status) for at, status in answers_after if status != 200]
        result.recovery_s = max(at for at, _ in bad) - overload_ends if bad else 0.0
        result.not_200_after = dict(Counter(status for _, status in bad))
        async with session.get(url + "/metrics", timeout=aiohttp.ClientTimeout(total=30)) as resp:
            text = await resp.text()
        result.expirations = _metric_sum(text, "registry_expirations_total")
        result.requests_shed_metric = _metric_sum(text, "registry_requests_shed_total")
        result.heartbeats_paced_metric = _metric_sum(text, "registry_heartbeats_paced_total")
        lost = registered - await listed(up_only=False)
        result.missing_at_end = len(lost)
        result.lost = {iid: list(answers.get(iid, ())) for iid in sorted(lost)[:5]}
        result.never_registered = instances - len(registered)
    return result


def _capacity(duration_s: float, *, pinned: bool) -> float:
    """``C``: heartbeats a second answered 200 by a fresh registry, 32 workers sending back to back."""
    fleet = Fleet(3600.0, pinned=pinned)
    cpu: list[float] = []  # the registry's CPU time when the heartbeats begin and end (after registering)
    try:
        measured = _run(run_load(fleet.url, instances=1000, interval_s=1.0, duration_s=duration_s,
                                 connections=32, closed_loop=True,
                                 loaded=lambda: cpu.append(process_cpu_s(fleet.pid))))
    finally:
        fleet.stop()
    print(f"capacity: {measured.heartbeats_per_s:.0f} heartbeats/s answered 200 (closed loop, 32 workers, "
          f"{duration_s:g} s); p99 {measured.percentile_ms(0.99):.1f} ms; registry CPU "
          f"{1e6 * (cpu[1] - cpu[0]) / max(1, measured.ok):.0f} us per heartbeat", flush=True)
    return measured.heartbeats_per_s


OPEN_STEPS = tuple(round(0.3 + 0.05 * k, 2) for k in range(19))
"""The rates :func:`open_capacity` offers, as shares of ``C``: 30 % to 120 % in steps of 5 %."""


async def open_capacity(url: str, *, capacity: float, step_s: float) -> float:
    """``C_open``: the most heartbeats a second the replica answers in full when they come as a fleet sends
    them, open-loop, each instance on its own keep-alive connection. ``round(C)`` instances (each then
    heartbeats every 0.8 to 3.3 s, within the registry's idle timer) register, then are offered
    :data:`OPEN_STEPS` of ``C`` in turn, ``step_s`` each, whatever the answers. A rate holds when at
    least 99 % of its heartbeats are answered 200 within the client timeout; the first one that does not
    ends the ramp, and ``C_open`` is what the last one that held answered a second (0: none held)."""
    instances = max(1, round(capacity))
    ids = instance_ids(instances)
    host = url.removeprefix("http://")
    pools = [RawHttp(url) for _ in ids]
    loop = asyncio.get_running_loop()
    try:
        queue = list(enumerate(ids))

        async def register() -> None:
            while queue:
                n, (service, iid) = queue.pop()
                status, _, _ = await _beat(pools[n], _registration_request(host, service, n, iid, f"t-{iid}"))
                if status not in (200, 201):
                    raise RuntimeError(f"registration of {iid} answered {status}")

        await asyncio.gather(*(register() for _ in range(32)))
        beats = [_heartbeat_request(host, iid, f"t-{iid}") for _, iid in ids]
        held = 0.0
        turn = 0
        for share in OPEN_STEPS:
            rate = share * capacity
            tasks = []
            start = loop.time()
            for k in range(max(1, round(rate * step_s))):
                await asyncio.sleep(max(0.0, start + k / rate - loop.time()))
                n = turn % instances
                tasks.append(loop.create_task(_beat(pools[n], beats[n])))
                turn += 1
            ok = sum(status == 200 for status, _, _ in await asyncio.gather(*tasks))
            if ok < 0.99 * len(tasks):
                break
            held = ok / step_s
        return held
    finally:
        for pool in pools:
            pool.close()


def _open_capacity(capacity: float, *, step_s: float, pinned: bool) -> float:
    """``C_open`` (:func:`open_capacity`) of a fresh registry, heartbeats not paced (a plain replica)."""
    fleet = Fleet(3600.0, pinned=pinned, pace_heartbeats=False)
    try:
        measured = _run(open_capacity(fleet.url, capacity=capacity, step_s=step_s))
    finally:
        fleet.stop()
    print(f"open-loop capacity: {measured:.0f} heartbeats/s answered 200 in full ({measured / capacity:.0%} of "
          f"C), each instance on its own connection", flush=True)
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ratios", type=float, nargs="+", default=[2.0, 3.0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of overload per ratio")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between heartbeats of one instance")
    parser.add_argument("--ttl", type=float, default=10.0)
    parser.add_argument("--capacity-duration", type=float, default=10.0)
    parser.add_argument("--open-step", type=float, default=4.0,
                        help="seconds of each rate of the open-loop ramp that measures C_open")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin: by default the registry has core 0 and may use half of it (a cgroup CPU "
                             "quota, or a CPU hog beside it without root) and the load generator has core 1")
    parser.add_argument("--ignore-retry-after", action="store_true",
                        help="instances send on their schedule whatever the answers (default: as the client does, "
                             "not before the Retry-After of a 503 or a paced 200)")
    parser.add_argument("--no-pacing", action="store_true",
                        help="run the registry with REGISTRY_PACE_HEARTBEATS=off (default: on, the registry's default)")
    parser.add_argument("--max-in-flight", type=int,
                        help="the registry's REGISTRY_MAX_IN_FLIGHT (default: unset, the registry's default)")
    parser.add_argument("--log-level", default="warning",
                        help="the registry's REGISTRY_LOG_LEVEL (default: warning; info logs each expiry sweep); its "
                             "log stays in the phase's /tmp/bench-overload-* directory")
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()
    # A SIGTERM (a timeout around the run) unwinds like an exception, so every phase stops its processes.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    pinned = not opts.no_pin
    if pinned:
        os.sched_setaffinity(0, {1})

    if pinned:
        quota = CpuQuota.create()
        print("registry CPU: " + ("half of core 0, a cgroup quota" if quota else "core 0, beside a CPU hog"))
        if quota is not None:
            quota.remove()
    summaries = []
    for ratio in opts.ratios:
        capacity = _capacity(opts.capacity_duration, pinned=pinned)  # just before: the machine's speed drifts
        open_before = _open_capacity(capacity, step_s=opts.open_step, pinned=pinned)
        fleet = Fleet(opts.ttl, pinned=pinned, pace_heartbeats=not opts.no_pacing, max_in_flight=opts.max_in_flight,
                      log_level=opts.log_level)
        try:
            outcome = _run(overload(fleet.url, ratio=ratio, capacity=capacity, interval_s=opts.interval,
                                    duration_s=opts.duration, ttl_s=opts.ttl,
                                    honour_retry_after=not opts.ignore_retry_after, registry_pid=fleet.pid))
        finally:
            fleet.stop()
        outcome.capacity_after_per_s = _capacity(opts.capacity_duration, pinned=pinned)
        outcome.open_capacity_per_s = [
            open_before, _open_capacity(outcome.capacity_after_per_s, step_s=opts.open_step, pinned=pinned)]
        summary = outcome.summary()
        summaries.append(summary)
        print(json.dumps(summary) if opts.json else "\n".join(f"  {k}: {v}" for k, v in summary.items()))
    failed = [s for s in summaries
              if s["false_expiries"] or s["useful_share_of_capacity"] < 0.9 * min(1.0, s["ratio"])]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
