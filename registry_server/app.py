"""The Starlette application, and the one place its parts are wired together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp

from registry_server.api.access import Access, ServiceNotInScopeError, UnauthorizedError
from registry_server.api.admission import MAX_RETRY_AFTER_TTLS, Admission
from registry_server.api.body import BodyReader
from registry_server.api.cross_origin import CrossOrigin
from registry_server.api.errors import (
    ApiError,
    on_api_error,
    on_http_exception,
    on_lease_error,
    on_not_in_scope,
    on_store_error,
    on_unauthorized,
    on_unexpected,
)
from registry_server.api.heartbeat import HeartbeatEndpoint, HeartbeatShortcut
from registry_server.api.middleware import ExceptionHandler, FrontLayer
from registry_server.api.refused_heartbeats import RefusedHeartbeats
from registry_server.api.rendered import RenderedAnswers
from registry_server.api.replay_positions import PositionsBudget
from registry_server.api.routes import RegistryApi
from registry_server.api.ui import ui_routes
from registry_server.api.watching import WatchApi
from registry_server.change_hub import ChangeHub
from registry_server.clock import SystemWallClock, WallClock
from registry_server.errors import LeaseTokenError, StoreError
from registry_server.health_checker import HealthChecker
from registry_server.interop import interop_routes
from registry_server.logs import configure_logging
from registry_server.metrics import RegistryMetrics
from registry_server.registry import Registry
from registry_server.registry_observer import RegistryObservers
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


def fleet_gap_ms(settings: Settings) -> int:
    """How stale the fleet's liveness mark may be before a replica takes it for an absence of the fleet.

    Replicas move it with every sweep, so a serving fleet keeps it younger than one sweep interval; three
    intervals leave room for a slow sweep. Half a TTL is enough: an instance heartbeating at least twice
    per TTL has no lease ending within a shorter absence."""
    return max(settings.ttl_ms // 2, round(3000 * settings.sweep_interval_s))


class RegistryApp(Starlette):
    """The registry's Starlette application. Every request passes, in this order: the front layer
    (admission, the request metrics, the cross-origin rule, the error answers), the middleware added with
    ``add_middleware`` (or given as ``middleware=``), the heartbeat shortcut, the router.

    Starlette's own server-error and exception middleware are not in the stack: the front layer answers
    every exception with ``handlers``."""

    def __init__(self, *, metrics: RegistryMetrics, handlers: Mapping[type[Exception], ExceptionHandler],
                 heartbeat: HeartbeatEndpoint, admission: Admission, cross_origin: CrossOrigin,
                 **options: Any) -> None:
        super().__init__(**options)
        self._metrics = metrics
        self._handlers = handlers
        self._heartbeat = heartbeat
        self._admission = admission
        self._cross_origin = cross_origin

    def build_middleware_stack(self) -> FrontLayer:
        app: ASGIApp = HeartbeatShortcut(self.router, self._heartbeat)
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return FrontLayer(app, admission=self._admission, metrics=self._metrics, cross_origin=self._cross_origin,
                          handlers=self._handlers)


def create_app(settings: Settings, *, store: InstanceStore | None = None, clock: WallClock | None = None,
               metrics_registry: CollectorRegistry | None = None,
               accept_queue: Callable[[], float | None] | None = None) -> Starlette:
    """Build the registry app. Every I/O dependency can be injected; nothing starts until the lifespan.
    ``accept_queue``: how full the listening socket's accept queue is (see
    :class:`registry_server.serving.AcceptQueue`), when the server tells it.

    All the wiring is here: who tells whom of changes, and which parts share the access rule and the body
    reader."""
    configure_logging(settings.log_level_number, settings.log_format)
    store = store if store is not None else build_store(settings)
    clock = clock or SystemWallClock()
    metrics = RegistryMetrics(metrics_registry if metrics_registry is not None else CollectorRegistry())
    metrics.count_undecodable(lambda: store.undecodable_documents)
    rendered = RenderedAnswers()  # discovery answers, dropped as their service changes
    positions = PositionsBudget()  # what change streams' replays sent, till the live events pass it
    sweeper = Sweeper(store, clock, settings.sweep_interval_s,  # sweeps sooner when a lease ends sooner
                      retention_s=settings.service_retention_s)
    registry = Registry(store, clock, settings.ttl_ms, RegistryObservers(metrics, rendered, sweeper),
                        health_default=settings.health_check, fleet_gap_ms=fleet_gap_ms(settings))
    checker = HealthChecker(clock)  # runs what instances ask for, even when the registry's default is off
    hub = ChangeHub(store, max_watchers=settings.max_watchers, on_count=metrics.watcher_count,
                    on_change=rendered.forget)  # changes made through other replicas too
    access = Access(settings)
    body = BodyReader(settings.max_body_bytes, settings.read_timeout_s)
    # A heartbeat told to come back later has its lease cover the delay, so the delay may exceed the TTL.
    admission = Admission(settings.max_in_flight, heartbeat_of=lambda scope: heartbeat.instance_id(scope),
                          refused=lambda instance_id, scope, delay: refused.refused(instance_id, scope, delay),
                          shed=registry.protection.shed, hold=registry.protection.hold,
                          refusals=metrics.requests_shed, paced=metrics.heartbeats_paced,
                          max_retry_after_s=MAX_RETRY_AFTER_TTLS * settings.instance_ttl_s,
                          pace=settings.pace_heartbeats, accept_queue=accept_queue)
    metrics.heartbeat_spacing.set_function(lambda: admission.spacing_s or 0.0)
    heartbeat = HeartbeatEndpoint(registry, access, body, admission)
    refused = RefusedHeartbeats(heartbeat, settings.ttl_ms)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        waiter = asyncio.create_task(_await_store(store), name="registry-store-wait")
        sweeper.start(registry)
        checker.start(registry)
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
            await refused.stop()
            await checker.stop()
            await sweeper.stop()
            await store.close()
            log.info("registry stopped: watchers released, sweeper stopped, store closed")

    app = RegistryApp(
        metrics=metrics,
        handlers={ApiError: on_api_error, HTTPException: on_http_exception, UnauthorizedError: on_unauthorized,
                  ServiceNotInScopeError: on_not_in_scope,
                  LeaseTokenError: on_lease_error, StoreError: on_store_error, Exception: on_unexpected},
        heartbeat=heartbeat,
        admission=admission,
        cross_origin=CrossOrigin(settings.allowed_origins),
        routes=[heartbeat.route, *RegistryApi(registry, settings, metrics, access, body, admission).routes(),
                *WatchApi(registry, hub, metrics, access, rendered, positions).routes(), *ui_routes(),
                *interop_routes(registry, hub, settings, access, body)],
        lifespan=lifespan,
    )
    app.state.registry = registry
    app.state.metrics = metrics
    app.state.sweeper = sweeper
    app.state.health_checker = checker
    app.state.hub = hub
    app.state.replay_positions = positions
    app.state.refused_heartbeats = refused
    app.state.admission = admission
    app.state.access = access
    return app
