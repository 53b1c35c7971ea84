"""ResilientClient.get against raw aiohttp session.get on the same backend, measured in one run.

    python benchmarks/bench_client.py            # no arguments needed

Starts ``registry-server`` (memory store) and a small aiohttp backend process on 127.0.0.1, then runs
the same number of GETs both ways, alternating rounds, and prints the throughput ratio and the CPU
time of this (client) process per call (``time.process_time``). Absolute numbers on a shared machine
are noise; the ratios are the result.
"""

from __future__ import annotations

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

from resilient_client import ResilientClient, ServiceRegistryManager  # noqa: E402

CALLS = int(os.environ.get("BENCH_CALLS", "2000"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
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


async def measure(call: Callable[[], Awaitable[int]]) -> tuple[float, float]:
    """(calls per second, CPU µs per call) for CALLS calls at CONCURRENCY."""
    per_worker = CALLS // CONCURRENCY

    async def worker() -> None:
        for _ in range(per_worker):
            assert await call() == 200

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    done = per_worker * CONCURRENCY
    return done / wall, cpu / done * 1e6


async def bench(registry_url: str, backend_url: str) -> None:
    async with aiohttp.ClientSession() as session, ResilientClient(
            registry_url=registry_url, metrics_registry=CollectorRegistry()) as client:

        async def raw() -> int:
            async with session.get(backend_url + "/ping") as resp:
                await resp.read()
                return resp.status

        async def resilient() -> int:
            return (await client.get("Bench", "/ping")).status

        for call in (raw, resilient):  # warm up: connections, discovery cache
            for _ in range(200):
                await call()
        results: dict[str, list[tuple[float, float]]] = {"raw": [], "resilient": []}
        for _ in range(ROUNDS):
            results["raw"].append(await measure(raw))
            results["resilient"].append(await measure(resilient))

    raw_rps = statistics.median(r for r, _ in results["raw"])
    raw_cpu = statistics.median(c for _, c in results["raw"])
    res_rps = statistics.median(r for r, _ in results["resilient"])
    res_cpu = statistics.median(c for _, c in results["resilient"])
    print(f"{CALLS} GETs x {ROUNDS} rounds, concurrency {CONCURRENCY} (medians)")
    print(f"raw aiohttp session.get : {raw_rps:8.0f} req/s  {raw_cpu:6.0f} us CPU/call")
    print(f"ResilientClient.get     : {res_rps:8.0f} req/s  {res_cpu:6.0f} us CPU/call")
    print(f"throughput ratio (client / raw): {res_rps / raw_rps:.2f}")
    print(f"CPU per call: +{res_cpu - raw_cpu:.0f} us ({res_cpu / raw_cpu:.2f}x raw)")


def main() -> None:
    if sys.argv[1:] == ["backend"]:
        run_backend()
        return
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
        backend_env = {**os.environ, "PYTHONPATH": str(REPO), "SERVICE_REGISTRY_URL": registry_url,
                       "HOST": "127.0.0.1", "PORT": str(backend_port)}
        backend = spawn([sys.executable, __file__, "backend"], backend_env)
        wait_http(registry_url + "/services/Bench")
        deadline = time.monotonic() + 30
        while b'"id"' not in urllib.request.urlopen(registry_url + "/services/Bench").read():
            if time.monotonic() > deadline:
                raise RuntimeError("backend did not register")
            time.sleep(0.05)
        asyncio.run(bench(registry_url, f"http://127.0.0.1:{backend_port}"))
    finally:
        if backend is not None:
            kill_group(backend)
        kill_group(registry)


if __name__ == "__main__":
    main()
