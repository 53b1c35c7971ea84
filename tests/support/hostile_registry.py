"""A registry that misbehaves on purpose, as a real process, for the client's hardening tests.

``python -m tests.support.hostile_registry PORT TARGET`` answers:

- ``POST /instances``: 201 with the body, except for the name ``Redirected``: 307 to ``TARGET``;
- every heartbeat and deregistration, and ``GET /services/Redirected``: 307 to ``TARGET``;
- ``GET /services/Deep``: JSON nested 100,000 deep; ``/services/BadPort``: an instance with ``"port": "x"``;
  ``/services/Huge``: 8 MiB streamed without a length; ``/services/Long``: a 8 MiB ``Content-Length``.

``python -m tests.support.hostile_registry PORT`` (no target) records every request and lists them at
``GET /_seen``: where a redirect would have sent the client's credentials.
"""

from __future__ import annotations

import sys
from typing import Any

from aiohttp import web

CHUNK = b" " * 65536


def hostile_app(target: str) -> web.Application:
    async def register(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("name") == "Redirected":
            raise web.HTTPTemporaryRedirect(f"{target}/instances")
        return web.json_response({**body, "host": body.get("host", request.remote)}, status=201)

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"{target}{request.path_qs}")

    async def service(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name == "Deep":
            return web.Response(body=b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                                content_type="application/json")
        if name == "BadPort":
            return web.json_response({"instances": [{"id": "a", "name": name, "host": "h", "port": "x"}]})
        if name in ("Huge", "Long"):
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            if name == "Long":
                resp.content_length = 128 * len(CHUNK)
            await resp.prepare(request)
            await resp.write(b'{"instances": []')
            for _ in range(128):
                await resp.write(CHUNK)
            await resp.write_eof()
            return resp
        raise web.HTTPTemporaryRedirect(f"{target}{request.path_qs}")

    app = web.Application()
    app.router.add_post("/instances", register)
    app.router.add_put("/instances/{id}/heartbeat", redirect)
    app.router.add_delete("/instances/{id}", redirect)
    app.router.add_get("/services/{name}", service)
    return app


def recorder_app() -> web.Application:
    seen: list[dict[str, Any]] = []

    async def record(request: web.Request) -> web.Response:
        if request.path == "/_seen":
            return web.json_response(seen)
        seen.append({"method": request.method, "path": request.path, "headers": dict(request.headers),
                     "body": (await request.read()).decode(errors="replace")})
        return web.json_response({"instances": []})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    return app


if __name__ == "__main__":
    port = int(sys.argv[1])
    app = hostile_app(sys.argv[2]) if len(sys.argv) > 2 else recorder_app()
    web.run_app(app, host="127.0.0.1", port=port, print=None)
