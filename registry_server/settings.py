"""The registry's configuration: flags win over the environment; every value is checked at start-up."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from registry_server.errors import ConfigError
from registry_server.logs import LogFormat
from registry_server.model import HealthCheckSpec
from registry_server.store.redis_url import RedisTarget, parse_redis_url
from registry_server.tokens_file import ScopedToken, read_tokens_file

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 3011
    redis: RedisTarget | None = None
    """``None``: the embedded memory store."""
    instance_ttl_s: float = 90.0
    """Seconds without a heartbeat before an instance expires."""
    sweep_interval_s: float = 1.0
    """Seconds between expiry sweeps."""
    auth_token: str | None = None
    """When set, write endpoints need ``Authorization: Bearer <token>``."""
    admin_token: str | None = None
    """Bearer token of operators: writes anything, reads anything, needs no lease token."""
    read_token: str | None = None
    """When set, read endpoints need a bearer token: this one, the auth token or the admin token."""
    log_level: str = "info"
    log_format: LogFormat = LogFormat.TEXT
    """``text``, or ``json``: one JSON object per line."""
    max_watchers: int = 4096
    """Blocking queries and change streams one replica serves at once; beyond it: 503 + Retry-After."""
    max_body_bytes: int = 64 * 1024
    store_timeout_s: float = 1.5
    """Upper bound of one store operation; beyond it the request answers 503."""
    certfile: str | None = None
    """PEM certificate: when set (with ``keyfile``), the registry serves HTTPS."""
    keyfile: str | None = None
    read_timeout_s: float = 10.0
    """The most a request body may take to arrive in all (a client trickling its body gets 408)."""
    health_check_interval_s: float = 0.0
    """Seconds between active health checks of instances that ask for none of their own (0: none)."""
    health_check_timeout_s: float = 2.0
    health_check_failures: int = 2
    """Failed checks in a row before an instance counts as critical (and shows DOWN)."""
    health_check_deregister_after_s: float = 0.0
    """Seconds critical before an instance is deregistered (0: never)."""
    max_in_flight: int = 1024
    """Writes one replica serves at once; beyond it a write is refused with 503 + Retry-After at once. A
    bound on what writes waiting on the store may hold, not the answer to a replica short of CPU (pacing
    is): refusing a request costs a Python server nearly what serving it does."""
    pace_heartbeats: bool = True
    """Once the replica has been saturated, answer every heartbeat with ``Retry-After``: the instances it
    hears divided by the heartbeats a second it serves (see :mod:`registry_server.api.admission`), so the
    fleet's heartbeats follow what the replica serves; each lease covers the delay. Off: only the
    in-flight limit guards the replica."""
    tokens_file: str | None = None
    """A TOML file of scoped tokens (:mod:`registry_server.tokens_file`), read again on SIGHUP."""
    tokens: tuple[ScopedToken, ...] = ()
    """The tokens of ``tokens_file`` as read at start-up."""
    metrics_token: str | None = None
    """When set, ``/metrics`` needs this bearer token (or the admin token)."""
    service_retention_s: float = 3600.0
    """A service without instances this long is dropped: its keys, index entry and metric series."""
    allowed_origins: tuple[str, ...] = ()
    """Origins (``https://console.example.com``) of web pages besides the registry's own console that may
    change state; a browser request from any other origin is refused."""

    @property
    def ttl_ms(self) -> int:
        return max(1, round(self.instance_ttl_s * 1000))

    @property
    def health_check(self) -> HealthCheckSpec:
        """The checks of instances that ask for none of their own (``interval_s`` 0: none)."""
        return HealthCheckSpec(self.health_check_interval_s, self.health_check_timeout_s,
                               self.health_check_failures, self.health_check_deregister_after_s)

    @property
    def log_level_number(self) -> int:
        return int(getattr(logging, self.log_level.upper()))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="registry-server", description="Service registry (REST API on Starlette/hypercorn).")
    p.add_argument("--host", help="bind address (env REGISTRY_HOST, default 0.0.0.0)")
    p.add_argument("--port", help="bind port (env REGISTRY_PORT, default 3011)")
    p.add_argument("--redis-url", help="Redis URL (env REDIS_URL, default unset: the embedded in-memory store)")
    p.add_argument("--instance-ttl", help="seconds without heartbeat before expiry (env REGISTRY_INSTANCE_TTL, "
                                           "default 90)")
    p.add_argument("--sweep-interval", help="seconds between expiry sweeps (env REGISTRY_SWEEP_INTERVAL, "
                                             "default 1)")
    p.add_argument("--auth-token", help="bearer token required by write endpoints (env REGISTRY_AUTH_TOKEN, "
                                          "default unset: writes are open)")
    p.add_argument("--admin-token", help="operators' bearer token: needs no lease tokens (env "
                                           "REGISTRY_ADMIN_TOKEN, default unset)")
    p.add_argument("--read-token", help="bearer token required by read endpoints (env REGISTRY_READ_TOKEN, "
                                          "default unset: reads are open)")
    p.add_argument("--certfile", help="PEM certificate for HTTPS (env REGISTRY_CERTFILE, default unset: "
                                        "HTTP); needs --keyfile")
    p.add_argument("--keyfile", help="PEM private key for HTTPS (env REGISTRY_KEYFILE, default unset); "
                                       "needs --certfile")
    p.add_argument("--read-timeout", help="seconds a request body may take to arrive (env "
                                          "REGISTRY_READ_TIMEOUT, default 10)")
    p.add_argument("--max-watchers", help="blocking queries + change streams per replica (env "
                                          "REGISTRY_MAX_WATCHERS, default 4096)")
    p.add_argument("--health-check-interval", help="seconds between active health checks (env "
                                                   "REGISTRY_HEALTH_CHECK_INTERVAL, default 0: none)")
    p.add_argument("--health-check-timeout", help="seconds a health check may take (env "
                                                  "REGISTRY_HEALTH_CHECK_TIMEOUT, default 2)")
    p.add_argument("--health-check-failures", help="failed checks in a row before critical (env "
                                                   "REGISTRY_HEALTH_CHECK_FAILURES, default 2)")
    p.add_argument("--health-check-deregister-after", help="seconds critical before deregistration (env "
                                                           "REGISTRY_HEALTH_CHECK_DEREGISTER_AFTER, default 0: never)")
    p.add_argument("--pace-heartbeats", help="once saturated, tell every heartbeat with Retry-After how far apart "
                                             "to send them: on or off (env REGISTRY_PACE_HEARTBEATS, default on)")
    p.add_argument("--max-in-flight", help="writes served at once per replica, beyond it 503 + Retry-After "
                                           "(env REGISTRY_MAX_IN_FLIGHT, default 1024)")
    p.add_argument("--tokens-file", help="TOML file of scoped tokens, read again on SIGHUP (env "
                                         "REGISTRY_TOKENS_FILE, default unset: the single-token settings only)")
    p.add_argument("--service-retention", help="seconds a service without instances is kept before it is "
                                               "dropped (env REGISTRY_SERVICE_RETENTION, default 3600)")
    p.add_argument("--metrics-token", help="bearer token required by /metrics (env REGISTRY_METRICS_TOKEN, "
                                           "default unset: /metrics open)")
    p.add_argument("--allowed-origins", help="comma list of web origins that may send writes, for a console "
                                              "served elsewhere (env REGISTRY_ALLOWED_ORIGINS, default none)")
    p.add_argument("--log-level", help="critical, error, warning, info, debug (env REGISTRY_LOG_LEVEL, "
                                         "default info)")
    p.add_argument("--log-format", help="text or json (env REGISTRY_LOG_FORMAT, default text)")
    return p


def _positive_float(setting: str, text: str, *, maximum: float) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise ConfigError(f"{setting}: {text!r} is not a number of seconds") from exc
    if not math.isfinite(value) or value <= 0 or value > maximum:
        raise ConfigError(f"{setting}: {text!r} must be a number of seconds > 0 and <= {maximum:g}")
    return value


def _seconds_or_zero(setting: str, text: str, *, maximum: float) -> float:
    """Seconds, where ``0`` switches the feature off."""
    try:
        value = float(text)
    except ValueError as exc:
        raise ConfigError(f"{setting}: {text!r} is not a number of seconds") from exc
    if not math.isfinite(value) or value < 0 or value > maximum:
        raise ConfigError(f"{setting}: {text!r} must be a number of seconds >= 0 and <= {maximum:g} (0: off)")
    return value


def _port(text: str) -> int:
    if not (text.strip().isascii() and text.strip().isdigit()) or not 1 <= int(text) <= 65535:
        raise ConfigError(f"REGISTRY_PORT/--port: {text!r} is not a port number (1-65535)")
    return int(text)


def _host(text: str) -> str:
    text = text.strip()
    try:
        ipaddress.ip_address(text)
    except ValueError:
        labels = text.split(".")
        if not text or len(text) > 253 or not all(label and len(label) <= 63 and label.replace("-", "").isalnum()
                                                  for label in labels):
            raise ConfigError(f"REGISTRY_HOST/--host: {text!r} is not a hostname or IP address") from None
    return text


def normalized_origin(text: str) -> str:
    """``scheme://host[:port]``, lower-cased, as browsers send ``Origin``; :class:`ValueError` otherwise."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{text!r} is not an origin such as https://console.example.com")
    parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _origins(text: str) -> tuple[str, ...]:
    try:
        return tuple(normalized_origin(item) for item in text.split(",") if item.strip())
    except ValueError as exc:
        raise ConfigError(f"REGISTRY_ALLOWED_ORIGINS/--allowed-origins: {exc}") from None


def load_settings(argv: Sequence[str], env: Mapping[str, str]) -> Settings:
    """Settings from command-line flags over environment variables; :class:`ConfigError` on bad input."""
    args = _parser().parse_args(list(argv))

    def pick(flag: str | None, name: str) -> str | None:
        if flag is not None:
            return flag
        value = env.get(name)
        return value if value not in (None, "") else None

    host = pick(args.host, "REGISTRY_HOST")
    port = pick(args.port, "REGISTRY_PORT")
    redis_url = pick(args.redis_url, "REDIS_URL")
    ttl = pick(args.instance_ttl, "REGISTRY_INSTANCE_TTL")
    sweep = pick(args.sweep_interval, "REGISTRY_SWEEP_INTERVAL")
    token = pick(args.auth_token, "REGISTRY_AUTH_TOKEN")
    admin_token = pick(args.admin_token, "REGISTRY_ADMIN_TOKEN")
    read_token = pick(args.read_token, "REGISTRY_READ_TOKEN")
    tokens_file = pick(args.tokens_file, "REGISTRY_TOKENS_FILE")
    metrics_token = pick(args.metrics_token, "REGISTRY_METRICS_TOKEN")
    retention = pick(args.service_retention, "REGISTRY_SERVICE_RETENTION")
    read_timeout = pick(args.read_timeout, "REGISTRY_READ_TIMEOUT")
    certfile = pick(args.certfile, "REGISTRY_CERTFILE")
    keyfile = pick(args.keyfile, "REGISTRY_KEYFILE")
    if (certfile is None) != (keyfile is None):
        raise ConfigError("REGISTRY_CERTFILE/--certfile and REGISTRY_KEYFILE/--keyfile go together")
    for setting, path in (("REGISTRY_CERTFILE/--certfile", certfile), ("REGISTRY_KEYFILE/--keyfile", keyfile)):
        if path is not None and not os.access(path, os.R_OK):
            raise ConfigError(f"{setting}: {path!r} is not a readable file")
    max_watchers = pick(args.max_watchers, "REGISTRY_MAX_WATCHERS")
    if max_watchers is not None and (not (max_watchers.isascii() and max_watchers.isdigit())
                                     or not 1 <= int(max_watchers) <= 1_000_000):
        raise ConfigError(f"REGISTRY_MAX_WATCHERS/--max-watchers: {max_watchers!r} is not a count (1-1000000)")
    max_in_flight = pick(args.max_in_flight, "REGISTRY_MAX_IN_FLIGHT")
    if max_in_flight is not None and (not (max_in_flight.isascii() and max_in_flight.isdigit())
                                      or not 1 <= int(max_in_flight) <= 1_000_000):
        raise ConfigError(f"REGISTRY_MAX_IN_FLIGHT/--max-in-flight: {max_in_flight!r} is not a count (1-1000000)")
    origins = pick(args.allowed_origins, "REGISTRY_ALLOWED_ORIGINS")
    pace_heartbeats = (pick(args.pace_heartbeats, "REGISTRY_PACE_HEARTBEATS") or "on").lower()
    if pace_heartbeats not in ("on", "off"):
        raise ConfigError(f"REGISTRY_PACE_HEARTBEATS/--pace-heartbeats: {pace_heartbeats!r} is not on or off")
    level = (pick(args.log_level, "REGISTRY_LOG_LEVEL") or "info").lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"REGISTRY_LOG_LEVEL/--log-level: {level!r} is not one of {', '.join(LOG_LEVELS)}")
    log_format = (pick(args.log_format, "REGISTRY_LOG_FORMAT") or LogFormat.TEXT.value).lower()
    if log_format not in set(LogFormat):
        raise ConfigError(f"REGISTRY_LOG_FORMAT/--log-format: {log_format!r} is not one of "
                          f"{', '.join(LogFormat)}")
    check_interval = pick(args.health_check_interval, "REGISTRY_HEALTH_CHECK_INTERVAL")
    check_timeout = pick(args.health_check_timeout, "REGISTRY_HEALTH_CHECK_TIMEOUT")
    check_failures = pick(args.health_check_failures, "REGISTRY_HEALTH_CHECK_FAILURES")
    if check_failures is not None and (not (check_failures.isascii() and check_failures.isdigit())
                                       or not 1 <= int(check_failures) <= 100):
        raise ConfigError(f"REGISTRY_HEALTH_CHECK_FAILURES/--health-check-failures: {check_failures!r} is not "
                          "a count (1-100)")
    deregister_after = pick(args.health_check_deregister_after, "REGISTRY_HEALTH_CHECK_DEREGISTER_AFTER")
    defaults = Settings()
    return Settings(
        health_check_interval_s=(_seconds_or_zero("REGISTRY_HEALTH_CHECK_INTERVAL/--health-check-interval",
                                                  check_interval, maximum=3600)
                                 if check_interval is not None else defaults.health_check_interval_s),
        health_check_timeout_s=(_positive_float("REGISTRY_HEALTH_CHECK_TIMEOUT/--health-check-timeout",
                                                check_timeout, maximum=300)
                                if check_timeout is not None else defaults.health_check_timeout_s),
        health_check_failures=int(check_failures) if check_failures is not None else defaults.health_check_failures,
        health_check_deregister_after_s=(
            _seconds_or_zero("REGISTRY_HEALTH_CHECK_DEREGISTER_AFTER/--health-check-deregister-after",
                             deregister_after, maximum=86400 * 365)
            if deregister_after is not None else defaults.health_check_deregister_after_s),
        host=_host(host) if host is not None else defaults.host,
        port=_port(port) if port is not None else defaults.port,
        redis=parse_redis_url(redis_url) if redis_url is not None else None,
        instance_ttl_s=(_positive_float("REGISTRY_INSTANCE_TTL/--instance-ttl", ttl, maximum=86400 * 365)
                        if ttl is not None else defaults.instance_ttl_s),
        sweep_interval_s=(_positive_float("REGISTRY_SWEEP_INTERVAL/--sweep-interval", sweep, maximum=3600)
                          if sweep is not None else defaults.sweep_interval_s),
        auth_token=token,
        admin_token=admin_token,
        read_token=read_token,
        log_level=level,
        log_format=LogFormat(log_format),
        certfile=certfile,
        keyfile=keyfile,
        max_watchers=int(max_watchers) if max_watchers is not None else defaults.max_watchers,
        read_timeout_s=(_positive_float("REGISTRY_READ_TIMEOUT/--read-timeout", read_timeout, maximum=3600)
                        if read_timeout is not None else defaults.read_timeout_s),
        max_in_flight=int(max_in_flight) if max_in_flight is not None else defaults.max_in_flight,
        pace_heartbeats=pace_heartbeats == "on",
        tokens_file=tokens_file,
        tokens=read_tokens_file(tokens_file) if tokens_file is not None else (),
        metrics_token=metrics_token,
        service_retention_s=(_positive_float("REGISTRY_SERVICE_RETENTION/--service-retention", retention,
                                             maximum=86400 * 365)
                             if retention is not None else defaults.service_retention_s),
        allowed_origins=_origins(origins) if origins is not None else defaults.allowed_origins,
    )
