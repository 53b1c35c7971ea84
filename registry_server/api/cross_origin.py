"""Requests from web pages on other origins: none may change state unless its origin is allowed.

A browser sends ``Origin`` with every POST, PUT, DELETE and PATCH. The registry refuses such a request
(``403 origin_not_allowed``) unless the origin is the registry's own (its console) or one listed in
``REGISTRY_ALLOWED_ORIGINS`` (a console served elsewhere); PUT and DELETE from an unlisted origin never
arrive, since their preflight (an OPTIONS, refused) must succeed first. For listed origins it answers CORS preflights
and marks its answers readable by them; for any other origin it sends no CORS header at all, so a page
there can read nothing either. Clients that are not browsers send no ``Origin`` and are not concerned.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from starlette.responses import Response
from starlette.types import Scope

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


@dataclass(frozen=True, slots=True)
class Readable:
    """A request from a page on a listed origin: its answer carries ``headers``; a preflight is answered by
    ``preflight`` in place of the route."""

    headers: list[tuple[bytes, bytes]]
    preflight: Response | None = None


class CrossOrigin:
    """The rule, a plain call the front layer makes on every request (see
    :class:`registry_server.api.middleware.FrontLayer`)."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = frozenset(allowed)

    def __repr__(self) -> str:
        return f"CrossOrigin(allowed={sorted(self.allowed)})"

    def check(self, scope: Scope) -> Readable | None:
        """What a request from another origin gets: ``None``, nothing (no ``Origin``, the registry's own, or
        a read from an origin not listed: answered without CORS headers, so unreadable there); else the CORS
        headers of a listed origin. A change from an origin not listed is refused (:class:`ApiError` 403)."""
        if scope["method"] in _PREFLIGHTED and not self.allowed:
            return None  # nothing to refuse, no CORS header to add
        origin = host = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"host":
                host = value.decode("latin-1")
        if origin is None or _same_origin(origin, host):
            return None
        method = scope["method"]
        if origin.lower() not in self.allowed:
            if method not in _READS:
                raise origin_not_allowed(origin)
            return None
        if method == "OPTIONS":
            return Readable([], _preflight(origin))
        return Readable([(b"access-control-allow-origin", origin.encode("latin-1")),
                         (b"access-control-expose-headers", EXPOSED_HEADERS.encode()), (b"vary", b"Origin")])


def _same_origin(origin: str, host: str | None) -> bool:
    """The page is the registry's own (its console): the origin names the host the request was sent to."""
    return host is not None and origin.lower().partition("://")[2] == host.lower()


def _preflight(origin: str) -> Response:
    return Response(status_code=204, headers={
        "Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": ALLOWED_METHODS,
        "Access-Control-Allow-Headers": ALLOWED_HEADERS, "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
        "Vary": "Origin"})
