"""A backend for ``bench_health``: ``GET /health`` answers 200, or 500 after ``POST /sick`` (``POST /well``
undoes it). Run: ``python -m benchmarks.health_backend PORT``."""

from __future__ import annotations

import sys

from aiohttp import web

SICK = web.AppKey("sick", list)


async def health(request: web.Request) -> web.Response:
    if request.app[SICK]:
        return web.Response(status=500, text="sick on purpose")
    return web.Response(text="ok")


async def sick(request: web.Request) -> web.Response:
    request.app[SICK][:] = [True]
    return web.Response(text="sick")


async def well(request: web.Request) -> web.Response:
    request.app[SICK].clear()
    return web.Response(text="well")


def build_app() -> web.Application:
    app = web.Application()
    app[SICK] = []
    app.router.add_get("/health", health)
    app.router.add_post("/sick", sick)
    app.router.add_post("/well", well)
    return app


if __name__ == "__main__":
    web.run_app(build_app(), host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
