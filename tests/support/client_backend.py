"""A small aiohttp backend for the client's end-to-end tests, run as its own process.

It registers itself through its own ``ServiceRegistryManager`` (configured from the SPEC environment:
``SERVICE_REGISTRY_URL``, ``SERVICE_REGISTRY_HEARTBEAT_INTERVAL``, ``HOST``, ``PORT``) and answers:
``GET /whoami`` (its port and instance id), ``* /unavailable`` (always 503), ``GET /hits`` (counts).
Run: ``python -m tests.support.client_backend``.
"""

from __future__ import annotations

import logging
import os
from collections import Counter

from aiohttp import web

from resilient_client import ServiceRegistryManager, attach_to_aiohttp


def build_app() -> web.Application:
    port = int(os.environ["PORT"])
    name = os.environ.get("BACKEND_NAME", "Backend")
    manager = ServiceRegistryManager()
    hits: Counter[str] = Counter()

    async def whoami(request: web.Request) -> web.Response:
        hits["whoami"] += 1
        return web.json_response({"port": port, "id": manager.instance_id})

    async def unavailable(request: web.Request) -> web.Response:
        hits[f"{request.method} unavailable"] += 1
        return web.json_response({"error": "busy"}, status=503)

    async def show_hits(request: web.Request) -> web.Response:
        return web.json_response(dict(hits))

    app = web.Application()
    app.router.add_get("/whoami", whoami)
    app.router.add_route("*", "/unavailable", unavailable)
    app.router.add_get("/hits", show_hits)
    app.router.add_get("/health", lambda request: web.json_response({"status": "UP"}))  # type: ignore[arg-type,return-value]
    attach_to_aiohttp(app, manager, name, port, version="1.0.0", description="e2e backend")
    return app


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    web.run_app(build_app(), host="127.0.0.1", port=int(os.environ["PORT"]), print=None, access_log=None)
