"""The ``registry-server`` console script: settings, logging, hypercorn, signals."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config

from registry_server.api.access import Access
from registry_server.app import create_app
from registry_server.errors import ConfigError, StoreError
from registry_server.logs import configure_logging
from registry_server.settings import Settings, load_settings

log = logging.getLogger("registry_server")


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop (a libuv event loop, markedly faster for many small requests) when it is
    installed, else on the standard asyncio loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def hypercorn_config(settings: Settings) -> Config:
    """Every server timeout set on purpose, none left at a default that waits forever."""
    config = Config()
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    config.bind = [f"{host}:{settings.port}"]
    # No per-read timeout: hypercorn applies it while a response streams too, which would cut every long
    # poll and change stream whose client (rightly) sends nothing. A client stalling before its request
    # head is complete is closed by the idle (keep-alive) timer; one trickling its body gets 408 from the
    # body deadline (REGISTRY_READ_TIMEOUT, registry_server/api/body.py).
    config.read_timeout = None
    config.keep_alive_timeout = 5
    config.graceful_timeout = 10  # SIGTERM: in-flight requests get this long to finish
    config.h11_max_incomplete_size = 16 * 1024
    config.startup_timeout = 10
    config.shutdown_timeout = 15
    if settings.certfile and settings.keyfile:
        config.certfile = settings.certfile
        config.keyfile = settings.keyfile
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


YOUNG_COLLECTION_THRESHOLD = 20_000
"""Allocations between two collections of the youngest generation (CPython's default: 700)."""
MIDDLE_COLLECTION_THRESHOLD = 4
"""Young collections between two of the middle generation (CPython's default: 10)."""
FULL_COLLECTION_THRESHOLD = 2
"""Middle collections between two full ones (CPython's default: 10). Full collections are what find the
cycles of closed connections (promoted before they close); rarer ones would each stall the replica for
seconds and hold hundreds of MB of dead connections meanwhile."""


def tune_garbage_collector() -> None:
    """Collect less often than CPython's defaults, and never scan again what start-up made.

    Each connection the server closes leaves a few dozen objects in reference cycles, and a busy replica
    holds thousands of connections. With the default thresholds a young collection runs every 700
    allocations, so the objects of requests in flight are often promoted, and full collections (every few
    seconds under an overload, each scanning every object of every open connection) took a fifth of the
    replica's time. With these thresholds more of a request's objects are freed before a collection sees
    them, start-up's
    objects (modules, classes, the app) are frozen, and an overloaded replica spends 4-6 % of its time
    collecting; a full collection is rarer and longer (up to about a second, measured in the overload
    benchmark, see docs/benchmarks.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, MIDDLE_COLLECTION_THRESHOLD, FULL_COLLECTION_THRESHOLD)


def _reload_tokens(access: Access, path: str) -> None:
    """SIGHUP: the tokens file again; a file that does not read keeps the tokens in force."""
    try:
        count = access.reload()
    except ConfigError as exc:
        log.error("tokens file not reloaded, the tokens in force stay: %s", exc)
        return
    log.info("tokens file %s reloaded: %d tokens", path, count)


async def _serve(settings: Settings) -> None:
    app = create_app(settings)
    tune_garbage_collector()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if settings.tokens_file is not None:
        loop.add_signal_handler(signal.SIGHUP, _reload_tokens, app.state.access, settings.tokens_file)
    async def shutdown_trigger() -> None:
        await stop.wait()
        log.info("shutting down: releasing watchers, finishing requests in flight")
        app.state.hub.close()  # long polls answer now instead of holding shutdown for their whole wait

    log.info("listening on %s://%s:%d", "https" if settings.certfile else "http", settings.host, settings.port)
    await serve(app, hypercorn_config(settings), shutdown_trigger=shutdown_trigger)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> None:
    try:
        settings = load_settings(sys.argv[1:] if argv is None else argv, os.environ)
    except ConfigError as exc:
        print(f"registry-server: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level_number, settings.log_format, logger="")  # hypercorn's lines too
    if settings.redis is None:
        log.warning("REDIS_URL is not set: using the embedded in-memory store; nothing persists across "
                    "restarts and replicas do not share it")
    else:
        log.info("store: Redis %s", settings.redis)
    try:
        run_event_loop(_serve(settings))
    except StoreError as exc:
        print(f"registry-server: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except OSError as exc:
        print(f"registry-server: error: cannot listen on {settings.host}:{settings.port}: {exc}",
              file=sys.stderr)
        raise SystemExit(1) from None
