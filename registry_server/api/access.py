"""Who may do what: bearer tokens for writes (``REGISTRY_AUTH_TOKEN``), reads (``REGISTRY_READ_TOKEN``)
and operators (``REGISTRY_ADMIN_TOKEN``), scoped tokens from a file (``REGISTRY_TOKENS_FILE``), all
compared in constant time; and what a write then presents as an instance's lease.

The admin token is separate from the write token on purpose: every service holds the write token, so if
it also waived lease tokens, any service could renew or remove another's instance. A scoped write token
narrows what one holder may write to the services of its scope (:class:`ServiceScope`), so that a
service's token cannot add an instance, its address, to another service.

:meth:`Access.authorize` is the one rule for every endpoint, ours and the Eureka/Consul dialects'; they
differ only in where a request carries its tokens (:func:`presented` here, and
:func:`registry_server.interop.credentials.presented_tokens`) and in how a refusal is worded.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request

from registry_server.model import lease_token_hash
from registry_server.settings import Settings
from registry_server.tokens_file import ScopedToken, ServiceScope, TokenRole, read_tokens_file

if TYPE_CHECKING:
    from registry_server.registry import Registry

DERIVED_LEASE_PREFIX = "interop-lease:"
"""Lease tokens the registry derives for instances of the Eureka and Consul dialects begin so: being
derivable from an instance id, they are never accepted as a lease token by the native API."""

_NEVER_MATCHES = "!"
"""A lease hash no stored hash equals (those are hex digits): the store refuses it as not the lease."""


class Role(enum.Enum):
    READ = "read"
    WRITE = "write"


@dataclass(frozen=True, slots=True)
class Grant:
    """What an authorised request may do: with which instances' leases, and in which services."""

    admin: bool
    """Acts on any instance without its lease token (else only with it)."""
    scope: ServiceScope | None = None
    """The services it may write; ``None``: every service."""
    holder: str | None = None
    """The name of the scoped token, for refusals."""

    def lease_hash(self, lease_token: str | None) -> str | None:
        """What to present to the store for an instance, given the lease token a request to the native API
        sent (see ``InstanceStore``): ``None`` for the admin, else the hash of ``lease_token``, ``""``
        when none was given; a derived lease token never matches."""
        if self.admin:
            return None
        if not lease_token:
            return ""
        return _NEVER_MATCHES if lease_token.startswith(DERIVED_LEASE_PREFIX) else lease_token_hash(lease_token)

    def derived_lease_hash(self, lease_token: str) -> str | None:
        """As :meth:`lease_hash`, for the lease token a dialect derives for its own instances."""
        return None if self.admin else lease_token_hash(lease_token)

    def check(self, service: str) -> None:
        """:class:`ServiceNotInScopeError` unless this grant may write ``service``."""
        if self.scope is not None and not self.scope.permits(service):
            raise ServiceNotInScopeError(self.holder or "this token", service)

    async def check_instance(self, registry: Registry, instance_id: str) -> None:
        """:meth:`check` the service of a live instance (an unknown id is answered as such afterwards)."""
        if self.scope is not None:
            inst = await registry.get(instance_id)
            if inst is not None:
                self.check(inst.name)


_WRITE = Role.WRITE
"""Read as a global on every heartbeat: a member read through its enum class costs four times as much."""
_ADMIN_GRANT, _HOLDER_GRANT = Grant(admin=True), Grant(admin=False)


class UnauthorizedError(Exception):
    """No presented token may act in the role asked for."""


class ServiceNotInScopeError(Exception):
    """A scoped write token was used to write a service outside its scope."""

    def __init__(self, holder: str, service: str) -> None:
        super().__init__(f"the token {holder!r} may not write service {service!r}")
        self.holder = holder
        self.service = service


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, else ``None``."""
    scheme, _, given = (authorization or "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" and given.strip() else None


def presented(request: Request) -> tuple[str, ...]:
    """The tokens a request to the registry's own API presents: its bearer token, if any."""
    token = bearer_token(request.headers.get("authorization"))
    return (token,) if token else ()


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _single_tokens(settings: Settings) -> tuple[ScopedToken, ...]:
    """The single-token settings, as the tokens file would list them."""
    singles = ((settings.read_token, TokenRole.READ, "REGISTRY_READ_TOKEN"),
               (settings.auth_token, TokenRole.WRITE, "REGISTRY_AUTH_TOKEN"),
               (settings.admin_token, TokenRole.ADMIN, "REGISTRY_ADMIN_TOKEN"))
    return tuple(ScopedToken(name=name, sha256=_digest(token), role=role) for token, role, name in singles if token)


class Access:
    """Reads are open unless a read token is configured (``REGISTRY_READ_TOKEN`` or a ``read`` token in
    the file); writes are open unless ``REGISTRY_AUTH_TOKEN`` or a tokens file is configured. Where reads
    are closed, every configured token may read."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._singles = _single_tokens(settings)
        self._tokens: tuple[ScopedToken, ...] = ()
        self._writes_open = self._reads_open = True
        self._install(settings.tokens)

    def __repr__(self) -> str:
        return (f"Access(writes_open={self._writes_open}, reads_open={self._reads_open}, "
                f"tokens={[t.name for t in self._tokens]})")

    def _install(self, from_file: tuple[ScopedToken, ...]) -> None:
        tokens = (*self._singles, *from_file)
        self._writes_open = not self._settings.auth_token and self._settings.tokens_file is None
        self._reads_open = not any(t.role is TokenRole.READ for t in tokens)
        self._tokens = tokens

    def reload(self) -> int:
        """Read the tokens file again (on SIGHUP); returns how many tokens it lists. On
        :class:`~registry_server.errors.ConfigError` the tokens in force stay."""
        if self._settings.tokens_file is None:
            return 0
        from_file = read_tokens_file(self._settings.tokens_file)
        self._install(from_file)
        return len(from_file)

    def _match(self, presented_tokens: Sequence[str]) -> ScopedToken | None:
        """The strongest configured token among those presented (admin, then unscoped write, then scoped
        write, then read)."""
        best: ScopedToken | None = None
        best_rank = 0
        for given in presented_tokens:
            digest = _digest(given)
            for token in self._tokens:  # no early exit: the time taken does not say which token matched
                rank = _rank(token) if hmac.compare_digest(digest, token.sha256) else 0
                if rank > best_rank:
                    best, best_rank = token, rank
        return best

    def authorize(self, presented_tokens: Sequence[str], role: Role) -> Grant:
        """The grant of a request presenting ``presented_tokens`` to act in ``role``;
        :class:`UnauthorizedError` when none of them may."""
        if not self._tokens and self._writes_open:
            return _HOLDER_GRANT
        token = self._match(presented_tokens)
        if token is None:
            if self._writes_open if role is _WRITE else self._reads_open:
                return _HOLDER_GRANT
            raise UnauthorizedError
        if token.role is TokenRole.ADMIN:
            return _ADMIN_GRANT
        if token.role is TokenRole.READ and role is _WRITE:
            if self._writes_open:
                return _HOLDER_GRANT
            raise UnauthorizedError
        if token.scope is None:
            return _HOLDER_GRANT
        return Grant(admin=False, scope=token.scope, holder=token.name)

    def may_scrape(self, presented_tokens: Sequence[str]) -> bool:
        """Whether a request may read ``/metrics``: always, unless a metrics token is set; then with it
        or an admin token."""
        metrics_token = self._settings.metrics_token
        if not metrics_token:
            return True
        wanted = _digest(metrics_token)
        allowed = False
        for given in presented_tokens:
            allowed |= hmac.compare_digest(_digest(given), wanted)
        token = self._match(presented_tokens)
        return allowed or (token is not None and token.role is TokenRole.ADMIN)


def _rank(token: ScopedToken) -> int:
    if token.role is TokenRole.ADMIN:
        return 4
    if token.role is TokenRole.WRITE:
        return 3 if token.scope is None else 2
    return 1
