"""Who may do what: bearer tokens for writes (``REGISTRY_AUTH_TOKEN``), reads (``REGISTRY_READ_TOKEN``)
and operators (``REGISTRY_ADMIN_TOKEN``), compared in constant time; and what a write then presents as
an instance's lease.

The admin token is separate from the write token on purpose: every service holds the write token, so if
it also waived lease tokens, any service could renew or remove another's instance.

:meth:`Access.authorize` is the one rule for every endpoint, ours and the Eureka/Consul dialects'; they
differ only in where a request carries its tokens (:func:`presented` here, and
:func:`registry_server.interop.credentials.presented_tokens`) and in how a refusal is worded.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Sequence

from starlette.requests import Request

from registry_server.model import lease_token_hash
from registry_server.settings import Settings


class Role(enum.Enum):
    READ = "read"
    WRITE = "write"


class Grant(enum.Enum):
    """What an authorised request may do with an instance's lease."""

    ADMIN = "admin"
    """Acts on any instance without its lease token."""
    HOLDER = "holder"
    """Acts on an instance only with its lease token."""

    def lease_hash(self, lease_token: str | None) -> str | None:
        """What to present to the store for an instance (see ``InstanceStore``): ``None`` for the admin,
        else the hash of ``lease_token``, ``""`` when none was given."""
        if self is _ADMIN:
            return None
        return lease_token_hash(lease_token) if lease_token else ""


_WRITE, _ADMIN, _HOLDER = Role.WRITE, Grant.ADMIN, Grant.HOLDER
"""Read as globals on every heartbeat: a member read through its enum class costs four times as much."""


class UnauthorizedError(Exception):
    """No presented token may act in the role asked for."""


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, else ``None``."""
    scheme, _, given = (authorization or "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" and given.strip() else None


def presented(request: Request) -> tuple[str, ...]:
    """The tokens a request to the registry's own API presents: its bearer token, if any."""
    token = bearer_token(request.headers.get("authorization"))
    return (token,) if token else ()


def _matches(presented_tokens: Sequence[str], allowed: tuple[str, ...]) -> bool:
    found = False
    for given in presented_tokens:
        for token in allowed:  # no early exit: the time taken does not say which token matched
            found |= hmac.compare_digest(given.encode(), token.encode())
    return found


class Access:
    def __init__(self, settings: Settings) -> None:
        admin = (settings.admin_token,) if settings.admin_token else ()
        self._admin = admin
        self._writers: tuple[str, ...] | None = (settings.auth_token, *admin) if settings.auth_token else None
        """Tokens that may write; ``None``: writes are open."""
        self._readers: tuple[str, ...] | None = (
            tuple(t for t in (settings.read_token, settings.auth_token, settings.admin_token) if t)
            if settings.read_token else None)
        """Tokens that may read; ``None``: reads are open."""

    def __repr__(self) -> str:
        return f"Access(writes_open={self._writers is None}, reads_open={self._readers is None})"

    def authorize(self, presented_tokens: Sequence[str], role: Role) -> Grant:
        """The grant of a request presenting ``presented_tokens`` to act in ``role``;
        :class:`UnauthorizedError` when none of them may."""
        allowed = self._writers if role is _WRITE else self._readers
        if allowed is not None and not _matches(presented_tokens, allowed):
            raise UnauthorizedError
        if self._admin and _matches(presented_tokens, self._admin):
            return _ADMIN
        return _HOLDER
