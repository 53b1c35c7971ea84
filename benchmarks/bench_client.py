"""ResilientClient.get against raw aiohttp session.get on the same backend, measured in one run.

    python benchmarks/bench_client.py            # defaults: --calls 3000 --concurrency 8 --rounds 15

Starts ``registry-server`` (memory store) and a small aiohttp backend process on 127.0.0.1, then runs
the same number of GETs both ways in interleaved rounds (the order alternates every round) and prints,
as medians over the rounds:

* throughput of each, and the throughput ratio client / raw (the median of each round's ratio, so a
  noisy moment hits both sides of a ratio alike);
* CPU time of this (client) process per call (``time.process_time``, user + system), for both;
* the client's own code per call with the network taken away (a transport that answers at once).

The comparison is fair: raw aiohttp sends every request with the same per-request timeout the client
gives each attempt (``ClientTimeout(total=attempt_timeout_s)``, built once as a careful caller would)
and reads the whole body, as the client does; both use one pooled session with keep-alive, the same
event loop and the same concurrency. Absolute numbers on a shared machine are noise; the ratios are
the result.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from prometheus_client import CollectorRegistry

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from resilient_client import ClientConfig, ResilientClient, Response, ServiceRegistryManager  # noqa: E402
from resilient_client._transport import AiohttpTransport, OutgoingRequest  # noqa: E402
from resilient_client.config import LOAD_BALANCERS  # noqa: E402

Call = Callable[[], Awaitable[int]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, *, contains: bytes = b"") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200 and contains in resp.read():
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer")
        time.sleep(0.05)


def run_backend() -> None:
    """The backend process: ``GET /ping``, registered through its own manager."""
    from aiohttp import web

    from resilient_client import attach_to_aiohttp

    async def ping(request: web.Request) -> web.Response:
        return web.Response(text="pong")

    app = web.Application()
    app.router.add_get("/ping", ping)
    port = int(os.environ["PORT"])
    attach_to_aiohttp(app, ServiceRegistryManager(metrics=False), "Bench", port)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


async def measure(call: Call, calls: int, concurrency: int) -> tuple[float, float]:
    """(calls per second, CPU µs per call) for ``calls`` calls at ``concurrency``."""
    per_worker = calls // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            assert await call() == 200

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    done = per_worker * concurrency
    return done / wall, cpu / done * 1e6


class _InstantTransport:
    """Answers every attempt at once: what is left is the client's own code."""

    async def send(self, request: OutgoingRequest, timeout_s: float) -> Response:
        return Response(200, {}, b"pong", request.url, request.instance_id)

    async def aclose(self) -> None:
        pass


async def client_code_per_call(registry_url: str, raw: Call, calls: int, concurrency: int) -> tuple[float, float]:
    """CPU µs per ``get`` of the client's own path (discovery cache, picker, breaker, classification,
    hooks and metrics) with a transport that answers at once, the manager's cache being the real one:
    (in a tight loop, interleaved with real raw requests at ``concurrency``).

    The second figure is what the client's code costs where it runs in a real call: after every network
    round trip the interpreter's caches are cold and the other core is busy serving, so the same code
    takes several times as long as in a tight loop."""
    manager = ServiceRegistryManager(registry_url=registry_url, metrics_registry=CollectorRegistry(),
                                     watch=False)
    await manager.discover_services("Bench")  # fill the cache
    async with ResilientClient(manager, transport=_InstantTransport(),
                               metrics_registry=CollectorRegistry()) as client:
        for _ in range(500):
            await client.get("Bench", "/ping")
        tight = []
        for _ in range(5):
            cpu = time.thread_time()
            for _ in range(calls):
                await client.get("Bench", "/ping")
            tight.append((time.thread_time() - cpu) / calls * 1e6)
        interleaved: list[float] = []

        async def worker() -> None:
            for _ in range(calls // concurrency):
                cpu = time.thread_time_ns()
                await client.get("Bench", "/ping")  # never suspends: the thread's CPU is all its own
                interleaved.append((time.thread_time_ns() - cpu) / 1e3)
                await raw()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    await manager.close()
    return statistics.median(tight), statistics.median(interleaved)


async def own_code(registry_url: str, calls: int, config: ClientConfig) -> None:
    """Only the client's own path, for an instruction count: ``calls`` GETs through a transport that answers
    at once, the manager's cache being the real one (the instance is registered, never connected to).

        valgrind --tool=callgrind python benchmarks/bench_client.py --own-code N

    for two values of N: the difference of the two totals / the difference of the Ns is the instructions
    per call, start-up and warm-up cancelled out. ``--load-balancer`` and ``--retry-budget`` count the
    path with another balancer, or with a retry budget."""
    never = 3_600_000  # ms: no heartbeat and no cache refresh inside the run, however slow valgrind makes it
    async with ServiceRegistryManager(registry_url=registry_url, metrics=False, watch=False,
                                      heartbeat_interval=never) as backend:
        await backend.register("Bench", 1, host="127.0.0.1")
        async with ServiceRegistryManager(registry_url=registry_url, metrics_registry=CollectorRegistry(),
                                          watch=False, cache_ttl=never) as manager, ResilientClient(
                manager, transport=_InstantTransport(), metrics_registry=CollectorRegistry(),
                config=config) as client:
            for _ in range(200):
                await client.get("Bench", "/ping")
            cpu = time.process_time()
            for _ in range(calls):
                await client.get("Bench", "/ping")
            print(f"client code alone (instant transport): {(time.process_time() - cpu) / calls * 1e6:.1f} us "
                  f"CPU/call over {calls} calls")


async def bench(registry_url: str, backend_url: str, args: argparse.Namespace) -> None:
    config = ClientConfig()
    timeout = aiohttp.ClientTimeout(total=config.attempt_timeout_s)
    async with aiohttp.ClientSession() as session, ResilientClient(
            registry_url=registry_url, config=config, metrics_registry=CollectorRegistry()) as client:
        url = backend_url + "/ping"

        async def raw() -> int:
            async with session.get(url, timeout=timeout) as resp:
                await resp.read()
                return resp.status

        async def resilient() -> int:
            return (await client.get("Bench", "/ping")).status

        transport = AiohttpTransport()
        request = OutgoingRequest("GET", url)

        async def transport_only() -> int:
            return (await transport.send(request, config.attempt_timeout_s)).status

        async def raw_and_burn() -> int:
            end = time.thread_time_ns() + args.burn_us * 1000
            while time.thread_time_ns() < end:
                pass
            return await raw()

        calls: dict[str, Call] = {"raw": raw, "client": resilient}
        if args.transport:
            calls["transport"] = transport_only
        if args.burn_us:
            calls["burn"] = raw_and_burn
        for call in calls.values():  # warm up: connections, discovery cache
            for _ in range(300):
                await call()
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in calls}
        ratios = []
        for round_no in range(args.rounds):
            order = list(calls) if round_no % 2 == 0 else list(reversed(calls))
            for name in order:
                results[name].append(await measure(calls[name], args.calls, args.concurrency))
            ratios.append(results["client"][-1][0] / results["raw"][-1][0])
            if args.verbose:  # (one line per round)
                print(f"round {round_no + 1}: " + "  ".join(
                    f"{name} {results[name][-1][0]:6.0f} req/s {results[name][-1][1]:4.0f} us" for name in calls)
                    + f"  ratio {ratios[-1]:.2f}")

        tight, interleaved = await client_code_per_call(registry_url, raw, args.calls, args.concurrency)
        await transport.aclose()

    raw_rps = statistics.median(r for r, _ in results["raw"])
    raw_cpu = statistics.median(c for _, c in results["raw"])
    res_rps = statistics.median(r for r, _ in results["client"])
    res_cpu = statistics.median(c for _, c in results["client"])
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    print(f"{args.calls} GETs x {args.rounds} interleaved rounds, concurrency {args.concurrency}, "
          f"{loop} loop (medians)")
    print(f"raw aiohttp session.get : {raw_rps:8.0f} req/s  {raw_cpu:6.0f} us CPU/call")
    print(f"ResilientClient.get     : {res_rps:8.0f} req/s  {res_cpu:6.0f} us CPU/call")
    if args.transport:
        tr_rps = statistics.median(r for r, _ in results["transport"])
        tr_cpu = statistics.median(c for _, c in results["transport"])
        print(f"AiohttpTransport.send   : {tr_rps:8.0f} req/s  {tr_cpu:6.0f} us CPU/call  (ratio "
              f"{tr_rps / raw_rps:.2f}: the client's own transport layer, no discovery/breaker/metrics)")
    if args.burn_us:
        burn_rps = statistics.median(r for r, _ in results["burn"])
        burn_cpu = statistics.median(c for _, c in results["burn"])
        print(f"raw + {args.burn_us} us busy loop : {burn_rps:6.0f} req/s  {burn_cpu:6.0f} us CPU/call  (ratio "
              f"{burn_rps / raw_rps:.2f}: what that much Python before each request costs here)")
    print(f"throughput ratio (client / raw): {statistics.median(ratios):.2f} "
          f"(rounds: {min(ratios):.2f}-{max(ratios):.2f})")
    print(f"CPU per call: +{res_cpu - raw_cpu:.0f} us ({res_cpu / raw_cpu:.2f}x raw)")
    print(f"client code alone (instant transport): {tight:.1f} us CPU/call in a tight loop, "
          f"{interleaved:.1f} us between real requests")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=int(os.environ.get("BENCH_CALLS", "3000")),
                        help="GETs per round and side")
    parser.add_argument("--concurrency", type=int, default=int(os.environ.get("BENCH_CONCURRENCY", "8")))
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "15")))
    parser.add_argument("--uvloop", action="store_true", help="run both sides on uvloop")
    parser.add_argument("--transport", action="store_true",
                        help="also measure AiohttpTransport.send alone (the ceiling of the client's stack)")
    parser.add_argument("--burn-us", type=int, default=0,
                        help="also measure raw aiohttp after a busy loop of this many us of CPU (calibration)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every round")
    parser.add_argument("--own-code", type=int, metavar="N", default=0,
                        help="only N calls of the client's own path (no backend, no raw side): for callgrind")
    parser.add_argument("--load-balancer", default="round_robin", choices=LOAD_BALANCERS,
                        help="with --own-code: the balancer of the client counted")
    parser.add_argument("--retry-budget", type=float, default=None,
                        help="with --own-code: the retry budget of the client counted (default: none)")
    return parser.parse_args(argv)


def main() -> None:
    if sys.argv[1:] == ["backend"]:
        run_backend()
        return
    args = parse_args(sys.argv[1:])
    reg_port, backend_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update({"REGISTRY_HOST": "127.0.0.1", "REGISTRY_PORT": str(reg_port), "REGISTRY_LOG_LEVEL": "warning"})
    registry_exe = Path(sys.executable).with_name("registry-server")
    registry_cmd = [str(registry_exe)] if registry_exe.exists() else [sys.executable, "-m", "registry_server"]
    registry = spawn(registry_cmd, env)
    backend = None
    try:
        registry_url = f"http://127.0.0.1:{reg_port}"
        wait_http(registry_url + "/healthz")
        if args.own_code:
            asyncio.run(own_code(registry_url, args.own_code, ClientConfig(
                load_balancer=args.load_balancer, retry_budget=args.retry_budget)))
            return
        backend_env = {**os.environ, "PYTHONPATH": str(REPO), "SERVICE_REGISTRY_URL": registry_url,
                       "HOST": "127.0.0.1", "PORT": str(backend_port)}
        backend = spawn([sys.executable, __file__, "backend"], backend_env)
        backend_url = f"http://127.0.0.1:{backend_port}"
        wait_http(registry_url + "/services/Bench", contains=b'"id"')
        wait_http(backend_url + "/ping")  # it registers on start-up, a moment before it listens
        loop_factory = None
        if args.uvloop:
            import uvloop

            loop_factory = uvloop.new_event_loop
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(bench(registry_url, backend_url, args))
    finally:
        if backend is not None:
            kill_group(backend)
        kill_group(registry)


if __name__ == "__main__":
    main()
