"""The Starlette application: routes, error handlers, metrics middleware and the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from registry_server.api.access import Access
from registry_server.api.errors import (
    ApiError,
    on_api_error,
    on_http_exception,
    on_lease_error,
    on_store_error,
    on_unexpected,
)
from registry_server.api.middleware import MetricsMiddleware
from registry_server.api.routes import RegistryApi
from registry_server.api.ui import ui_routes
from registry_server.api.watching import WatchApi
from registry_server.clock import Clock, SystemClock
from registry_server.errors import LeaseTokenError, StoreError
from registry_server.interop import interop_routes
from registry_server.metrics import RegistryMetrics
from registry_server.registry import Registry
from registry_server.settings import Settings
from registry_server.store.base import InstanceStore
from registry_server.store.memory import MemoryStore
from registry_server.store.redis_store import RedisStore, connect
from registry_server.sweeper import Sweeper
from registry_server.watch import ChangeHub

log = logging.getLogger("registry_server")


def build_store(settings: Settings) -> InstanceStore:
    """The memory store when no Redis is configured, else a Redis store (connecting lazily)."""
    if settings.redis is None:
        return MemoryStore()
    return RedisStore(connect(settings.redis, timeout_s=min(1.0, settings.store_timeout_s)),
                      op_timeout_s=settings.store_timeout_s)


async def _await_store(store: InstanceStore) -> None:
    """Log until the store first answers, retrying with capped exponential backoff."""
    delay = 0.1
    while True:
        try:
            await store.ping()
        except StoreError as exc:
            log.warning("store %s not reachable yet, retrying in %.1fs: %s", store.kind, delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            continue
        log.info("store %s reachable", store.kind)
        return


def create_app(settings: Settings, *, store: InstanceStore | None = None, clock: Clock | None = None,
               metrics_registry: CollectorRegistry | None = None) -> Starlette:
    """Build the registry app. Every I/O dependency can be injected; nothing starts until the lifespan."""
    store = store if store is not None else build_store(settings)
    metrics = RegistryMetrics(metrics_registry if metrics_registry is not None else CollectorRegistry())
    registry = Registry(store, clock or SystemClock(), settings.ttl_ms, metrics)
    access = Access(settings)
    api = RegistryApi(registry, settings, metrics, access)
    hub = ChangeHub(store, max_watchers=settings.max_watchers, on_count=metrics.watcher_count)
    sweeper = Sweeper(registry, settings.sweep_interval_s)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        waiter = asyncio.create_task(_await_store(store), name="registry-store-wait")
        sweeper.start()
        hub.start()
        log.info("registry serving with the %s store, ttl %.3gs, sweep every %.3gs", store.kind,
                 settings.instance_ttl_s, settings.sweep_interval_s)
        try:
            yield
        finally:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
            await hub.stop()
            await sweeper.stop()
            await store.close()
            log.info("registry stopped: watchers released, sweeper stopped, store closed")

    app = Starlette(
        routes=[*api.routes(), *WatchApi(registry, hub, metrics, access).routes(), *ui_routes(),
                *interop_routes(registry, hub, settings, access)],
        middleware=[Middleware(MetricsMiddleware, metrics=metrics)],
        exception_handlers={ApiError: on_api_error, HTTPException: on_http_exception,
                            LeaseTokenError: on_lease_error, StoreError: on_store_error,
                            Exception: on_unexpected},
        lifespan=lifespan,
    )
    app.state.registry = registry
    app.state.metrics = metrics
    app.state.sweeper = sweeper
    app.state.hub = hub
    return app
