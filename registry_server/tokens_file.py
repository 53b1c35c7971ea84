"""The scoped tokens file (``REGISTRY_TOKENS_FILE``): who holds which token, in which role, for which
services.

A TOML file of ``[[tokens]]`` tables, each with ``name``, ``sha256`` (the hex SHA-256 of the token: the
file holds no secret), ``role`` (``read``, ``write`` or ``admin``) and, for ``write``, ``services``: a
list of globs (``"payments"``, ``"payments-*"``) naming the services the token may write; omitted, every
service::

    [[tokens]]
    name = "payments-deployer"
    sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    role = "write"
    services = ["payments", "payments-*"]
"""

from __future__ import annotations

import enum
import fnmatch
import re
import tomllib
from dataclasses import dataclass

from registry_server.errors import ConfigError

_SETTING = "REGISTRY_TOKENS_FILE/--tokens-file"
_HEX_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_FIELDS = {"name", "sha256", "role", "services"}


class TokenRole(enum.Enum):
    READ = "read"
    """Reads every service."""
    WRITE = "write"
    """Reads every service; writes the services of its scope, each instance with its lease token."""
    ADMIN = "admin"
    """Reads and writes everything, without lease tokens."""


@dataclass(frozen=True, slots=True)
class ServiceScope:
    """The services a write token may write: globs matched case-insensitively, since the Eureka dialect
    names an application in any case."""

    globs: tuple[str, ...]

    def permits(self, service: str) -> bool:
        name = service.lower()
        return any(fnmatch.fnmatchcase(name, glob.lower()) for glob in self.globs)


@dataclass(frozen=True, slots=True)
class ScopedToken:
    name: str
    """Who holds it: named in logs and refusals, never the token itself."""
    sha256: bytes
    role: TokenRole
    scope: ServiceScope | None = None
    """``None``: every service."""


def read_tokens_file(path: str) -> tuple[ScopedToken, ...]:
    """The tokens of the file at ``path``; :class:`ConfigError` naming what is wrong."""
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"{_SETTING}: cannot read {path!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{_SETTING}: {path!r} is not valid TOML: {exc}") from None
    unknown = set(document) - {"tokens"}
    if unknown:
        raise ConfigError(f"{_SETTING}: {path!r}: unknown key(s) {', '.join(sorted(unknown))}; "
                          "expected [[tokens]] tables")
    tables = document.get("tokens", [])
    if not isinstance(tables, list):
        raise ConfigError(f"{_SETTING}: {path!r}: 'tokens' must be an array of tables ([[tokens]])")
    tokens = tuple(_token(path, i, table) for i, table in enumerate(tables, start=1))
    for kind, values in (("name", [t.name for t in tokens]), ("sha256", [t.sha256.hex() for t in tokens])):
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise ConfigError(f"{_SETTING}: {path!r}: the {kind} {repeated[0]!r} is listed more than once")
    return tokens


def _token(path: str, number: int, table: object) -> ScopedToken:
    where = f"{_SETTING}: {path!r}: token {number}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} is not a table")
    unknown = set(table) - _FIELDS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    name, digest, role = table.get("name"), table.get("sha256"), table.get("role")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: 'name' must be a non-empty string")
    where = f"{_SETTING}: {path!r}: token {name!r}"
    if not isinstance(digest, str) or not _HEX_SHA256.match(digest):
        raise ConfigError(f"{where}: 'sha256' must be the 64 hex digits of the token's SHA-256")
    try:
        token_role = TokenRole(role)
    except ValueError:
        raise ConfigError(f"{where}: 'role' must be one of read, write, admin") from None
    scope = None
    if "services" in table:
        services = table["services"]
        if token_role is not TokenRole.WRITE:
            raise ConfigError(f"{where}: 'services' scopes write tokens only")
        if (not isinstance(services, list) or not services
                or not all(isinstance(glob, str) and glob.strip() for glob in services)):
            raise ConfigError(f"{where}: 'services' must be a non-empty list of service names or globs")
        scope = ServiceScope(tuple(services))
    return ScopedToken(name=name, sha256=bytes.fromhex(digest), role=token_role, scope=scope)
