"""Serving the client metrics from a service.

Starlette: ``app.mount("/metrics", prometheus_client.make_asgi_app())``.
aiohttp:   ``app.router.add_get("/metrics", resilient_client.aiohttp_metrics_handler)``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest


async def aiohttp_metrics_handler(request: web.Request) -> web.Response:
    """An aiohttp handler exposing the default Prometheus registry."""
    return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


def make_aiohttp_metrics_handler(
        registry: CollectorRegistry) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Like :func:`aiohttp_metrics_handler`, for another registry."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handler
