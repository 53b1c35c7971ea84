"""The web console: static HTML/CSS/JS shipped in the package, served at ``/ui/`` with strict headers;
``/`` leads there, and ``/docs`` is an interactive page of the OpenAPI document (no asset from the internet).

The page reads the same REST API and change stream as every other client; it holds no server state, so
any replica can serve it. Assets are public (they hold no data); the data they fetch is guarded as usual.
"""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_HEADERS = {
    # No inline script or style anywhere in the console, so the strictest policy holds.
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",  # revalidate (ETag) so that an upgraded registry serves its own console
}


class _WithHeaders:
    """Adds fixed headers to every answer of the wrapped app."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self.raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.raw]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _to_console(request: Request) -> RedirectResponse:
    return RedirectResponse("ui/", status_code=308)  # relative: works behind a path prefix too


def _api_page() -> Route:
    page = resources.files("registry_server").joinpath("ui/docs.html").read_text(encoding="utf-8")

    async def api_page(request: Request) -> HTMLResponse:
        return HTMLResponse(page, headers=_HEADERS)  # its assets are the console's, under ui/

    return Route("/docs", api_page, methods=["GET", "HEAD"])


def ui_routes() -> list[Route | Mount]:
    """``/`` and ``/ui`` redirect to ``/ui/``, which serves ``index.html``; the other assets sit beside it.
    ``/docs`` is the API page."""
    assets = StaticFiles(packages=[("registry_server", "ui/static")], html=True)
    return [Route("/", _to_console, methods=["GET", "HEAD"]), Route("/ui", _to_console, methods=["GET", "HEAD"]),
            _api_page(), Mount("/ui", app=_WithHeaders(assets, _HEADERS), name="ui")]
