"""``PUT /instances/{id}/heartbeat``: the endpoint, and the shortcut that takes heartbeats to it.

Heartbeats are nearly all of a registry's traffic (a fleet of N instances sends N per interval). The
shortcut sits in the middleware stack just above the router, below the request metrics and the error
answers, so a heartbeat is counted and its errors answered like any other request; what it skips is the
router's match through every route before this one and Starlette's ``Request``/``Response`` round trip
(the endpoint reads the ASGI scope once and answers with two ``send`` calls). The route stays in the
router's table with this same endpoint, so other methods on the path still answer 405.
"""

from __future__ import annotations

from collections.abc import Awaitable

import pydantic_core
from pydantic import ValidationError
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from registry_server.api.access import Access, Grant, Role, bearer_token
from registry_server.api.admission import Admission
from registry_server.api.body import BodyReader, check_content_type, validation_failure
from registry_server.api.errors import instance_not_found
from registry_server.model import Instance, InstanceStatus
from registry_server.registry import Registry
from registry_server.schemas import HeartbeatRequest

_JSON_HEADERS = (b"content-type", b"application/json")
_WRITE = Role.WRITE  # a global read: cheaper than through the enum class, on every heartbeat


class HeartbeatEndpoint:
    def __init__(self, registry: Registry, access: Access, body: BodyReader, admission: Admission) -> None:
        """``admission``: once saturated, the replica spaces heartbeats (:meth:`Admission.pace`), from the
        instances it hears (:meth:`Admission.heard`)."""
        self.registry = registry
        self.access = access
        self.body = body
        self.admission = admission
        self.route = Route("/instances/{id}/heartbeat", self, methods=["PUT"])
        """Its entry in the router's table (and the template its requests are counted under)."""
        self._match = self.route.path_regex.match  # the route's own pattern: one definition of the path

    def __repr__(self) -> str:
        return f"HeartbeatEndpoint(route={self.route.path!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        instance_id: str = scope["path_params"]["id"]
        headers = dict(scope["headers"])  # lower-case names (ASGI); of a repeated header the last
        get = headers.get
        status = (await self._status(get(b"content-type"), receive)
                  if self.body.declared(scope, get(b"content-length"), b"transfer-encoding" in headers) else None)
        admission = self.admission
        # Paced (the replica spaces heartbeats): told when to come back, and its lease lasts until then plus
        # a TTL.
        wait_s = admission.pace(instance_id) if admission.spacing_s is not None else None
        inst = await self.renew(instance_id, get(b"authorization"), get(b"x-lease-token"), status,
                                lease_ms=None if wait_s is None else wait_s * 1000 + self.registry.ttl_ms)
        if inst is None:
            raise instance_not_found(instance_id)
        admission.heard(instance_id)
        body = pydantic_core.to_json(inst.to_json())
        answer = [_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
        if wait_s is not None:
            answer.append((b"retry-after", str(wait_s).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": answer})
        await send({"type": "http.response.body", "body": body})

    def renew(self, instance_id: str, authorization: bytes | None, lease_token: bytes | None,
              status: InstanceStatus | None, *, lease_ms: int | None = None) -> Awaitable[Instance | None]:
        """The heartbeat itself, as the request's credentials (its ``Authorization`` and ``X-Lease-Token``
        headers) allow: the lease renewed for ``lease_ms`` (default: the TTL); the instance, ``None`` when
        there is none. Raises the API's errors (wrong token). (The registry's own awaitable, not a
        coroutine of this method's: no coroutine more on every heartbeat.)"""
        bearer = bearer_token(authorization.decode("latin-1")) if authorization is not None else None
        grant = self.access.authorize((bearer,) if bearer else (), _WRITE)
        lease_hash = grant.lease_hash(lease_token.decode("latin-1") if lease_token is not None else None)
        if grant.scope is not None:
            return self._renew_in_scope(grant, instance_id, status, lease_hash, lease_ms)
        return self.registry.heartbeat(instance_id, status, lease_token_hash=lease_hash, lease_ms=lease_ms)

    async def _renew_in_scope(self, grant: Grant, instance_id: str, status: InstanceStatus | None,
                              lease_hash: str | None, lease_ms: int | None) -> Instance | None:
        await grant.check_instance(self.registry, instance_id)
        return await self.registry.heartbeat(instance_id, status, lease_token_hash=lease_hash, lease_ms=lease_ms)

    def instance_id(self, scope: Scope) -> str | None:
        """The instance a request heartbeats (``None``: the request is not a heartbeat)."""
        if scope["method"] != "PUT":
            return None
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        match = self._match(path)
        return None if match is None else match["id"]

    async def _status(self, content_type: bytes | None, receive: Receive) -> InstanceStatus | None:
        """The status the body asks for (none when it is empty)."""
        raw = await self.body.receive(receive)
        if not raw.strip():
            return None
        check_content_type(content_type.decode("latin-1") if content_type is not None else None)
        known = _COMMON_BODIES.get(raw)
        if known is not None:
            return known
        try:
            body = HeartbeatRequest.model_validate_json(raw)
        except ValidationError as exc:
            raise validation_failure(exc) from None
        return InstanceStatus(body.status) if body.status else None


class HeartbeatShortcut:
    """Middleware: hands a heartbeat straight to its endpoint, as the router would; anything else to the
    router (``app``)."""

    def __init__(self, app: ASGIApp, endpoint: HeartbeatEndpoint) -> None:
        self.app = app
        self.endpoint = endpoint

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Hands on the awaitable rather than awaiting it: no coroutine of its own for every request.
        if scope["type"] == "http":
            instance_id = self.endpoint.instance_id(scope)
            if instance_id is not None:
                endpoint = self.endpoint
                scope["route"] = endpoint.route
                scope["path_params"] = {"id": instance_id}  # a str parameter needs no conversion
                return endpoint(scope, receive, send)
        return self.app(scope, receive, send)


_COMMON_BODIES = {body.encode(): status for status in InstanceStatus
                  for body in (f'{{"status": "{status.value}"}}', f'{{"status":"{status.value}"}}')}
"""The bodies clients send nearly every time (``ServiceRegistryManager`` the first form), known without
parsing; any other body is validated by the schema."""
