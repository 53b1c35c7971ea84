"""Reading request bodies: bounded in size, JSON only, validated by a schema."""

from __future__ import annotations

import asyncio
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from registry_server.api.errors import ApiError
from registry_server.schemas import error_details

M = TypeVar("M", bound=BaseModel)


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes (never read whole into memory),
    and with 408 when it takes over ``timeout_s`` seconds to arrive."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"request body over {limit} bytes")
    if declared == "0" or (declared is None and "transfer-encoding" not in request.headers
                           and request.scope.get("http_version", "1.1").startswith("1")):
        return b""  # HTTP/1.x says there is no body: nothing to wait for
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, "payload_too_large", f"request body over {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(408, "request_timeout", f"request body did not arrive within {timeout_s:g}s",
                       headers={"Connection": "close"}) from None
    return b"".join(chunks)


def check_content_type(content_type: str | None) -> None:
    if content_type is None:
        return  # tolerated: curl and many scripts send JSON without saying so
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise ApiError(400, "unsupported_content_type",
                       f"content type must be application/json, not {media or 'empty'!r}")


async def parse_body(request: Request, model: type[M], limit: int, timeout_s: float, *,
                     optional: bool = False) -> M:
    """Validate the JSON body against ``model``: 400 for malformed JSON, 422 naming each bad field."""
    raw = await read_body(request, limit, timeout_s)
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
