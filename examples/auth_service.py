"""Auth service (Starlette on hypercorn): registers itself and calls User through ResilientClient.

The seed's "Service-to-Service Communication" example: no hard-coded address, round-robin over the
User instances, failover and circuit breakers included. Run:

    SERVICE_REGISTRY_URL=http://localhost:3011 PORT=3001 python examples/auth_service.py
    curl localhost:3001/login/42
"""

from __future__ import annotations

import asyncio
import os

import prometheus_client
from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from resilient_client import ResilientClient, ServiceRegistryManager, ServiceUnavailableError, registry_lifespan

PORT = int(os.environ.get("PORT", "3001"))
manager = ServiceRegistryManager()
users = ResilientClient(manager)


async def login(request: Request) -> JSONResponse:
    try:
        resp = await users.get("User", f"/users/{request.path_params['user_id']}")
    except ServiceUnavailableError as exc:
        return JSONResponse({"error": str(exc)}, status_code=503)
    if resp.status != 200:
        return JSONResponse({"error": "unknown user"}, status_code=401)
    return JSONResponse({"token": "t-" + resp.json()["id"], "user": resp.json()})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "UP"})


app = Starlette(
    routes=[Route("/login/{user_id}", login), Route("/health", health),
            Mount("/metrics", prometheus_client.make_asgi_app())],
    lifespan=registry_lifespan(manager, "Auth", PORT, version="1.0.0", description="Authentication service",
                               also_close=[users]),
)

if __name__ == "__main__":
    config = Config()
    config.bind = [f"{os.environ.get('BIND', '127.0.0.1')}:{PORT}"]
    asyncio.run(serve(app, config))  # type: ignore[arg-type]
