"""The Starlette application: routes, error handlers, metrics middleware and the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from registry_server.api.access import Access
from registry_server.api.errors import (
    ApiError,
    on_api_error,
    on_http_exception,
    on_lease_error,
    on_store_error,
    on_unexpected,
)
from registry_server.api.fast_heartbeat import HeartbeatEndpoint
from registry_server.api.middleware import MetricsMiddleware
from registry_server.api.routes import RegistryApi
from registry_server.api.ui import ui_routes
from registry_server.api.watching import WatchApi
from registry_server.change_hub import ChangeHub
from registry_server.clock import SystemWallClock, WallClock
from registry_server.errors import LeaseTokenError, StoreError
from registry_server.interop import interop_routes
from registry_server.metrics import RegistryMetrics
from registry_server.registry import Registry
from registry_server.settings import Settings
from registry_server.store.base import InstanceStore
from registry_server.store.memory import MemoryStore
from registry_server.store.redis_store import RedisStore, connect
from registry_server.sweeper import Sweeper

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


class RegistryApp(Starlette):
    """The registry's Starlette application, with heartbeats answered ahead of its routing (see
    :mod:`registry_server.api.fast_heartbeat`)."""

    def __init__(self, heartbeat: HeartbeatEndpoint, **options: Any) -> None:
        super().__init__(exception_handlers=heartbeat.handlers, **options)
        self._heartbeat = heartbeat

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        instance_id = self._heartbeat.instance_id(scope)
        if instance_id is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        await self._heartbeat.handle(instance_id, scope, receive, send)


def create_app(settings: Settings, *, store: InstanceStore | None = None, clock: WallClock | None = None,
               metrics_registry: CollectorRegistry | None = None) -> Starlette:
    """Build the registry app. Every I/O dependency can be injected; nothing starts until the lifespan."""
    store = store if store is not None else build_store(settings)
    metrics = RegistryMetrics(metrics_registry if metrics_registry is not None else CollectorRegistry())
    registry = Registry(store, clock or SystemWallClock(), settings.ttl_ms, metrics)
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

    handlers = {ApiError: on_api_error, HTTPException: on_http_exception, LeaseTokenError: on_lease_error,
                StoreError: on_store_error, Exception: on_unexpected}
    heartbeat = HeartbeatEndpoint(registry, settings, metrics, access, handlers)
    app = RegistryApp(
        heartbeat,
        routes=[Route("/instances/{id}/heartbeat", heartbeat, methods=["PUT"]), *api.routes(),
                *WatchApi(registry, hub, metrics, access).routes(), *ui_routes(),
                *interop_routes(registry, hub, settings, access)],
        middleware=[Middleware(MetricsMiddleware, metrics=metrics)],
        lifespan=lifespan,
    )
    app.state.registry = registry
    app.state.metrics = metrics
    app.state.sweeper = sweeper
    app.state.hub = hub
    return app
