"""What dead service names cost an idle registry on Redis, before and after their retention, in one run.

    python -m benchmarks.bench_retention [--names 10 10000] [--retention 120] [--window 5]

For each count of names: a fresh Redis where every name was registered and deregistered once through
``RedisStore`` (64 at a time, quicker than through HTTP), beside one steady service of 10 live instances
(TTL 3600 s, nothing renews or expires); then a registry on it (``REGISTRY_SERVICE_RETENTION=--retention``,
``REGISTRY_SWEEP_INTERVAL=1``). Measured while the names are retained, once the registry has dropped them,
and once the markers of their last revisions have expired too (one retention later): the Redis commands
the registry sent over ``--window`` idle seconds (``INFO commandstats``: a count, not a time, so the
machine's load does not move it), the registry process's CPU time (user + system, from ``/proc``) over
the same seconds, how many dead names were still retained then, the Redis keys, the size of ``/metrics``
and the time of ``GET /services`` (median of 20, with how many answered 503). Counts and CPU time, not
throughput: the machine may be shared.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from registry_server.model import InstanceRegistration
from registry_server.store.redis_store import RedisStore, connect
from registry_server.store.redis_url import parse_redis_url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def _keys(port: int) -> int:
    out = subprocess.run(["redis-cli", "-p", str(port), "DBSIZE"], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


async def _seed(redis_url: str, names: int) -> None:
    store = RedisStore(connect(parse_redis_url(redis_url), timeout_s=5.0), op_timeout_s=30.0)
    now = int(time.time() * 1000)
    try:
        for i in range(10):
            await store.register(InstanceRegistration(id=f"steady-{i}", name="steady", host="10.0.0.2",
                                                      port=1000 + i), now, 3_600_000)
        sem = asyncio.Semaphore(64)

        async def one(i: int) -> None:  # a name left without instances is set aside as it is deregistered
            async with sem:
                await store.register(InstanceRegistration(id=f"dead-{i}-1", name=f"dead-{i}", host="10.0.0.1",
                                                          port=1), now, 3_600_000)
                await store.deregister(f"dead-{i}-1", now, lease_token_hash=None)

        await asyncio.gather(*(one(i) for i in range(names)))
    finally:
        await store.close()


def _redis(port: int, *words: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(port), *words], capture_output=True, text=True,
                          check=True).stdout


def _commands(port: int) -> int:
    """Commands Redis ran since its statistics were reset, less the ``CONFIG RESETSTAT`` that reset them."""
    stats = _redis(port, "INFO", "commandstats")
    return sum(int(calls) for calls in re.findall(r"cmdstat_[^:]+:calls=(\d+)", stats)) - 1


def _measure(http: httpx.Client, pid: int, redis_port: int, window: float) -> dict[str, float]:
    retained = _retained(redis_port)
    _redis(redis_port, "CONFIG", "RESETSTAT")
    before = _cpu_s(pid)
    time.sleep(window)  # the quantity measured is what an idle registry spends over this window
    cpu = _cpu_s(pid) - before
    commands = _commands(redis_port)
    timings, failed = [], 0
    for _ in range(20):
        started = time.perf_counter()
        failed += http.get("/services").status_code != 200  # a 503: the store's deadline ran out
        timings.append(time.perf_counter() - started)
    return {"cpu": cpu, "commands": commands, "retained": retained, "keys": _keys(redis_port),
            "metrics": len(http.get("/metrics").content), "services_ms": statistics.median(timings) * 1000,
            "failed": failed}


def run(names: int, retention: float, window: float
        ) -> tuple[dict[str, float], dict[str, float], dict[str, float], float]:
    with tempfile.TemporaryDirectory() as tmp:
        redis_port, port = _free_port(), _free_port()
        registry: subprocess.Popen[bytes] | None = None
        redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL,
                                 start_new_session=True)
        env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "REGISTRY_HOST": "127.0.0.1",
               "REGISTRY_PORT": str(port), "REGISTRY_SWEEP_INTERVAL": "1", "REGISTRY_INSTANCE_TTL": "3600",
               "REGISTRY_SERVICE_RETENTION": str(retention), "REGISTRY_LOG_LEVEL": "warning"}
        try:
            _wait(lambda: _answers(redis_port), 20, "Redis")
            started = time.monotonic()
            baseline = _keys(redis_port)
            asyncio.run(_seed(env["REDIS_URL"], 0))
            baseline = _keys(redis_port) - baseline  # the steady service's keys
            asyncio.run(_seed(env["REDIS_URL"], names))
            seed_s = time.monotonic() - started
            exe = Path(sys.executable).with_name("registry-server")
            registry = subprocess.Popen([str(exe)], env=env, start_new_session=True)
            url = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=url, timeout=30) as http:
                _wait(lambda: _healthy(http), 20, "the registry")
                if time.monotonic() - started + window > retention:
                    raise SystemExit(f"seeding took {seed_s:.1f}s: raise --retention")
                retained = _measure(http, registry.pid, redis_port, window)
                _wait(lambda: _retained(redis_port) == 0, retention * 2 + 60, "the dead names to be dropped")
                dropped = _measure(http, registry.pid, redis_port, window)
                _wait(lambda: _keys(redis_port) < baseline + 10, retention * 2 + 60, "the retired markers to expire")
                settled = _measure(http, registry.pid, redis_port, window)
                return retained, dropped, settled, seed_s
        finally:
            for proc in (registry, redis):
                if proc is not None:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=20)


def _retained(port: int) -> int:
    """The dead names the store still holds: set aside as idle, or indexed beside the steady service."""
    return int(_redis(port, "ZCARD", "reg:idle")) + _indexed(port) - 1


def _indexed(port: int) -> int:
    out = subprocess.run(["redis-cli", "-p", str(port), "SCARD", "reg:services"], capture_output=True, text=True,
                         check=True)
    return int(out.stdout.strip())


def _answers(port: int) -> bool:
    answer = subprocess.run(["redis-cli", "-p", str(port), "PING"], capture_output=True, text=True, check=False)
    return answer.stdout.strip() == "PONG"


def _healthy(http: httpx.Client) -> bool:
    try:
        return http.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", type=int, nargs="+", default=[10, 10_000])
    parser.add_argument("--retention", type=float, default=120.0)
    parser.add_argument("--window", type=float, default=5.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)  # a store warning while seeding would skew the figures
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"| dead names | when | retained | Redis commands per {args.window:g} s idle | registry CPU per "
          f"{args.window:g} s idle | Redis keys | /metrics bytes | GET /services |")
    print("|---|---|---|---|---|---|---|---|")
    for names in args.names:
        retained, dropped, settled, churn_s = run(names, args.retention, args.window)
        for when, row in (("retained", retained), ("just dropped", dropped), ("markers expired", settled)):
            failures = f" ({int(row['failed'])} of 20 answered 503)" if row["failed"] else ""
            print(f"| {names:,} | {when} | {int(row['retained']):,} | {int(row['commands']):,} | {row['cpu']:.3f} s "
                  f"| {int(row['keys']):,} | {int(row['metrics']):,} | {row['services_ms']:.2f} ms{failures} |")
        print(f"(seeding {names:,} names: {churn_s:.1f} s)", file=sys.stderr)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
