"""The layers every request passes through, outermost first: request metrics, then error answers (then
the cross-origin rule of :mod:`registry_server.api.cross_origin`).

``create_app`` stacks them around the heartbeat shortcut and the router (see
:meth:`registry_server.app.RegistryApp.build_middleware_stack`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry_server.metrics import RegistryMetrics

ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]

CLIENT_GONE = 499
"""The status counted for a request whose client left before it was answered (nginx's code)."""

_WATCH = "registry.watch"


def watching(scope: Scope, kind: str) -> None:
    """Mark the request as a watch (``blocking`` or ``stream``): :class:`MetricsMiddleware` times it in
    ``registry_watch_duration_seconds``, not with the requests that answer at once."""
    scope[_WATCH] = kind


class MetricsMiddleware:
    """HTTP metrics labelled by route template (``scope["route"]``, set by the router or the heartbeat
    shortcut), never by the raw path."""

    def __init__(self, app: ASGIApp, metrics: RegistryMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = CLIENT_GONE

        def send_wrapper(message: Message) -> Awaitable[None]:  # no coroutine of its own: it is on every send
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException:
            status = 500
            raise
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            watch = scope.get(_WATCH)
            if watch is None:
                self.metrics.observe_request(scope["method"], template, status, time.perf_counter() - started)
            else:
                self.metrics.observe_watch(watch, scope["method"], template, status, time.perf_counter() - started)


class ErrorAnswers:
    """Answers an exception raised below with the handler for its type (the nearest in its MRO), so every
    endpoint, the heartbeat and the router's own 404 and 405 answer errors alike. A client that left
    (:class:`ClientDisconnect`) gets no answer; an exception after the answer began is raised on."""

    def __init__(self, app: ASGIApp, handlers: Mapping[type[Exception], ExceptionHandler]) -> None:
        self.app = app
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answering = False

        def send_wrapper(message: Message) -> Awaitable[None]:
            nonlocal answering
            answering = True
            return send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except ClientDisconnect:
            return  # nobody to answer
        except Exception as exc:
            handlers = self.handlers
            handler = next((handlers[kind] for kind in type(exc).__mro__ if kind in handlers), None)
            if handler is None or answering:
                raise
            response = await handler(Request(scope, receive), exc)
            await response(scope, receive, send)
            exc.__traceback__ = None  # a reused exception instance would pile up tracebacks
