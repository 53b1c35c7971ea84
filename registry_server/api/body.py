"""Reading request bodies: bounded in size, JSON only, validated by a schema."""

from __future__ import annotations

import asyncio
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from registry_server.api.errors import ApiError
from registry_server.schemas import error_details

M = TypeVar("M", bound=BaseModel)


def too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"request body over {limit} bytes")


def too_slow(timeout_s: float) -> ApiError:
    return ApiError(408, "request_timeout", f"request body did not arrive within {timeout_s:g}s",
                    headers={"Connection": "close"})


def body_expected(content_length: str | None, chunked: bool, http_version: str, limit: int) -> bool:
    """Whether a body is coming; 413 at once when its declared length is over ``limit``."""
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise too_large(limit)
    # HTTP/1.x without a length or a chunked encoding says there is no body: nothing to wait for
    return content_length != "0" and (content_length is not None or chunked or not http_version.startswith("1"))


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes (never read whole into memory),
    and with 408 when it takes over ``timeout_s`` seconds to arrive."""
    if not body_expected(request.headers.get("content-length"), "transfer-encoding" in request.headers,
                         request.scope.get("http_version", "1.1"), limit):
        return b""
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise too_slow(timeout_s) from None
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
