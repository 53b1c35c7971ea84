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

from registry_server.api.access import Access, Role, bearer_token
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
        """``admission``: while the replica runs late it paces heartbeats (:meth:`Admission.pace`)."""
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
        authorization = lease_token = content_type = None
        for name, value in scope["headers"]:  # lower-case names (ASGI); of a repeated header the last
            if name == b"x-lease-token":
                lease_token = value
            elif name == b"authorization":
                authorization = value
            elif name == b"content-type":
                content_type = value
        status = await self._status(content_type, receive) if self.body.coming(scope) else None
        admission = self.admission
        wait_s = admission.pace() if admission.share < 1.0 else None
        if wait_s is None:
            inst = await self.renew(instance_id, authorization, lease_token, status)
            body = pydantic_core.to_json(inst.to_json())
            headers = [_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
        else:  # paced: told when to come back, and its lease lasts until then plus a TTL
            inst = await self.renew(instance_id, authorization, lease_token, status,
                                    lease_ms=round(wait_s * 1000) + self.registry.ttl_ms)
            body = pydantic_core.to_json(inst.to_json())
            headers = [_JSON_HEADERS, (b"content-length", str(len(body)).encode()),
                       (b"retry-after", str(round(wait_s)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def renew(self, instance_id: str, authorization: bytes | None, lease_token: bytes | None,
                    status: InstanceStatus | None, *, lease_ms: int | None = None) -> Instance:
        """The heartbeat itself, as the request's credentials (its ``Authorization`` and ``X-Lease-Token``
        headers) allow: the lease renewed for ``lease_ms`` (default: the TTL). Raises the API's errors
        (unknown instance, wrong token)."""
        bearer = bearer_token(authorization.decode("latin-1")) if authorization is not None else None
        grant = self.access.authorize((bearer,) if bearer else (), _WRITE)
        if grant.scope is not None:
            await grant.check_instance(self.registry, instance_id)
        inst = await self.registry.heartbeat(instance_id, status, lease_token_hash=grant.lease_hash(
            lease_token.decode("latin-1") if lease_token is not None else None), lease_ms=lease_ms)
        if inst is None:
            raise instance_not_found(instance_id)
        return inst

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
