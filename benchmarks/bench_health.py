"""Active health checks, measured with real processes on a real Redis.

    python -m benchmarks.bench_health [--interval 5] [--timeout 2] [--failures 2] [--instances 1000]
                                      [--seconds 10] [--rate 500]

(a) Detection. One registry (checks every ``--interval`` s) and one backend process, registered with a 90 s
    lease. The backend is SIGKILLed: seconds until it is out of ``status=UP`` discovery (bound: interval x
    failures + timeout). A second backend answers 500 on its health endpoint while its lease is renewed:
    seconds until it is out; then it answers 200 again: seconds until it is back (bound: one interval).
(b) Cost. One registry with ``--instances`` instances: heartbeat p50/p99 with ``hey`` at ``--rate`` per s,
    first with the instances registered without checks, then with every one of them checked each interval
    (all pointing at one backend), in one run; and the checks per second that replica ran meanwhile.
(c) Two replicas on one Redis, ``--instances`` instances checked every ``--interval`` for ``--seconds``: checks
    run by each replica, and checks per instance per interval in all (goal: about 1, not 2).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import redis as redis_client

from benchmarks.bench_registry import hey
from tests.support.polling import wait_until
from tests.support.processes import ManagedProcess, RegistryProcess, free_port, start_registry
from tests.support.redis_server import RedisServer

REPO = Path(__file__).resolve().parents[1]
QUIET = {"REGISTRY_LOG_LEVEL": "warning"}
LEASE_TOKEN = "bench-health-lease-token-0123456789"


def flush(redis: RedisServer) -> None:
    """Each part starts from an empty store: what an earlier part registered is not checked in the next."""
    client = redis_client.Redis.from_url(redis.url)
    client.flushall()
    client.close()


def start_backend(tmp: Path, port: int) -> ManagedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = ManagedProcess([sys.executable, "-m", "benchmarks.health_backend", str(port)], env,
                          tmp / f"backend-{port}.log").start()
    wait_until(lambda: _get(f"http://127.0.0.1:{port}/health")[0] == 200, timeout=20, message="the backend")
    return proc


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), b""


def _post(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=5).close()


def up_ids(registry: RegistryProcess, service: str) -> set[str]:
    _status, body = _get(f"{registry.url}/services/{service}?status=UP")
    return {inst["id"] for inst in json.loads(body)["instances"]}


def register(registry: RegistryProcess, service: str, instance_id: str, port: int, checks: object = None) -> None:
    body: dict[str, object] = {"name": service, "host": "127.0.0.1", "port": port, "id": instance_id,
                               "lease_token": LEASE_TOKEN}
    if checks is not None:
        body["health_check"] = checks
    req = urllib.request.Request(registry.url + "/instances", data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json", "X-Lease-Token": LEASE_TOKEN})
    urllib.request.urlopen(req, timeout=5).close()


def seconds_until(predicate: object, timeout: float) -> float:
    began = time.monotonic()
    wait_until(predicate, timeout=timeout, interval=0.02, message="the change")  # type: ignore[arg-type]
    return time.monotonic() - began


def detection(tmp: Path, redis: RedisServer, interval: float, timeout: float, failures: int) -> dict[str, float]:
    env = {**QUIET, "REGISTRY_HEALTH_CHECK_INTERVAL": str(interval), "REGISTRY_HEALTH_CHECK_TIMEOUT": str(timeout),
           "REGISTRY_HEALTH_CHECK_FAILURES": str(failures)}
    registry = start_registry(tmp, redis_url=redis.url, ttl=90, extra_env=env, name="detect")
    killed_port, sick_port = free_port(), free_port()
    killed, sick = start_backend(tmp, killed_port), start_backend(tmp, sick_port)
    try:
        registry.wait_healthy()
        register(registry, "Killed", "killed-1", killed_port)
        register(registry, "Sick", "sick-1", sick_port)
        bound = interval * failures + timeout
        wait_until(lambda: _checked(registry, "Killed") and _checked(registry, "Sick"), timeout=interval * 3,
                   message="a first passing check of both")
        killed.kill()
        out_killed = seconds_until(lambda: "killed-1" not in up_ids(registry, "Killed"), bound * 3)
        _post(f"http://127.0.0.1:{sick_port}/sick")
        out_sick = seconds_until(lambda: "sick-1" not in up_ids(registry, "Sick"), bound * 3)
        _post(f"http://127.0.0.1:{sick_port}/well")
        back = seconds_until(lambda: "sick-1" in up_ids(registry, "Sick"), interval * 3)
        return {"killed_out_s": out_killed, "sick_out_s": out_sick, "back_in_s": back, "bound_s": bound}
    finally:
        sick.stop()
        registry.stop()


def _checked(registry: RegistryProcess, service: str) -> bool:
    _status, body = _get(f"{registry.url}/services/{service}")
    return all(inst["health"]["status"] == "passing" for inst in json.loads(body)["instances"])


def checks_run(registry: RegistryProcess) -> float:
    _status, body = _get(registry.url + "/metrics")
    return sum(float(v) for v in re.findall(rb'^registry_health_checks_total\{[^}]*\} ([\d.e+]+)$', body, re.M))


def cost(tmp: Path, redis: RedisServer, instances: int, interval: float, seconds: int,
         rate: float) -> dict[str, dict[str, float]]:
    backend_port = free_port()
    backend = start_backend(tmp, backend_port)
    registry = start_registry(tmp, redis_url=redis.url, ttl=3600, extra_env=QUIET, name="cost")
    try:
        registry.wait_healthy()
        url = f"{registry.url}/instances/beat-0/heartbeat"
        headers = {"X-Lease-Token": LEASE_TOKEN}
        register(registry, "Beat", "beat-0", backend_port, checks=False)
        for n in range(instances):
            register(registry, f"svc{n % 100}", f"plain-{n}", backend_port, checks=False)
        hey(url, 2, rate, method="PUT", headers=headers)  # warm-up
        results = {"without checks": hey(url, seconds, rate, method="PUT", headers=headers)}
        for n in range(instances):  # the same instances, now asking to be checked every interval
            register(registry, f"svc{n % 100}", f"plain-{n}", backend_port, checks={"interval": interval})
        wait_until(lambda: checks_run(registry) >= instances, timeout=interval * 4, message="a round of checks")
        before, began = checks_run(registry), time.monotonic()
        results[f"with {instances} checked"] = hey(url, seconds, rate, method="PUT", headers=headers)
        results[f"with {instances} checked"]["checks_per_s"] = (checks_run(registry) - before) / (
            time.monotonic() - began)
        return results
    finally:
        registry.stop()
        backend.stop()


def two_replicas(tmp: Path, redis: RedisServer, instances: int, interval: float, seconds: int) -> dict[str, float]:
    backend_port = free_port()
    backend = start_backend(tmp, backend_port)
    a = start_registry(tmp, redis_url=redis.url, ttl=3600, extra_env=QUIET, name="replica-a")
    b = start_registry(tmp, redis_url=redis.url, ttl=3600, extra_env=QUIET, name="replica-b")
    try:
        a.wait_healthy()
        b.wait_healthy()
        for n in range(instances):
            register(a if n % 2 else b, "Pair", f"pair-{n}", backend_port, checks={"interval": interval})
        time.sleep(interval + 1)  # a warm-up of a set length: every instance past its first check
        a0, b0, began = checks_run(a), checks_run(b), time.monotonic()
        time.sleep(seconds)  # a measuring window of a set length, not a wait for an outcome
        took = time.monotonic() - began
        ran_a, ran_b = checks_run(a) - a0, checks_run(b) - b0
        return {"replica_a": ran_a, "replica_b": ran_b, "seconds": took,
                "checks_per_instance_per_interval": (ran_a + ran_b) / instances / (took / interval)}
    finally:
        a.stop()
        b.stop()
        backend.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--failures", type=int, default=2)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--parts", default="detection,cost,replicas")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        redis = RedisServer(tmp / "redis")
        redis.start()
        try:
            if "detection" in parts:
                print("detection:", json.dumps(detection(tmp, redis, args.interval, args.timeout, args.failures)))
            flush(redis)
            if "cost" in parts:
                for label, figures in cost(tmp, redis, args.instances, args.interval, args.seconds, args.rate).items():
                    print(f"heartbeat {label}:", json.dumps(figures))
            flush(redis)
            if "replicas" in parts:
                pair = two_replicas(tmp, redis, args.instances, args.interval, args.seconds)
                print("two replicas:", json.dumps(pair))
        finally:
            redis.stop()


if __name__ == "__main__":
    main()
