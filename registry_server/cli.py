"""The ``registry-server`` console script: settings, logging, hypercorn, signals."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from hypercorn.asyncio import serve

from registry_server.api.access import Access
from registry_server.app import create_app
from registry_server.collector import tune_garbage_collector
from registry_server.errors import ConfigError, StoreError
from registry_server.logs import configure_logging
from registry_server.serving import (
    AcceptQueue,
    hypercorn_config,
    listening_socket,
    run_event_loop,
    tune_hypercorn,
)
from registry_server.settings import Settings, load_settings

log = logging.getLogger("registry_server")


def _reload_tokens(access: Access, path: str) -> None:
    """SIGHUP: the tokens file again; a file that does not read keeps the tokens in force."""
    try:
        count = access.reload()
    except ConfigError as exc:
        log.error("tokens file not reloaded, the tokens in force stay: %s", exc)
        return
    log.info("tokens file %s reloaded: %d tokens", path, count)


async def _serve(settings: Settings) -> None:
    sock = listening_socket(settings)
    accept_queue = AcceptQueue(sock)
    app = create_app(settings, accept_queue=accept_queue.fill)
    tune_garbage_collector()
    tune_hypercorn()
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
    try:
        config = hypercorn_config(settings, sock, paced_for_s=app.state.admission.longest_delay_s)
        await serve(app, config, shutdown_trigger=shutdown_trigger)  # type: ignore[arg-type]
    finally:
        accept_queue.close()


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
