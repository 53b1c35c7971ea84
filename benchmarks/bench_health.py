"""Active health checks, measured with real processes on a real Redis.

    python -m benchmarks.bench_health [--interval 5] [--timeout 2] [--failures 2] [--instances 1000]
                                      [--seconds 10] [--rate 500] [--rounds 2]
                                      [--parts detection,cost,replicas[,instructions]]

(a) Detection. One registry (checks every ``--interval`` s) and one backend process, registered with a 90 s
    lease. The backend is SIGKILLed: seconds until it is out of ``status=UP`` discovery (bound: interval x
    failures + timeout). A second backend answers 500 on its health endpoint while its lease is renewed:
    seconds until it is out; then it answers 200 again: seconds until it is back (bound: one interval).
(b) Cost. One registry with ``--instances`` instances and one heartbeat load (``hey`` at ``--rate`` per s):
    windows of ``--seconds`` with the instances registered without checks and with every one of them checked
    each interval (all pointing at one backend), alternating A B B A over ``--rounds`` rounds in one run.
    Heartbeat p50/p99, the replica's CPU seconds per second, the checks it ran per second, and its CPU per
    check (CPU with checks less CPU without, per check: steadier than latency on a shared machine); then,
    with no heartbeats, the replica's whole CPU per check ("checks alone", the steadiest of the CPU figures).
(c) Two replicas on one Redis, ``--instances`` instances checked every ``--interval`` for ``--seconds``: checks
    run by each replica and the CPU each spent, and checks per instance per interval in all (goal: about 1,
    not 2).
(d) Instructions (only when asked for in ``--parts``: valgrind). One registry under callgrind, idle and then
    with ``--instances`` / 10 instances checked every second: its instructions per check, the idle rate
    taken off. Noise-free, unlike the CPU and latency figures on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis as redis_client

from benchmarks.bench_instructions import counted, under_callgrind
from benchmarks.bench_registry import cpu_seconds, hey, median
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


def _set_checks(registry: RegistryProcess, instances: int, port: int, checks: object) -> None:
    """(Re-)register the cost part's instances asking for ``checks`` (``False``: none), eight at a time."""
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: register(registry, f"svc{n % 100}", f"plain-{n}", port, checks=checks),
                      range(instances)))


def _checks_settled(registry: RegistryProcess, checking: bool, instances: int, timeout: float) -> None:
    """Wait until the checks run at their steady pace: a whole round ran since they were asked for, or none
    ran for a second since they were dropped (each stops at its next due time)."""
    if checking:
        before = checks_run(registry)
        wait_until(lambda: checks_run(registry) - before >= instances, timeout=timeout, message="a round of checks")
        return
    last = [checks_run(registry), time.monotonic()]

    def quiet() -> bool:
        now = checks_run(registry)
        if now != last[0]:
            last[:] = [now, time.monotonic()]
        return time.monotonic() - last[1] >= 1.0

    wait_until(quiet, timeout=timeout, interval=0.1, message="the checks to stop")


def runnable_wait_seconds(pid: int) -> float:
    """Seconds the process's threads have spent ready to run but waiting for a core (``schedstat``)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return total / 1e9


def _window(registry: RegistryProcess, backend: ManagedProcess, url: str, seconds: int,
            rate: float) -> dict[str, float]:
    """One window of heartbeats at ``rate``, with the checks the replica ran meanwhile, its CPU, the time it
    waited for a core (a shared machine's share of the latency), and the CPU of the backend answering."""
    pid = registry.pid
    cpu, wait, backend_cpu = cpu_seconds(pid), runnable_wait_seconds(pid), cpu_seconds(backend.pid)
    checks, began = checks_run(registry), time.monotonic()
    figures = hey(url, seconds, rate, method="PUT", headers={"X-Lease-Token": LEASE_TOKEN})
    took = time.monotonic() - began
    figures["checks_per_s"] = (checks_run(registry) - checks) / took
    figures["cpu_per_s"] = (cpu_seconds(pid) - cpu) / took
    figures["core_wait_per_s"] = (runnable_wait_seconds(pid) - wait) / took
    figures["backend_cpu_per_s"] = (cpu_seconds(backend.pid) - backend_cpu) / took
    return figures


def _checks_alone(registry: RegistryProcess, seconds: int) -> dict[str, float]:
    """The replica's CPU per check with no other load: its whole CPU over the checks it ran."""
    cpu, checks, began = cpu_seconds(registry.pid), checks_run(registry), time.monotonic()
    time.sleep(seconds)  # a measuring window of a set length, not a wait for an outcome
    took, ran = time.monotonic() - began, checks_run(registry) - checks
    return {"checks_per_s": ran / took, "cpu_per_s": (cpu_seconds(registry.pid) - cpu) / took,
            "cpu_us_per_check": (cpu_seconds(registry.pid) - cpu) / max(ran, 1) * 1e6}


def cost(tmp: Path, redis: RedisServer, instances: int, interval: float, seconds: int, rate: float,
         rounds: int) -> dict[str, dict[str, float]]:
    """Heartbeat latency at one fixed rate with the instances unchecked and checked, in windows that
    alternate A B B A ... (so a drift of the machine's load weighs on both alike); each figure is the
    median of its windows. ``cpu_us_per_check``: the replica's CPU with checks, less without, per check."""
    backend_port = free_port()
    backend = start_backend(tmp, backend_port)
    registry = start_registry(tmp, redis_url=redis.url, ttl=3600, extra_env=QUIET, name="cost")
    try:
        registry.wait_healthy()
        url = f"{registry.url}/instances/beat-0/heartbeat"
        register(registry, "Beat", "beat-0", backend_port, checks=False)
        _set_checks(registry, instances, backend_port, False)
        hey(url, 2, rate, method="PUT", headers={"X-Lease-Token": LEASE_TOKEN})  # warm-up
        windows: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        checking = False
        settle = interval * 2 + 10
        for n in range(rounds):
            for want in ((False, True) if n % 2 == 0 else (True, False)):
                if want != checking:
                    _set_checks(registry, instances, backend_port, {"interval": interval} if want else False)
                    _checks_settled(registry, want, instances, settle)
                    checking = want
                windows[want].append(_window(registry, backend, url, seconds, rate))
        results = {label: {key: median([w[key] for w in windows[want]]) for key in windows[want][0]}
                   for label, want in (("without checks", False), (f"with {instances} checked", True))}
        with_checks, without = results[f"with {instances} checked"], results["without checks"]
        with_checks["cpu_us_per_check"] = ((with_checks["cpu_per_s"] - without["cpu_per_s"])
                                           / max(with_checks["checks_per_s"], 1e-9) * 1e6)
        if not checking:
            _set_checks(registry, instances, backend_port, {"interval": interval})
            _checks_settled(registry, True, instances, settle)
        results["checks alone"] = _checks_alone(registry, seconds)
        return results
    finally:
        registry.stop()
        backend.stop()


def two_replicas(tmp: Path, redis: RedisServer, instances: int, interval: float, seconds: int) -> dict[str, float]:
    """Checks per instance per interval (goal: 1, not 2), and what each replica ran and spent on them."""
    backend_port = free_port()
    backend = start_backend(tmp, backend_port)
    a = start_registry(tmp, redis_url=redis.url, ttl=3600, extra_env=QUIET, name="replica-a")
    b = start_registry(tmp, redis_url=redis.url, ttl=3600, extra_env=QUIET, name="replica-b")
    try:
        a.wait_healthy()
        b.wait_healthy()
        for n in range(instances):
            register(a if n % 2 else b, "Pair", f"pair-{n}", backend_port, checks={"interval": interval})
        before = checks_run(a) + checks_run(b)
        wait_until(lambda: checks_run(a) + checks_run(b) - before >= instances, timeout=interval * 2 + 10,
                   message="a round of checks")
        a0, b0, began = checks_run(a), checks_run(b), time.monotonic()
        cpu_a, cpu_b = cpu_seconds(a.pid), cpu_seconds(b.pid)
        time.sleep(seconds)  # a measuring window of a set length, not a wait for an outcome
        took = time.monotonic() - began
        ran_a, ran_b = checks_run(a) - a0, checks_run(b) - b0
        return {"replica_a": ran_a, "replica_b": ran_b, "seconds": took,
                "checks_per_s_a": ran_a / took, "checks_per_s_b": ran_b / took,
                "cpu_per_s_a": (cpu_seconds(a.pid) - cpu_a) / took, "cpu_per_s_b": (cpu_seconds(b.pid) - cpu_b) / took,
                "checks_per_instance_per_interval": (ran_a + ran_b) / instances / (took / interval)}
    finally:
        a.stop()
        b.stop()
        backend.stop()


def instructions(tmp: Path, redis: RedisServer, instances: int, seconds: int) -> dict[str, float]:
    """The replica's instructions per check, counted by callgrind (noise-free on a shared machine): one
    window idle, one with ``instances`` instances checked every second; the idle rate is taken off."""
    backend_port = free_port()
    backend = start_backend(tmp, backend_port)
    dumps = tmp / "health-dumps"
    dumps.mkdir(exist_ok=True)
    registry = start_registry(tmp, redis_url=redis.url, ttl=3600, sweep=3600, extra_env=QUIET, name="counted",
                              wrapper=under_callgrind([], dumps / "cg"))
    try:
        registry.wait_healthy(timeout=180)

        def window(tag: str) -> tuple[int, float, float]:
            subprocess.run(["callgrind_control", "-z", str(registry.pid)], capture_output=True, check=True,
                           timeout=120)
            checks, began = checks_run(registry), time.monotonic()
            time.sleep(seconds)  # a counting window of a set length, not a wait for an outcome
            count = counted(registry.pid, dumps, tag)
            return count, checks_run(registry) - checks, time.monotonic() - began

        idle, _none, idle_s = window("idle")
        for n in range(instances):
            register(registry, f"svc{n % 10}", f"counted-{n}", backend_port, checks={"interval": 1.0})
        before = checks_run(registry)
        wait_until(lambda: checks_run(registry) - before >= instances * 2, timeout=120, message="two rounds")
        busy, checks, busy_s = window("checks")
        return {"checks_per_s": checks / busy_s, "idle_instructions_per_s": idle / idle_s,
                "instructions_per_check": (busy - idle / idle_s * busy_s) / max(checks, 1)}
    finally:
        registry.stop()
        backend.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--failures", type=int, default=2)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--rounds", type=int, default=2, help="windows of each kind in the cost part (default 2)")
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
                for label, figures in cost(tmp, redis, args.instances, args.interval, args.seconds, args.rate,
                                      args.rounds).items():
                    print(f"heartbeat {label}:", json.dumps(figures))
            flush(redis)
            if "instructions" in parts:
                print("instructions:", json.dumps(instructions(tmp, redis, args.instances // 10, args.seconds)))
            flush(redis)
            if "replicas" in parts:
                pair = two_replicas(tmp, redis, args.instances, args.interval, args.seconds)
                print("two replicas:", json.dumps(pair))
        finally:
            redis.stop()


if __name__ == "__main__":
    main()
