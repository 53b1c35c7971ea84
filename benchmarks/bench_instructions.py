"""Instructions per request of the registry and of the bare ``/ping``, counted by callgrind.

    python -m benchmarks.bench_instructions [--requests 2000] [--concurrency 8] [--warmup N]

The throughput ratios of ``bench_registry`` move 0.7 to 0.8 from run to run on a shared machine (the
rounds of one run spread wider still). This counts what does not move: the user-space instructions each
server executes per request. It starts a redis-server, then ``registry-server`` and the ``/ping``
baseline (same hypercorn settings, same loop) each under ``valgrind --tool=callgrind``, registers one
heartbeating instance, and for each load sends a warm-up (``--warmup``), zeroes the counters
(``callgrind_control -z``), sends ``--requests`` requests with ``hey``, and dumps the counters
(``callgrind_control -d``): instructions / requests. Each load is compared with the ping receiving the
same kind of request (the heartbeat's headers, and its body for the body's load).

Kernel work (socket calls) is not counted, and an instruction is not a fixed amount of time: this is the
servers' own work, the part their code decides, not their throughput. Redis runs outside valgrind.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks.bench_registry import HEARTBEAT_BODY, LEASE_TOKEN, post
from tests.support.polling import wait_until
from tests.support.processes import ManagedProcess, free_port, http_status, start_registry
from tests.support.redis_server import RedisServer


@dataclass
class Load:
    name: str
    baseline: str
    method: str
    path: str
    body: str | None = None


LOADS = [
    Load("ping GET", "ping GET", "GET", "/ping"),
    Load("ping PUT", "ping PUT", "PUT", "/ping", HEARTBEAT_BODY),
    Load("heartbeat", "ping GET", "PUT", "/instances/counted-1/heartbeat"),
    Load("heartbeat+body", "ping PUT", "PUT", "/instances/counted-1/heartbeat", HEARTBEAT_BODY),
]
"""No discovery: its answers are cached for 0.5 s of wall time, and under valgrind (tens of times slower)
that covers tens of times fewer requests, so its count here would not be its count in service."""


def under_callgrind(args: list[str], out: Path) -> list[str]:
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", *args]


def send(url: str, load: Load, requests: int, concurrency: int) -> None:
    args = ["hey", "-n", str(requests), "-c", str(concurrency), "-m", load.method,
            "-H", f"X-Lease-Token: {LEASE_TOKEN}"]
    if load.body is not None:
        args += ["-H", "Content-Type: application/json", "-d", load.body]
    out = subprocess.run([*args, url + load.path], capture_output=True, text=True, check=True, timeout=1800).stdout
    statuses = re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)
    if not statuses or any(code != "200" for code, _n in statuses):
        sys.exit(f"{load.name}: not every answer was 200: {statuses}\n{out}")


def counted(pid: int, out_dir: Path, tag: str) -> int:
    """Dump ``pid``'s counters as ``tag``; the instructions counted since they were last zeroed."""
    subprocess.run(["callgrind_control", "-d", tag, str(pid)], capture_output=True, check=True, timeout=120)
    for dump in out_dir.glob("*"):
        text = dump.read_text(errors="replace")
        if f"desc: Trigger: dump {tag}\n" in text:
            match = re.search(r"^summary:\s+(\d+)", text, re.M)
            if match:
                return int(match.group(1))
    sys.exit(f"no callgrind dump for {tag} in {out_dir}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests counted per load (default: 2000)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent requests (default: 8)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="uncounted requests sent first per load (default: a tenth of --requests, at least 50)")
    opts = parser.parse_args()
    if opts.warmup is not None and opts.warmup < 0:
        parser.error("--warmup must be 0 or more")
    for tool in ("valgrind", "callgrind_control", "hey", "redis-server"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install valgrind hey redis-server)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
    redis = RedisServer(data_dir=tmp / "redis")
    redis.start()
    dumps = {"registry": tmp / "registry-dumps", "ping": tmp / "ping-dumps"}
    for directory in dumps.values():
        directory.mkdir()
    ping_port = free_port()
    registry = start_registry(tmp, redis_url=redis.url, ttl=3600, sweep=3600,  # no sweep while counting
                              extra_env={"REGISTRY_LOG_LEVEL": "warning"},
                              wrapper=under_callgrind([], dumps["registry"] / "cg"))
    ping = ManagedProcess(args=under_callgrind([sys.executable, "-m", "benchmarks.ping_app", str(ping_port)],
                                               dumps["ping"] / "cg"),
                          env=registry.env, log_path=tmp / "ping.log").start()  # the registry's own env
    servers = {"registry": (registry.url, registry.pid), "ping": (f"http://127.0.0.1:{ping_port}", ping.pid)}
    try:
        registry.wait_healthy(timeout=180)
        wait_until(lambda: http_status(servers["ping"][0] + "/ping") == 200, timeout=180, message="the ping")
        post(registry.url + "/instances", {"name": "Counted", "port": 1000, "host": "10.0.0.1", "id": "counted-1",
                                           "lease_token": LEASE_TOKEN})
        warmup = max(50, opts.requests // 10) if opts.warmup is None else opts.warmup
        per_request: dict[str, float] = {}
        for n, load in enumerate(LOADS):
            server = "ping" if load.name.startswith("ping") else "registry"
            url, pid = servers[server]
            if warmup:
                send(url, load, warmup, opts.concurrency)
            subprocess.run(["callgrind_control", "-z", str(pid)], capture_output=True, check=True, timeout=120)
            send(url, load, opts.requests, opts.concurrency)
            per_request[load.name] = counted(pid, dumps[server], f"load-{n}") / opts.requests
            print(f"{load.name}: {per_request[load.name] / 1000:.1f}k instructions per request", flush=True)
        print(f"\ncallgrind, {opts.requests} requests per load, hey -c {opts.concurrency}; the ratio is the "
              "baseline's instructions per request over this load's (as bench_registry's CPU ratio)")
        print(f"{'load':<16}{'vs':<10}{'instr/request':>14}{'ratio':>7}")
        for load in LOADS:
            ratio = per_request[load.baseline] / per_request[load.name]
            print(f"{load.name:<16}{load.baseline:<10}{per_request[load.name]:>14,.0f}{ratio:>7.3f}")
    finally:
        ping.stop(timeout=30)
        registry.stop(timeout=30)
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
