"""Requests from web pages on other origins: none may change state unless its origin is allowed.

A browser sends ``Origin`` with every POST, PUT, DELETE and PATCH. The registry refuses such a request
(``403 origin_not_allowed``) unless the origin is the registry's own (its console) or one listed in
``REGISTRY_ALLOWED_ORIGINS`` (a console served elsewhere); PUT and DELETE from an unlisted origin never
arrive, since their preflight (an OPTIONS, refused) must succeed first. For listed origins it answers CORS preflights
and marks its answers readable by them; for any other origin it sends no CORS header at all, so a page
there can read nothing either. Clients that are not browsers send no ``Origin`` and are not concerned.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry_server.api.errors import ApiError

_READS = frozenset({"GET", "HEAD"})
_PREFLIGHTED = frozenset({"GET", "HEAD", "PUT", "DELETE"})
"""Methods a browser sends cross-origin only after a preflight (PUT, DELETE) or that change nothing: with
no origin listed, no preflight succeeds, so these pass without a look at their headers (heartbeats too)."""
ALLOWED_METHODS = "GET, HEAD, POST, PUT, DELETE"
ALLOWED_HEADERS = "Authorization, Content-Type, X-Lease-Token, Last-Event-ID"
EXPOSED_HEADERS = "ETag, Location, X-Registry-Index, X-Consul-Index, Retry-After"
PREFLIGHT_MAX_AGE_S = 600


def origin_not_allowed(origin: str) -> ApiError:
    return ApiError(403, "origin_not_allowed",
                    f"requests from {origin} may not change this registry; list the origin in "
                    "REGISTRY_ALLOWED_ORIGINS to allow its console")


class CrossOrigin:
    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = frozenset(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"] in _PREFLIGHTED and not self.allowed):
            await self.app(scope, receive, send)  # nothing to refuse, no CORS header to add
            return
        origin = host = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"host":
                host = value.decode("latin-1")
        if origin is None or _same_origin(origin, host):
            await self.app(scope, receive, send)
            return
        allowed = origin.lower() in self.allowed
        method = scope["method"]
        if method == "OPTIONS" and allowed:
            await _preflight(origin)(scope, receive, send)
            return
        if not allowed:
            if method not in _READS:
                raise origin_not_allowed(origin)
            await self.app(scope, receive, send)  # a read, answered without CORS headers: unreadable there
            return

        def send_wrapper(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()),
                                      (b"access-control-allow-origin", origin.encode("latin-1")),
                                      (b"access-control-expose-headers", EXPOSED_HEADERS.encode()),
                                      (b"vary", b"Origin")]
            return send(message)

        await self.app(scope, receive, send_wrapper)


def _same_origin(origin: str, host: str | None) -> bool:
    """The page is the registry's own (its console): the origin names the host the request was sent to."""
    return host is not None and origin.lower().partition("://")[2] == host.lower()


def _preflight(origin: str) -> Response:
    return Response(status_code=204, headers={
        "Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": ALLOWED_METHODS,
        "Access-Control-Allow-Headers": ALLOWED_HEADERS, "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
        "Vary": "Origin"})
