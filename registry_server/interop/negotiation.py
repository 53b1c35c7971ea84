"""Bodies and answers in the dialects' own formats: plain-text errors, JSON or XML (pure but for
reading the request)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from registry_server.api.responses import JSONResponse
from registry_server.interop.eureka_xml import XmlInputError, from_xml, to_xml


class BodyError(ValueError):
    """A body that is not JSON or XML we accept (answered ``400``)."""


def wants_json(accept: str | None) -> bool:
    """Eureka answers XML unless the client prefers JSON (no ``Accept`` or ``*/*``: XML, as Eureka)."""
    accept = (accept or "").lower()
    json_at, xml_at = accept.find("json"), accept.find("xml")
    return json_at >= 0 and (xml_at < 0 or json_at < xml_at)


def render(request: Request, document: dict[str, Any], status_code: int = 200) -> Response:
    if wants_json(request.headers.get("accept")):
        return JSONResponse(document, status_code=status_code)
    return Response(to_xml(document), status_code=status_code, media_type="application/xml")


def text(status_code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(message + "\n", status_code=status_code, media_type="text/plain", headers=headers)


def decode_body(raw: bytes, content_type: str | None) -> Any:
    """A JSON or XML body, as its content type says. A body without one is refused, never sniffed: that is
    what a page on another origin can send without a preflight."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if not media:
        raise BodyError("a body needs a content type: application/json or application/xml")
    if media.endswith("/xml") or media.endswith("+xml"):
        try:
            return from_xml(raw)
        except XmlInputError as exc:
            raise BodyError(str(exc)) from None
    if media != "application/json" and not media.endswith("+json"):
        raise BodyError(f"content type must be application/json or application/xml, not {media!r}")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BodyError(f"malformed JSON: {exc}") from None
