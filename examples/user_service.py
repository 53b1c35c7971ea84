"""User service (aiohttp): registers itself at start-up, heartbeats, deregisters on shutdown.

The seed's "Basic Service Registration" example. Run several, each on its own port:

    SERVICE_REGISTRY_URL=http://localhost:3011 PORT=4001 python examples/user_service.py
    SERVICE_REGISTRY_URL=http://localhost:3011 PORT=4002 python examples/user_service.py
"""

from __future__ import annotations

import logging
import os

from aiohttp import web

from resilient_client import ServiceRegistryManager, aiohttp_metrics_handler, attach_to_aiohttp

log = logging.getLogger("user_service")
PORT = int(os.environ.get("PORT", "4001"))
USERS = {"42": {"id": "42", "name": "Ada"}}


async def get_user(request: web.Request) -> web.Response:
    user = USERS.get(request.match_info["user_id"])
    if user is None:
        return web.json_response({"error": "not found"}, status=404)
    return web.json_response({**user, "served_by": PORT})


async def create_user(request: web.Request) -> web.Response:
    body = await request.json()
    user = {"id": str(len(USERS) + 100), "name": body["name"]}
    USERS[user["id"]] = user
    return web.json_response({**user, "served_by": PORT}, status=201)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "UP"})


def build_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/users/{user_id}", get_user)
    app.router.add_post("/users", create_user)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", aiohttp_metrics_handler())
    # register on start-up, report STOPPING + deregister on shutdown (SIGTERM/SIGINT via run_app)
    # the registry also GETs /health every 5 s: a hung or dead instance leaves discovery in seconds
    attach_to_aiohttp(app, ServiceRegistryManager(health_check_interval=5000), "User", PORT, version="1.0.0",
                      description="User service")
    return app


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    log.info("User service running on port %d", PORT)
    web.run_app(build_app(), host=os.environ.get("BIND", "127.0.0.1"), port=PORT, print=None)
