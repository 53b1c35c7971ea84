"""Who may do what: bearer tokens for writes (``REGISTRY_AUTH_TOKEN``), reads (``REGISTRY_READ_TOKEN``)
and operators (``REGISTRY_ADMIN_TOKEN``), compared in constant time.

The admin token is separate from the write token on purpose: every service holds the write token, so if
it also waived lease tokens, any service could renew or remove another's instance.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from registry_server.api.errors import ApiError
from registry_server.settings import Settings


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, else ``None``."""
    scheme, _, given = (authorization or "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" and given.strip() else None


def _bearer(request: Request) -> str | None:
    return bearer_token(request.headers.get("authorization"))


def matches_token(given: str | None, tokens: tuple[str, ...]) -> bool:
    if given is None:
        return False
    found = False
    for token in tokens:  # no early exit: the time taken does not say which token matched
        found |= hmac.compare_digest(given.encode(), token.encode())
    return found


class Access:
    def __init__(self, settings: Settings) -> None:
        admin = (settings.admin_token,) if settings.admin_token else ()
        self.admin = admin
        """The admin token (a tuple of one), or empty when none is set."""
        self.writers: tuple[str, ...] | None = (
            (settings.auth_token, *admin) if settings.auth_token else None)
        """Tokens that may write; ``None``: writes are open."""
        self.readers: tuple[str, ...] | None = (
            tuple(t for t in (settings.read_token, settings.auth_token, settings.admin_token) if t)
            if settings.read_token else None)
        """Tokens that may read; ``None``: reads are open."""

    def __repr__(self) -> str:
        return f"Access(writes_open={self.writers is None}, reads_open={self.readers is None})"

    def authorize(self, request: Request, allowed: tuple[str, ...] | None) -> None:
        if allowed is None or matches_token(_bearer(request), allowed):
            return
        raise self.unauthorized()

    @staticmethod
    def unauthorized() -> ApiError:
        return ApiError(401, "unauthorized", "this endpoint needs 'Authorization: Bearer <token>'",
                        headers={"WWW-Authenticate": 'Bearer realm="registry"'})

    def authorize_read(self, request: Request) -> None:
        self.authorize(request, self.readers)

    def is_admin(self, request: Request) -> bool:
        return bool(self.admin) and matches_token(_bearer(request), self.admin)
