"""Who may call the interop endpoints, and the lease of instances registered through them.

Eureka and Consul clients cannot send ``Authorization: Bearer``, so the registry's tokens are also
accepted as HTTP Basic credentials (the password; Eureka clients put them in the server URL,
``http://user:TOKEN@host/eureka/``), as ``X-Consul-Token`` or as ``?token=`` (Consul clients).

Lease tokens: these protocols have no per-instance secret to send back. An instance registered through
Eureka or Consul gets the lease token :func:`interop_lease_token` derives from its id, and the
Eureka/Consul endpoints present that token for it (``grant.lease_hash(interop_lease_token(id))``). So
such an instance can be renewed, changed or removed by anyone who may write and knows its id (as with
Eureka and Consul themselves), while an instance registered through our own API keeps its secret lease
token: the Eureka and Consul endpoints cannot renew, override or remove it (``403``).
"""

from __future__ import annotations

import base64
import binascii

from starlette.requests import Request

from registry_server.api.access import Access, Grant, Role, UnauthorizedError
from registry_server.model import lease_token_hash

_LEASE_PREFIX = "interop-lease:"


def interop_lease_token(instance_id: str) -> str:
    """The lease token of an instance registered through Eureka or Consul."""
    return _LEASE_PREFIX + instance_id


def interop_lease_hash(instance_id: str) -> str:
    return lease_token_hash(interop_lease_token(instance_id))


def presented_tokens(request: Request) -> list[str]:
    """Every token the request carries: bearer, Basic password, ``X-Consul-Token``, ``?token=``."""
    found: list[str] = []
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        found.append(value)
    elif scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        _user, sep, password = decoded.partition(":")
        if sep and password:
            found.append(password)
    for extra in (request.headers.get("x-consul-token"), request.query_params.get("token")):
        if extra:
            found.append(extra)
    return found


def authorized(access: Access, request: Request, role: Role) -> Grant | None:
    """The registry's one rule (:meth:`Access.authorize`) on the credentials these protocols send;
    ``None`` when they may not act in ``role`` (each dialect words its own refusal)."""
    try:
        return access.authorize(presented_tokens(request), role)
    except UnauthorizedError:
        return None
