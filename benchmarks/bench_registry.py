"""Heartbeat and discovery throughput of the registry against a bare Starlette ``/ping``, in one run.

    python -m benchmarks.bench_registry [--seconds 10] [--rounds 3] [--connections 32] [--instances 1000]

Starts a redis-server, ``registry-server`` and the ``/ping`` baseline on loopback (same hypercorn
settings, one worker each), loads each with ``wrk`` in turn, round after round, and prints requests/s and
the median of the rounds' ratios; then p50/p99 latency of each at a fixed rate of half its maximum
(``hey``). Absolute numbers on a shared machine are noise; the ratios are the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
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

HEARTBEAT_BODY = '{"status": "UP"}'
"""What ``ServiceRegistryManager`` sends with every heartbeat."""
HEARTBEAT_LUA = """
local ids = {%s}
local n = 0
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  return wrk.format("PUT", "/instances/" .. ids[(n %% #ids) + 1] .. "/heartbeat", nil, '""" + HEARTBEAT_BODY + """')
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


def hey(url: str, seconds: int, rate: float, *, method: str = "GET", headers: dict[str, str] | None = None,
        body: str | None = None, workers: int = 8) -> dict[str, float]:
    """Latency at a fixed rate (``hey -q`` paces each worker), the rate split evenly over ``workers``."""
    args = ["hey", "-z", f"{seconds}s", "-c", str(workers), "-q", f"{max(rate / workers, 0.1):.2f}", "-m", method]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    if body is not None:
        args += ["-d", body]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True, timeout=seconds + 30).stdout

    def pct(p: int) -> float:
        match = re.search(rf"\s{p}% in ([\d.]+) secs", out)
        return float(match.group(1)) * 1000 if match else float("nan")

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    codes = dict(re.findall(r"\[(\d{3})\]\s+(\d+) responses", out))
    bad = sum(int(n) for code, n in codes.items() if not code.startswith("2"))
    return {"rps": float(rps.group(1)) if rps else float("nan"), "p50_ms": pct(50), "p99_ms": pct(99),
            "non2xx": float(bad)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loaded(pid: int, url: str, seconds: int, connections: int, script: Path | None) -> dict[str, float]:
    """A wrk run, with the CPU the server under load spent per request (steadier than throughput on a
    shared machine: it does not move when another process takes the cores)."""
    before = cpu_seconds(pid)
    result = wrk(url, seconds, connections, script)
    result["cpu_us"] = (cpu_seconds(pid) - before) / (result["rps"] * seconds) * 1e6
    return result


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="ping, heartbeat and discovery are loaded in turn this many times; the figures "
                             "are the medians of each round's ratios")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--latency-seconds", type=int, default=None,
                        help="length of each fixed-rate latency run (default: --seconds)")
    opts = parser.parse_args()
    for tool in ("wrk", "hey"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install {tool})")
    tmp = Path(tempfile.mkdtemp(prefix="bench-registry-"))
    redis = RedisServer(data_dir=tmp / "redis")
    redis.start()
    registry = start_registry(tmp, redis_url=redis.url, ttl=3600, sweep=1.0,
                              extra_env={"REGISTRY_LOG_LEVEL": "warning"})
    ping_port = free_port()
    ping = ManagedProcess(args=[sys.executable, "-m", "benchmarks.ping_app", str(ping_port)], env=dict(
        os.environ), log_path=tmp / "ping.log").start()
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
        urls = {"ping": f"http://127.0.0.1:{ping_port}/ping", "heartbeat": registry.url,
                "discovery": registry.url + "/services/Discovered"}
        scripts = {"heartbeat": script}
        pids = {"ping": ping.proc.pid, "heartbeat": registry.proc.pid, "discovery": registry.proc.pid}
        wrk(urls["ping"], 2, opts.connections)  # warm-up
        rounds: list[dict[str, dict[str, float]]] = []
        for n in range(opts.rounds):
            rounds.append({name: loaded(pids[name], url, opts.seconds, opts.connections, scripts.get(name))
                           for name, url in urls.items()})
            r = rounds[-1]
            print(f"round {n + 1}: " + ", ".join(
                f"{name} {r[name]['rps']:.0f}/s ({r[name]['rps'] / r['ping']['rps']:.2f}, "
                f"{r[name]['cpu_us']:.0f} us CPU)" for name in urls), flush=True)
        print(f"\nclosed loop, wrk -t1 -c{opts.connections}, median of {opts.rounds} rounds")
        print(f"{'endpoint':<12}{'req/s':>10}{'ratio':>8}{'min':>7}{'max':>7}{'p50 ms':>9}{'p99 ms':>9}"
              f"{'non-2xx':>9}{'CPU us':>8}{'CPU ratio':>11}")
        for name in urls:
            ratios = [r[name]["rps"] / r["ping"]["rps"] for r in rounds]
            print(f"{name:<12}{median([r[name]['rps'] for r in rounds]):>10.0f}{median(ratios):>8.2f}"
                  f"{min(ratios):>7.2f}{max(ratios):>7.2f}{median([r[name]['p50_ms'] for r in rounds]):>9.2f}"
                  f"{median([r[name]['p99_ms'] for r in rounds]):>9.2f}"
                  f"{sum(r[name]['non2xx'] + r[name]['socket_errors'] for r in rounds):>9.0f}"
                  f"{median([r[name]['cpu_us'] for r in rounds]):>8.0f}"
                  f"{median([r['ping']['cpu_us'] / r[name]['cpu_us'] for r in rounds]):>11.2f}")
        print("(CPU us: the server's CPU time per request; CPU ratio: /ping's CPU per request over this one's)")
        seconds = opts.latency_seconds or opts.seconds
        print(f"\nfixed rate (half of each endpoint's median maximum), hey -c 8 -q, {seconds} s each")
        print(f"{'endpoint':<12}{'rate/s':>10}{'done/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
        for name, url in urls.items():
            rate = median([r[name]["rps"] for r in rounds]) / 2
            if name == "heartbeat":
                fixed = hey(f"{registry.url}/instances/{ids[0]}/heartbeat", seconds, rate, method="PUT",
                            headers={"X-Lease-Token": LEASE_TOKEN, "Content-Type": "application/json"},
                            body=HEARTBEAT_BODY)
            else:
                fixed = hey(url, seconds, rate)
            print(f"{name:<12}{rate:>10.0f}{fixed['rps']:>10.0f}{fixed['p50_ms']:>9.2f}{fixed['p99_ms']:>9.2f}"
                  f"{fixed['non2xx']:>9.0f}")
    finally:
        ping.stop()
        registry.stop()
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
