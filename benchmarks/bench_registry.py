"""Heartbeat and discovery throughput of the registry against a bare Starlette ``/ping``, in one run.

    python -m benchmarks.bench_registry [--seconds 10] [--rounds 3] [--connections 32] [--instances 1000]

Starts a redis-server, ``registry-server`` and the ``/ping`` baseline on loopback (same hypercorn
settings, one worker each), loads each with ``wrk`` in turn (every other round in reverse order), round
after round, and prints requests/s and the median of the rounds' ratios; then p50/p99 latency of each at
a fixed rate of half its maximum (``hey``). Absolute numbers on a shared machine are noise; the ratios are the figures.
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
from dataclasses import dataclass
from pathlib import Path

from tests.support.polling import wait_until
from tests.support.processes import ManagedProcess, free_port, http_status, start_registry
from tests.support.redis_server import RedisServer

LEASE_TOKEN = "bench-registry-lease-token-0123"

HEARTBEAT_BODY = '{"status": "UP"}'
"""What ``ServiceRegistryManager`` sends with every heartbeat."""


@dataclass
class Load:
    name: str
    url: str
    pid: int
    """The server process whose CPU time is measured."""
    baseline: str
    """The load whose requests/s and CPU per request this one is compared with."""
    lua: str
    hey_path: str = "/ping"
    hey_method: str = "GET"
    hey_body: str | None = None
    script: Path | None = None


def lua(method: str, path_expr: str, body: str | None = None, headers: dict[str, str] | None = None,
        ids: str = "") -> str:
    """A wrk script sending ``method`` to the path the Lua expression ``path_expr`` gives for request ``n``."""
    lines = [f"local ids = {{{ids}}}", "local n = 0"]
    lines += [f'wrk.headers["{name}"] = "{value}"' for name, value in (headers or {}).items()]
    body_expr = "nil" if body is None else "'" + body + "'"
    lines += ["request = function()", "  n = n + 1", f'  return wrk.format("{method}", {path_expr}, nil, {body_expr})',
              "end"]
    return "\n".join(lines) + "\n"


HEARTBEAT_PATH = '"/instances/" .. ids[(n % #ids) + 1] .. "/heartbeat"'
"""Lua: request ``n`` renews the next id of ``ids`` in turn."""


def heartbeat_lua(ids: list[str], lease_token: str, *, body: str | None = HEARTBEAT_BODY) -> str:
    """A wrk script renewing ``ids`` in turn with ``lease_token``, sending ``body`` as our client does."""
    headers = {"X-Lease-Token": lease_token}
    if body is not None:
        headers["Content-Type"] = "application/json"
    return lua("PUT", HEARTBEAT_PATH, body, headers, ",".join(f'"{i}"' for i in ids))


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
        ping_url = f"http://127.0.0.1:{ping_port}"
        token = {"X-Lease-Token": LEASE_TOKEN}
        loads = [
            # the pings receive the heartbeats' headers too (the lease token; the body's content type)
            Load("ping GET", ping_url, ping.proc.pid, "ping GET", lua("GET", '"/ping"', None, token)),
            Load("ping PUT", ping_url, ping.proc.pid, "ping PUT",
                 lua("PUT", '"/ping"', HEARTBEAT_BODY, {**token, "Content-Type": "application/json"}),
                 hey_method="PUT", hey_body=HEARTBEAT_BODY),
            Load("heartbeat", registry.url, registry.proc.pid, "ping GET",
                 heartbeat_lua(ids, LEASE_TOKEN, body=None),
                 hey_path=f"/instances/{ids[0]}/heartbeat", hey_method="PUT"),
            Load("heartbeat+body", registry.url, registry.proc.pid, "ping PUT", heartbeat_lua(ids, LEASE_TOKEN),
                 hey_path=f"/instances/{ids[0]}/heartbeat", hey_method="PUT", hey_body=HEARTBEAT_BODY),
            Load("discovery", registry.url, registry.proc.pid, "ping GET", lua("GET", '"/services/Discovered"'),
                 hey_path="/services/Discovered"),
        ]
        for load in loads:
            load.script = tmp / f"{load.name.replace(' ', '-').replace('+', '-')}.lua"
            load.script.write_text(load.lua)
        wrk(ping_url + "/ping", 2, opts.connections)  # warm-up
        rounds: list[dict[str, dict[str, float]]] = []
        for n in range(opts.rounds):
            # every other round in reverse order: a drift of the machine's load, or a load paying for the
            # one before it, lands on both sides of a ratio alike
            r = {load.name: loaded(load.pid, load.url, opts.seconds, opts.connections, load.script)
                 for load in (loads if n % 2 == 0 else loads[::-1])}
            rounds.append(r)
            print(f"round {n + 1}: " + ", ".join(
                f"{load.name} {r[load.name]['rps']:.0f}/s ({r[load.name]['cpu_us']:.0f} us CPU)" for load in loads),
                flush=True)
        print(f"\nclosed loop, wrk -t1 -c{opts.connections}, median of {opts.rounds} rounds; each ratio is "
              "against the ping receiving the same kind of request")
        print(f"{'endpoint':<16}{'vs':<10}{'req/s':>8}{'ratio':>7}{'min':>6}{'max':>6}{'p50 ms':>8}{'p99 ms':>8}"
              f"{'non-2xx':>8}{'CPU us':>8}{'CPU ratio':>10}")
        for load in loads:
            name, base = load.name, load.baseline
            ratios = [r[name]["rps"] / r[base]["rps"] for r in rounds]
            print(f"{name:<16}{base:<10}{median([r[name]['rps'] for r in rounds]):>8.0f}{median(ratios):>7.2f}"
                  f"{min(ratios):>6.2f}{max(ratios):>6.2f}{median([r[name]['p50_ms'] for r in rounds]):>8.2f}"
                  f"{median([r[name]['p99_ms'] for r in rounds]):>8.2f}"
                  f"{sum(r[name]['non2xx'] + r[name]['socket_errors'] for r in rounds):>8.0f}"
                  f"{median([r[name]['cpu_us'] for r in rounds]):>8.0f}"
                  f"{median([r[base]['cpu_us'] / r[name]['cpu_us'] for r in rounds]):>10.2f}")
        print("(CPU us: the server's CPU time per request; CPU ratio: the ping's CPU per request over this one's)")
        seconds = opts.latency_seconds or opts.seconds
        print(f"\nfixed rate (half of each endpoint's median maximum), hey -c 8 -q, {seconds} s each")
        print(f"{'endpoint':<16}{'rate/s':>8}{'done/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'non-2xx':>8}")
        for load in loads:
            rate = median([r[load.name]["rps"] for r in rounds]) / 2
            headers = {"X-Lease-Token": LEASE_TOKEN} if load.name != "discovery" else {}
            if load.hey_body is not None:
                headers["Content-Type"] = "application/json"
            fixed = hey(load.url + load.hey_path, seconds, rate, method=load.hey_method, headers=headers,
                        body=load.hey_body)
            print(f"{load.name:<16}{rate:>8.0f}{fixed['rps']:>8.0f}{fixed['p50_ms']:>8.2f}{fixed['p99_ms']:>8.2f}"
                  f"{fixed['non2xx']:>8.0f}")
    finally:
        ping.stop()
        registry.stop()
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
