"""The front layer every request passes first: admission, the request metrics, the cross-origin rule and
the error answers, in that order, as plain calls within one coroutine (each a layer of its own would cost
every request, heartbeats above all, a coroutine and a ``send`` wrapper more).

``create_app`` puts it in front of any middleware added with ``add_middleware``, the heartbeat shortcut and
the router (see :meth:`registry_server.app.RegistryApp.build_middleware_stack`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry_server.api.admission import Admission
from registry_server.api.cross_origin import CrossOrigin, Readable
from registry_server.metrics import RegistryMetrics

ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]

CLIENT_GONE = 499
"""The status counted for a request whose client left before it was answered (nginx's code)."""

_WATCH = "registry.watch"
_ADMISSION = "registry.admission"


def watching(scope: Scope, kind: str) -> None:
    """Mark the request as a watch (``blocking`` or ``stream``): :class:`FrontLayer` times it in
    ``registry_watch_duration_seconds``, not with the requests that answer at once, and admission no longer
    counts it in flight (a watch waits on changes, not on this replica; the watcher limit bounds it)."""
    admission: Admission | None = scope.pop(_ADMISSION, None)  # released once, however often marked
    scope[_WATCH] = kind
    if admission is not None:
        admission.release(scope)


class FrontLayer:
    """1. :class:`~registry_server.api.admission.Admission`: a request the registry cannot serve in time is
    refused at once, and not counted below.
    2. HTTP metrics, labelled by route template (``scope["route"]``, set by the router or the heartbeat
    shortcut), never by the raw path.
    3. :class:`~registry_server.api.cross_origin.CrossOrigin`: a change from a page on an origin not listed
    is refused; a listed one's answer carries its CORS headers.
    4. Error answers: an exception raised below is answered with the handler for its type (the nearest in
    its MRO), so every endpoint, the heartbeat and the router's own 404 and 405 answer errors alike, and
    each answer is counted. A client that left (:class:`ClientDisconnect`) gets no answer; an exception
    after the answer began is raised on."""

    def __init__(self, app: ASGIApp, *, admission: Admission, metrics: RegistryMetrics, cross_origin: CrossOrigin,
                 handlers: Mapping[type[Exception], ExceptionHandler]) -> None:
        self.app = app
        self.admission = admission
        self.metrics = metrics
        self.cross_origin = cross_origin
        self.handlers = handlers

    def __repr__(self) -> str:
        return f"FrontLayer({self.admission!r}, {self.cross_origin!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        admission = self.admission
        if not admission.admit(scope):
            await admission.refusal(scope, send)
            return
        scope[_ADMISSION] = admission
        started = time.perf_counter()
        status = CLIENT_GONE
        answering = False
        readable: Readable | None = None

        def send_wrapper(message: Message) -> Awaitable[None]:  # no coroutine of its own: it is on every send
            nonlocal status, answering
            if message["type"] == "http.response.start":
                status = message["status"]
                if readable is not None:
                    message["headers"] = [*message.get("headers", ()), *readable.headers]
            answering = True
            return send(message)

        try:
            try:
                readable = self.cross_origin.check(scope)
                if readable is not None and readable.preflight is not None:
                    await readable.preflight(scope, receive, send_wrapper)
                else:
                    await self.app(scope, receive, send_wrapper)
            except ClientDisconnect:
                return  # nobody to answer
            except Exception as exc:
                handlers = self.handlers
                handler = next((handlers[kind] for kind in type(exc).__mro__ if kind in handlers), None)
                if handler is None or answering:
                    raise
                readable = None  # errors are answered as to any other page: without CORS headers
                response = await handler(Request(scope, receive), exc)
                await response(scope, receive, send_wrapper)
                exc.__traceback__ = None  # a reused exception instance would pile up tracebacks
        except BaseException:
            status = 500
            raise
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            watch = scope.get(_WATCH)
            if watch is None:
                admission.release(scope)
                self.metrics.observe_request(scope["method"], template, status, time.perf_counter() - started)
            else:
                self.metrics.observe_watch(watch, scope["method"], template, status, time.perf_counter() - started)
