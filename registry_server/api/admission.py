"""Admission: a request the registry cannot serve in time is refused at the door, before any work.

An overloaded registry that queues everything answers late, to callers that have already given up, and
its heartbeats arrive after the leases they should renew have run out. Instead, when ``max_in_flight``
writes are already being served, a further write (a heartbeat, a registration, a removal) is answered
at once with ``503`` and ``Retry-After``, at the cost of two ``send`` calls; reads may use twice the
limit, and ``/healthz`` and ``/metrics`` are always served, so operators see the overload. Each refusal
tells the expiry protection, which holds the leases that run out while the registry sheds (a refused
heartbeat was a sign of life, not of death).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

_WRITES = frozenset({"PUT", "POST", "DELETE", "PATCH"})
_ALWAYS = frozenset({"/healthz", "/metrics"})
_BODY = b'{"error":{"code":"overloaded","message":"the registry is overloaded; retry after the time given"}}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode()),
            (b"retry-after", b"1")]


class Admission:
    """Middleware, outermost: counts the requests in flight and refuses writes beyond ``max_in_flight``."""

    def __init__(self, app: ASGIApp, max_in_flight: int, *, shed: Callable[[], None], refused: Counter) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self._shed = shed
        self._refused = refused

    def __repr__(self) -> str:
        return f"Admission(max_in_flight={self.max_in_flight}, in_flight={self.in_flight})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight and self._refuse(scope):
            self._shed()
            self._refused.inc()
            await send({"type": "http.response.start", "status": 503, "headers": _HEADERS})
            await send({"type": "http.response.body", "body": _BODY})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    def _refuse(self, scope: Scope) -> bool:
        if scope["method"] in _WRITES:
            return True
        return self.in_flight >= 2 * self.max_in_flight and scope["path"] not in _ALWAYS
