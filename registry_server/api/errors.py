"""Every error answers ``{"error": {"code", "message"[, "details"]}}`` as JSON, never HTML."""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from registry_server.api.access import ServiceNotInScopeError, UnauthorizedError
from registry_server.api.responses import JSONResponse
from registry_server.errors import StoreError, StoreUnavailableError

log = logging.getLogger("registry_server.api")

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 408: "request_timeout", 413: "payload_too_large",
               415: "unsupported_media_type", 422: "validation_error", 503: "unavailable"}


class ApiError(Exception):
    """An error answer, raised from a handler."""

    def __init__(self, status: int, code: str, message: str, *, details: list[dict[str, str]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def instance_not_found(instance_id: str) -> ApiError:
    return ApiError(404, "instance_not_found", f"no live instance with id {instance_id!r}")


def error_response(status: int, code: str, message: str, *, details: list[dict[str, str]] | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


async def on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, details=exc.details, headers=exc.headers)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if exc.status_code != 404 else f"no route for {request.method} {request.url.path}"
    return error_response(exc.status_code, code, message, headers=dict(exc.headers or {}))


async def on_unauthorized(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UnauthorizedError)
    return error_response(401, "unauthorized", "this endpoint needs 'Authorization: Bearer <token>'",
                          headers={"WWW-Authenticate": 'Bearer realm="registry"'})


async def on_not_in_scope(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceNotInScopeError)
    return error_response(403, "service_not_in_scope", str(exc))


async def on_lease_error(request: Request, exc: Exception) -> Response:
    return error_response(403, "lease_token_mismatch", str(exc))


async def on_store_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StoreError)
    unavailable = isinstance(exc, StoreUnavailableError)
    log.warning("store %s during %s %s: %s", "unavailable" if unavailable else "error", request.method,
                request.url.path, exc)
    return error_response(503, "store_unavailable" if unavailable else "store_error",
                          f"the instance store failed: {exc}", headers={"Retry-After": "1"})


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error in %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "the registry failed unexpectedly; see its log")
