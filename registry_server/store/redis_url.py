"""Parsing ``REDIS_URL`` into a connection target: standalone, Sentinel or Cluster."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from registry_server.errors import ConfigError


class RedisMode(enum.StrEnum):
    STANDALONE = "standalone"
    SENTINEL = "sentinel"
    CLUSTER = "cluster"


@dataclass(frozen=True, slots=True)
class RedisTarget:
    mode: RedisMode
    url: str
    """The URL as given (for standalone: what ``redis.asyncio.from_url`` takes)."""
    nodes: tuple[tuple[str, int], ...] = ()
    """Sentinel or Cluster seed addresses."""
    master_name: str = ""
    db: int = 0
    password: str | None = None

    def __repr__(self) -> str:  # never print the password
        return f"RedisTarget(mode={self.mode.value}, nodes={self.nodes or self.redacted()})"

    def redacted(self) -> str:
        parts = urlsplit(self.url)
        if parts.password:
            return self.url.replace(f":{parts.password}@", ":***@", 1)
        return self.url


def _nodes(netloc: str, default_port: int, url: str) -> tuple[tuple[str, int], ...]:
    hosts = netloc.rsplit("@", 1)[-1]
    out = []
    for item in hosts.split(","):
        host, sep, port_text = item.strip().rpartition(":")
        if not sep:
            host, port_text = item.strip(), str(default_port)
        host = host.strip("[]")
        if not host or not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
            raise ConfigError(f"REDIS_URL: bad address {item!r} in {url!r}")
        out.append((host, int(port_text)))
    return tuple(out)


def _password(netloc: str) -> str | None:
    if "@" not in netloc:
        return None
    userinfo = netloc.rsplit("@", 1)[0]
    _, _, password = userinfo.partition(":")
    return unquote(password) or None


def parse_redis_url(url: str) -> RedisTarget:
    """Validate ``url`` and say how to connect; raise :class:`ConfigError` naming what is wrong."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"REDIS_URL: {url!r} is not a URL (expected redis://host:port/db)")
    scheme = scheme.lower()
    if scheme in ("redis", "rediss"):
        parts = urlsplit(url)
        if not parts.hostname:
            raise ConfigError(f"REDIS_URL: no host in {url!r}")
        try:
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"REDIS_URL: bad port in {url!r}") from exc
        db_text = parts.path.strip("/") or "0"
        if not (db_text.isascii() and db_text.isdigit()):
            raise ConfigError(f"REDIS_URL: database must be a number in {url!r}")
        return RedisTarget(RedisMode.STANDALONE, url, ((parts.hostname, port or 6379),), db=int(db_text),
                           password=parts.password)
    if scheme == "unix":
        if not urlsplit(url).path:
            raise ConfigError(f"REDIS_URL: no socket path in {url!r}")
        return RedisTarget(RedisMode.STANDALONE, url)
    if scheme == "redis+sentinel":
        netloc, _, path = rest.partition("/")
        segments = [s for s in path.split("/") if s]
        if not segments:
            raise ConfigError(f"REDIS_URL: Sentinel URL needs a master name: {url!r}")
        if len(segments) > 2 or (len(segments) == 2 and not (segments[1].isascii() and segments[1].isdigit())):
            raise ConfigError(f"REDIS_URL: expected /<master-name>[/<db>] in {url!r}")
        return RedisTarget(RedisMode.SENTINEL, url, _nodes(netloc, 26379, url), master_name=segments[0],
                           db=int(segments[1]) if len(segments) == 2 else 0, password=_password(netloc))
    if scheme == "redis+cluster":
        netloc = rest.partition("/")[0]
        return RedisTarget(RedisMode.CLUSTER, url, _nodes(netloc, 6379, url), password=_password(netloc))
    raise ConfigError(f"REDIS_URL: unsupported scheme {scheme!r} (redis, rediss, unix, redis+sentinel, "
                      "redis+cluster)")
