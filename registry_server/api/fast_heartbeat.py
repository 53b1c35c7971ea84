"""``PUT /instances/{id}/heartbeat`` answered at the ASGI level, ahead of Starlette's routing.

Heartbeats are nearly all of a registry's traffic (a fleet of N instances sends N per interval), and on
this stack most of a heartbeat's CPU went to the web framework around it rather than to the lease:
Starlette's middleware layers, route matching through every route before this one, a ``Request`` whose
headers are scanned again for every lookup, and a ``Response`` passed through three ``send`` wrappers.
This handler does the whole job (the bearer and lease tokens, a bounded optional body, the store call,
the request metrics) straight from the ASGI scope. Every error goes through the application's own exception
handlers, so it answers as any other endpoint would. The route stays in Starlette's table with this
same handler as its endpoint, so other methods on the path still answer 405.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pydantic_core
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from registry_server.api.access import Access, bearer_token, matches_token
from registry_server.api.body import body_expected, check_content_type, too_large, too_slow, validation_failure
from registry_server.api.deadlines import ReadDeadlines
from registry_server.api.errors import instance_not_found
from registry_server.metrics import RegistryMetrics
from registry_server.model import InstanceStatus, lease_token_hash
from registry_server.registry import Registry
from registry_server.schemas import HeartbeatRequest
from registry_server.settings import Settings

ROUTE = "/instances/{id}/heartbeat"
_PATH = re.compile(r"/instances/([^/]+)/heartbeat")
_JSON_HEADERS = (b"content-type", b"application/json")

ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


class HeartbeatEndpoint:
    def __init__(self, registry: Registry, settings: Settings, metrics: RegistryMetrics, access: Access,
                 handlers: Mapping[Any, ExceptionHandler]) -> None:
        self.registry = registry
        self.settings = settings
        self.metrics = metrics
        self.access = access
        self.handlers = handlers
        """The application's exception handlers, by exception type."""
        self._deadlines = ReadDeadlines()

    def __repr__(self) -> str:
        return f"HeartbeatEndpoint(route={ROUTE!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """As a routed ASGI endpoint (unused while the application answers heartbeats before routing)."""
        await self.handle(scope["path_params"]["id"], scope, receive, send)

    def instance_id(self, scope: Scope) -> str | None:
        """The instance id if ``scope`` is a heartbeat this handler takes, else ``None``."""
        if scope["type"] != "http" or scope["method"] != "PUT":
            return None
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        match = _PATH.fullmatch(path)
        return match.group(1) if match else None

    async def handle(self, instance_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers[name] = value  # lower-case names (ASGI); of a repeated header the last, as Starlette's get
        try:
            body = await self._heartbeat(instance_id, scope, headers, receive)
        except _ClientGoneError:
            return  # nobody to answer
        except Exception as exc:  # answered by the application's handler for its type, as when routed
            handlers = self.handlers
            handler = next((handlers[kind] for kind in type(exc).__mro__ if kind in handlers), None)
            if handler is None:
                raise
            response = await handler(Request(scope, receive), exc)
            await response(scope, receive, send)
            status_code = response.status_code
        else:
            status_code = 200
            await send({"type": "http.response.start", "status": 200,
                        "headers": [_JSON_HEADERS, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
        self.metrics.observe_request("PUT", ROUTE, status_code, time.perf_counter() - started)

    async def _heartbeat(self, instance_id: str, scope: Scope, headers: dict[bytes, bytes],
                         receive: Receive) -> bytes:
        access = self.access
        authorization = headers.get(b"authorization")
        bearer = bearer_token(authorization.decode("latin-1") if authorization is not None else None)
        if access.writers is not None and not matches_token(bearer, access.writers):
            raise access.unauthorized()
        status = await self._status(scope, headers, receive)
        if access.admin and matches_token(bearer, access.admin):
            presented: str | None = None
        else:
            given = headers.get(b"x-lease-token")
            presented = lease_token_hash(given.decode("latin-1")) if given else ""
        inst = await self.registry.heartbeat(instance_id, status, lease_token_hash=presented)
        if inst is None:
            raise instance_not_found(instance_id)
        return pydantic_core.to_json(inst.to_json())

    async def _status(self, scope: Scope, headers: dict[bytes, bytes], receive: Receive) -> InstanceStatus | None:
        """The status the optional body asks for; the body is bounded in size and in time."""
        limit = self.settings.max_body_bytes
        length = headers.get(b"content-length")
        if not body_expected(length.decode("latin-1") if length is not None else None, b"transfer-encoding" in headers,
                             scope.get("http_version", "1.1"), limit):
            return None
        raw = await self._read(receive, limit)
        if not raw.strip():
            return None
        content_type = headers.get(b"content-type")
        check_content_type(content_type.decode("latin-1") if content_type is not None else None)
        known = _COMMON_BODIES.get(raw)
        if known is not None:
            return known
        try:
            body = HeartbeatRequest.model_validate_json(raw)
        except ValidationError as exc:
            raise validation_failure(exc) from None
        return InstanceStatus(body.status) if body.status else None

    async def _read(self, receive: Receive, limit: int) -> bytes:
        timeout_s = self.settings.read_timeout_s
        task: asyncio.Task[object] | None = asyncio.current_task()
        assert task is not None
        self._deadlines.watch(task, timeout_s)
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _ClientGoneError
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
            raise too_slow(timeout_s) from None
        finally:
            self._deadlines.unwatch(task)


_COMMON_BODIES = {body.encode(): status for status in InstanceStatus
                  for body in (f'{{"status": "{status.value}"}}', f'{{"status":"{status.value}"}}')}
"""The bodies clients send nearly every time (``ServiceRegistryManager`` the first form), known without
parsing; any other body is validated by the schema."""


class _ClientGoneError(Exception):
    """The client disconnected before its body arrived."""

