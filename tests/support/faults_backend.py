"""The e2e backend (``tests.support.client_backend``) plus what the fault tests need, run as its own process.

Adds to the e2e backend: ``* /slow`` (sleeps ``FAULTS_SLOW_S`` seconds before answering, counted in
``/arrivals`` as ``"<METHOD> slow"`` when the request arrives, before the sleep) and ``GET /metrics`` (the
process's client metrics: its own manager's heartbeats and registrations).
Run: ``python -m tests.support.faults_backend``.
"""

from __future__ import annotations

import asyncio
import logging
import os

from aiohttp import web

from resilient_client import aiohttp_metrics_handler
from tests.support.client_backend import build_app


def build_fault_app() -> web.Application:
    app = build_app()
    slow_s = float(os.environ.get("FAULTS_SLOW_S", "0"))
    port = int(os.environ["PORT"])
    arrivals: dict[str, int] = {}

    async def slow(request: web.Request) -> web.Response:
        key = f"{request.method} slow"
        arrivals[key] = arrivals.get(key, 0) + 1
        await request.read()
        await asyncio.sleep(slow_s)
        return web.json_response({"port": port, "slept_s": slow_s})

    async def show_arrivals(request: web.Request) -> web.Response:
        return web.json_response(arrivals)

    app.router.add_route("*", "/slow", slow)
    app.router.add_get("/arrivals", show_arrivals)
    app.router.add_get("/metrics", aiohttp_metrics_handler())
    return app


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    web.run_app(build_fault_app(), host="127.0.0.1", port=int(os.environ["PORT"]), print=None,
                access_log=None)
