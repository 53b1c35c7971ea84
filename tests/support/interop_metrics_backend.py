"""A scrape target for the interop tests, run as its own process: ``/metrics`` (Prometheus text),
``/hello`` (names itself) and ``/health``. Run: ``python -m tests.support.interop_metrics_backend <port> <name>``.
"""

from __future__ import annotations

import sys

from aiohttp import web


def build_app(name: str, port: int) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text=f'interop_backend_info{{backend="{name}"}} 1\n', content_type="text/plain")

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"service": name, "port": port})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "UP"})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/hello", hello)
    app.router.add_get("/health", health)
    return app


if __name__ == "__main__":
    port, name = int(sys.argv[1]), sys.argv[2]
    web.run_app(build_app(name, port), host="127.0.0.1", port=port, print=None, access_log=None)
