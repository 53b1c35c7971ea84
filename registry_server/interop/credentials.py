"""Who may call the interop endpoints, and the lease of instances registered through them.

Eureka and Consul clients cannot send ``Authorization: Bearer``, so the registry's tokens are also
accepted as HTTP Basic credentials (the password; Eureka clients put them in the server URL,
``http://user:TOKEN@host/eureka/``), as ``X-Consul-Token`` or as ``?token=`` (Consul clients).

Lease tokens: these protocols have no per-instance secret to send back. An instance registered through
Eureka or Consul gets the lease token :func:`interop_lease_token` derives from the dialect and its id,
and that dialect's endpoints present that token for it. So such an instance can be renewed, changed or
removed through its own dialect by anyone who may write its service and knows its id (as with Eureka and
Consul themselves), but not through the other dialect, nor through our own API, which never accepts a
derived lease token (so a native re-registration cannot set a secret lease and lock the agent out). An
instance registered through our own API keeps its secret lease token: the Eureka and Consul endpoints
cannot renew, override or remove it (``403``). The admin token acts on any instance.
"""

from __future__ import annotations

import base64
import binascii
import enum

from starlette.requests import Request

from registry_server.api.access import DERIVED_LEASE_PREFIX, Access, Grant, Role, UnauthorizedError
from registry_server.model import lease_token_hash


class Dialect(enum.Enum):
    EUREKA = "eureka"
    CONSUL = "consul"


def interop_lease_token(dialect: Dialect, instance_id: str) -> str:
    """The lease token of an instance registered through ``dialect``."""
    return f"{DERIVED_LEASE_PREFIX}{dialect.value}:{instance_id}"


def interop_lease_hash(dialect: Dialect, instance_id: str) -> str:
    """The lease hash stored for an instance registered through ``dialect``."""
    return lease_token_hash(interop_lease_token(dialect, instance_id))


def presented_lease(grant: Grant, dialect: Dialect, instance_id: str) -> str | None:
    """What a write through ``dialect`` presents to the store for the instance ``instance_id``."""
    return grant.derived_lease_hash(interop_lease_token(dialect, instance_id))


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
