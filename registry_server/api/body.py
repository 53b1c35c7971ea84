"""Reading request bodies, the same way for every endpoint and dialect: bounded in size and in time,
JSON only where a schema validates them."""

from __future__ import annotations

import asyncio
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive, Scope

from registry_server.api.deadlines import ReadDeadlines
from registry_server.api.errors import ApiError
from registry_server.schemas import error_details

M = TypeVar("M", bound=BaseModel)


def too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"request body over {limit} bytes")


def too_slow(timeout_s: float) -> ApiError:
    return ApiError(408, "request_timeout", f"request body did not arrive within {timeout_s:g}s",
                    headers={"Connection": "close"})


class BodyReader:
    """Reads a request's body, refused with 413 as soon as it passes ``limit`` bytes (never read whole into
    memory; at once when its declared length is over) and with 408 when it takes over ``timeout_s`` seconds
    to arrive. A client that leaves first raises :class:`ClientDisconnect`: nobody is left to answer."""

    def __init__(self, limit: int, timeout_s: float) -> None:
        self.limit = limit
        self.timeout_s = timeout_s
        self._deadlines = ReadDeadlines()

    def __repr__(self) -> str:
        return f"BodyReader(limit={self.limit}, timeout_s={self.timeout_s:g})"

    async def read(self, scope: Scope, receive: Receive) -> bytes:
        """The body, ``b""`` when none is coming."""
        return await self.receive(receive) if self.coming(scope) else b""

    def coming(self, scope: Scope) -> bool:
        """Whether a body is coming; 413 at once when its declared length is over the limit. (The heartbeat
        asks this first, so that a heartbeat without a body, the usual one, awaits nothing for it.)"""
        length: bytes | None = None
        chunked = False
        for name, value in scope["headers"]:  # lower-case names (ASGI)
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        return self.declared(scope, length, chunked)

    def declared(self, scope: Scope, length: bytes | None, chunked: bool) -> bool:
        """:meth:`coming`, told the request's last ``content-length`` and whether it has a
        ``transfer-encoding`` (for a caller that has read its headers already)."""
        if length is not None and length.isdigit() and int(length) > self.limit:
            raise too_large(self.limit)
        # HTTP/1.x without a length or a chunked encoding says there is no body: nothing to wait for
        return length != b"0" and (length is not None or chunked
                                   or not scope.get("http_version", "1.1").startswith("1"))

    async def receive(self, receive: Receive) -> bytes:
        """The body that is :meth:`coming`."""
        limit = self.limit
        task: asyncio.Task[object] | None = asyncio.current_task()
        assert task is not None
        self._deadlines.watch(task, self.timeout_s)
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
        except asyncio.CancelledError:
            if not self._deadlines.unwatch(task):
                raise
            task.uncancel()
            raise too_slow(self.timeout_s) from None
        finally:
            self._deadlines.unwatch(task)


def check_content_type(content_type: str | None) -> None:
    """JSON bodies must say so: a body without a content type, or as ``text/plain``, is what a page on another
    origin can send without a preflight (``fetch(url, {mode: "no-cors", body})``), so it changes nothing."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise ApiError(400, "unsupported_content_type",
                       f"content type must be application/json, not {media or 'empty'!r}")


async def parse_body(request: Request, model: type[M], body: BodyReader, *, optional: bool = False) -> M:
    """Validate the JSON body against ``model``: 400 for malformed JSON, 422 naming each bad field."""
    raw = await body.read(request.scope, request.receive)
    if optional and not raw.strip():
        return model()
    check_content_type(request.headers.get("content-type"))
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_failure(exc) from None


def validation_failure(exc: ValidationError) -> ApiError:
    """400 for malformed JSON, else 422 naming each bad field."""
    errors = exc.errors(include_url=False, include_input=False)
    if any(err["type"] == "json_invalid" for err in errors):
        reason = next(str(err["msg"]) for err in errors if err["type"] == "json_invalid")
        return ApiError(400, "malformed_json", f"request body is not valid JSON: {reason}")
    return ApiError(422, "validation_error", "request body failed validation", details=error_details(errors))
