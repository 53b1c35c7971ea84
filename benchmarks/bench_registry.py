"""Heartbeat and discovery throughput of the registry against a bare Starlette ``/ping``, in one run.

    python -m benchmarks.bench_registry [--seconds 10] [--connections 32] [--instances 1000]

Starts a redis-server, ``registry-server`` and the ``/ping`` baseline on loopback (same hypercorn
settings, one worker each), loads each with ``wrk`` in turn, and prints requests/s and the ratios.
Absolute numbers on a shared machine are noise; the ratios are the figures.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from tests.support.polling import wait_until
from tests.support.processes import ManagedProcess, free_port, http_status, start_registry
from tests.support.redis_server import RedisServer

LEASE_TOKEN = "bench-registry-lease-token-0123"
LEASE_HEADER_LUA = f'wrk.headers["X-Lease-Token"] = "{LEASE_TOKEN}"\n'

HEARTBEAT_LUA = """
local ids = {%s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("PUT", "/instances/" .. ids[(n %% #ids) + 1] .. "/heartbeat")
end
"""


def wrk(url: str, seconds: int, connections: int, script: Path | None = None) -> dict[str, float]:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        args += ["-s", str(script)]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True, timeout=seconds + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)

    def ms(match: re.Match[str] | None) -> float:
        if match is None:
            return float("nan")
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
        return float(match.group(1)) * scale

    return {"rps": rps, "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
            "socket_errors": 1.0 if errors else 0.0, "p50_ms": ms(p50), "p99_ms": ms(p99)}


def post(url: str, body: dict[str, object]) -> int:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return int(resp.status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--instances", type=int, default=1000)
    opts = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-registry-"))
    redis = RedisServer(data_dir=tmp / "redis")
    redis.start()
    registry = start_registry(tmp, redis_url=redis.url, ttl=3600, sweep=1.0,
                              extra_env={"REGISTRY_LOG_LEVEL": "warning"})
    ping_port = free_port()
    ping = ManagedProcess(args=[sys.executable, "-m", "benchmarks.ping_app", str(ping_port)], env=dict(
        __import__("os").environ), log_path=tmp / "ping.log").start()
    try:
        registry.wait_healthy()
        wait_until(lambda: http_status(f"http://127.0.0.1:{ping_port}/ping") == 200, timeout=20,
                   message="the ping baseline")
        ids = []
        for n in range(opts.instances):
            iid = f"bench-{n}"
            post(registry.url + "/instances", {"name": f"svc{n % 100}", "port": 1000 + n % 60000, "host": "10.0.0.1",
                                               "id": iid, "lease_token": LEASE_TOKEN})
            ids.append(iid)
        for n in range(10):
            post(registry.url + "/instances", {"name": "Discovered", "port": 2000 + n, "host": "10.0.0.2",
                                               "id": f"disc-{n}", "metadata": {"zone": "eu-1"}})
        script = tmp / "heartbeat.lua"
        script.write_text(LEASE_HEADER_LUA + HEARTBEAT_LUA % ",".join(f'"{i}"' for i in ids))
        wrk(f"http://127.0.0.1:{ping_port}/ping", 2, opts.connections)  # warm-up
        results = {
            "ping": wrk(f"http://127.0.0.1:{ping_port}/ping", opts.seconds, opts.connections),
            "heartbeat": wrk(registry.url, opts.seconds, opts.connections, script),
            "discovery": wrk(registry.url + "/services/Discovered", opts.seconds, opts.connections),
        }
        base = results["ping"]["rps"]
        print(f"{'endpoint':<12}{'req/s':>10}{'ratio':>8}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
        for name, r in results.items():
            print(f"{name:<12}{r['rps']:>10.0f}{r['rps'] / base:>8.2f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
                  f"{r['non2xx']:>9.0f}")
    finally:
        ping.stop()
        registry.stop()
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
