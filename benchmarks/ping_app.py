"""The baseline: a bare Starlette ``/ping`` on the registry's own hypercorn settings."""

from __future__ import annotations

import asyncio
import signal
import sys

from hypercorn.asyncio import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from registry_server.serving import hypercorn_config, run_event_loop
from registry_server.settings import Settings


async def ping(request: Request) -> Response:
    return JSONResponse({"pong": True})


async def main(port: int) -> None:
    app = Starlette(routes=[Route("/ping", ping, methods=["GET", "PUT"])])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(app, hypercorn_config(Settings(host="127.0.0.1", port=port)),  # type: ignore[arg-type]
                shutdown_trigger=stop.wait)


if __name__ == "__main__":
    run_event_loop(main(int(sys.argv[1])))  # the registry's own loop: same loop, same hypercorn settings
