"""Configuration values: frozen dataclasses with the unit in every field name.

Only the ``from_env`` methods read the environment, and only when called.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, cast, get_args

DEFAULT_REGISTRY_URL = "http://localhost:3011"

LoadBalancer = Literal["round_robin", "random", "least_outstanding"]
LOAD_BALANCERS: tuple[str, ...] = get_args(LoadBalancer)


def _split_urls(value: str) -> tuple[str, ...]:
    urls = tuple(part.strip().rstrip("/") for part in value.split(",") if part.strip())
    if not urls:
        raise ValueError("SERVICE_REGISTRY_URL lists no registry URL")
    return urls


def _positive_ms(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number of milliseconds, got {raw!r}") from exc
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class BackoffConfig:
    """Capped exponential backoff with jitter.

    Retry ``n`` (0-based) waits ``c * (1 - jitter * u)`` with ``c = min(max_s, base_s * factor**n)`` and
    ``u`` uniform in ``[0, 1)``: ``jitter=1`` is "full jitter", ``0.5`` "equal jitter", ``0`` none.
    """

    base_s: float = 0.05
    factor: float = 2.0
    max_s: float = 2.0
    jitter: float = 1.0


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """One ``pybreaker.CircuitBreaker`` per instance."""

    fail_max: int = 5
    """Consecutive failures that open the breaker."""
    reset_timeout_s: float = 30.0
    """Seconds an open breaker waits before letting probes through (half-open)."""
    half_open_max_probes: int = 1
    """Calls admitted at once while half-open; others skip the instance."""


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """How a :class:`~resilient_client.ResilientClient` call is bounded and retried."""

    attempt_timeout_s: float = 5.0
    """Upper bound of one attempt on one instance (connect, send, read the whole body)."""
    total_timeout_s: float = 15.0
    """Deadline of a whole call, every attempt and backoff wait included."""
    max_passes: int = 3
    """Passes over the instances; passes after the first wait a backoff delay first."""
    backoff: BackoffConfig = field(default_factory=BackoffConfig)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    max_retry_after_s: float = 10.0
    """A ``Retry-After`` longer than this (or than the time left) ends the call instead."""
    load_balancer: LoadBalancer = "round_robin"
    """Which instance a call tries first: ``"round_robin"``, ``"random"``, or ``"least_outstanding"`` (of two
    instances drawn at random, the one with fewer calls in flight)."""
    zone: str | None = None
    """Prefer the instances whose ``metadata["zone"]`` is this; the others only when the zone has none left
    (``SERVICE_ZONE``)."""
    retry_budget: float | None = None
    """Retries and failovers allowed, as a share of first attempts over ``retry_budget_window_s`` (``0.2``: at
    most 1.2 attempts per call across the client); beyond it a call ends with what it has. ``None``: no budget."""
    retry_budget_min_per_s: float = 1.0
    """Retries per second allowed whatever the share, so a client with little traffic can still retry."""
    retry_budget_window_s: float = 10.0
    """The sliding window the budget counts first attempts and retries over."""

    def __post_init__(self) -> None:
        if self.load_balancer not in LOAD_BALANCERS:
            raise ValueError(f"load_balancer must be one of {', '.join(LOAD_BALANCERS)}, got {self.load_balancer!r}")
        if self.retry_budget is not None and self.retry_budget < 0:
            raise ValueError(f"retry_budget must not be negative, got {self.retry_budget!r}")
        if self.retry_budget_min_per_s < 0:
            raise ValueError(f"retry_budget_min_per_s must not be negative, got {self.retry_budget_min_per_s!r}")
        if self.retry_budget_window_s <= 0:
            raise ValueError(f"retry_budget_window_s must be positive, got {self.retry_budget_window_s!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> ClientConfig:
        """The defaults, with ``zone`` from ``SERVICE_ZONE``; ``overrides`` that are not ``None`` win."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {"zone": env.get("SERVICE_ZONE") or None}
        values.update((key, value) for key, value in overrides.items() if value is not None)
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class WatchConfig:
    """How the discovery cache keeps the services it uses fresh with blocking queries."""

    enabled: bool = True
    """``False``: discovery is refreshed by TTL polling only (no blocking queries)."""
    wait_ms: float = 30_000
    """How long one blocking query may wait on the registry for a change (the registry adds up to 1/16)."""
    idle_ms: float | None = None
    """A service not looked up for this long stops being watched; ``None``: five cache TTLs."""
    max_services: int = 32
    """Services watched at once (each holds one connection to the registry); others are polled."""
    retry: BackoffConfig = field(default_factory=lambda: BackoffConfig(base_s=0.5, factor=2.0, max_s=30.0,
                                                                       jitter=0.5))
    """Backoff between failed blocking queries (a ``Retry-After`` from the registry wins when longer)."""

    @property
    def wait_s(self) -> float:
        return self.wait_ms / 1000


@dataclass(frozen=True, slots=True)
class ManagerConfig:
    """What a :class:`~resilient_client.ServiceRegistryManager` talks to and how often."""

    registry_urls: tuple[str, ...] = (DEFAULT_REGISTRY_URL,)
    """Registry replicas, tried in order."""
    heartbeat_interval_ms: float = 30_000
    retry_delay_ms: float = 10_000
    """Base delay of the exponential backoff (with jitter) between registration attempts."""
    max_retries: int = 5
    """Retries of a failed registration before ``register`` returns ``None``."""
    cache_ttl_ms: float = 30_000
    """How long a discovery answer is served from the cache."""
    stale_max_age_ms: float = 300_000
    """How old a cached answer may be and still be served while the registry cannot be reached."""
    auth_token: str | None = None
    host: str | None = None
    """Where others reach this service. ``None``: none is sent, and the registry records the address the
    registration came from. ``HOST`` set to an unspecified (bind) address such as ``0.0.0.0`` counts as
    unset."""
    port: int = 3000
    request_timeout_ms: float = 5_000
    """Timeout of one request to one registry replica."""
    shutdown_timeout_ms: float = 1_000
    """How long shutting down (the lifespan, the aiohttp helper, the signal handlers) waits for the registry
    to take ``STOPPING`` and the deregistration; past it the service exits and its lease expires."""
    max_answer_bytes: int = 32 * 1024 * 1024
    """The largest registry answer the client reads; a larger one counts as that replica's failure."""
    watch: WatchConfig = field(default_factory=WatchConfig)
    """Blocking queries that keep the discovery cache fresh (``SERVICE_REGISTRY_WATCH``)."""
    empty_grace_ms: float = 30_000
    """Empty-set protection: how long the last known instances are kept when a service that had some
    suddenly reads as empty without its revision moving on (a wiped store, a bad replica); ``0``: off."""
    health_check_interval_ms: float | None = None
    """Ask the registry to check this instance's health endpoint this often (``0``: ask for no checks;
    ``None``: the registry's default)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> ManagerConfig:
        """Read the ``SERVICE_REGISTRY_*``, ``HOST`` and ``PORT`` environment variables; ``overrides`` that are not
        ``None`` win."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        if "SERVICE_REGISTRY_URL" in env:
            values["registry_urls"] = _split_urls(env["SERVICE_REGISTRY_URL"])
        for key, name in (("heartbeat_interval_ms", "SERVICE_REGISTRY_HEARTBEAT_INTERVAL"),
                          ("retry_delay_ms", "SERVICE_REGISTRY_RETRY_DELAY"),
                          ("cache_ttl_ms", "SERVICE_REGISTRY_CACHE_TTL")):
            if name in env:
                values[key] = _positive_ms(name, env[name])
        if "SERVICE_REGISTRY_MAX_RETRIES" in env:
            values["max_retries"] = _non_negative_int("SERVICE_REGISTRY_MAX_RETRIES",
                                                      env["SERVICE_REGISTRY_MAX_RETRIES"])
        if env.get("SERVICE_REGISTRY_AUTH_TOKEN"):
            values["auth_token"] = env["SERVICE_REGISTRY_AUTH_TOKEN"]
        watch = WatchConfig()
        if "SERVICE_REGISTRY_WATCH" in env:
            watch = replace(watch, enabled=_flag("SERVICE_REGISTRY_WATCH", env["SERVICE_REGISTRY_WATCH"]))
        if "SERVICE_REGISTRY_WATCH_WAIT" in env:
            watch = replace(watch, wait_ms=_positive_ms("SERVICE_REGISTRY_WATCH_WAIT",
                                                        env["SERVICE_REGISTRY_WATCH_WAIT"]))
        values["watch"] = watch
        if "SERVICE_REGISTRY_EMPTY_GRACE" in env:
            values["empty_grace_ms"] = _non_negative_ms("SERVICE_REGISTRY_EMPTY_GRACE",
                                                        env["SERVICE_REGISTRY_EMPTY_GRACE"])
        if "SERVICE_REGISTRY_HEALTH_CHECK_INTERVAL" in env:
            values["health_check_interval_ms"] = _non_negative_ms("SERVICE_REGISTRY_HEALTH_CHECK_INTERVAL",
                                                                  env["SERVICE_REGISTRY_HEALTH_CHECK_INTERVAL"])
        if env.get("HOST") and not _unspecified(env["HOST"]):
            values["host"] = env["HOST"]
        if "PORT" in env:
            values["port"] = _non_negative_int("PORT", env["PORT"])
        config = cls(**values)  # type: ignore[arg-type]
        return config.with_overrides(**overrides)

    def with_overrides(self, **overrides: object) -> ManagerConfig:
        """A copy with every override that is not ``None``; a registry URL may be a comma list."""
        given = {key: value for key, value in overrides.items() if value is not None}
        url = given.pop("registry_url", None)
        if url is not None:
            given["registry_urls"] = _split_urls(url) if isinstance(url, str) else tuple(
                str(item).rstrip("/") for item in cast(Iterable[object], url))
        return replace(self, **given)  # type: ignore[arg-type]

    @property
    def heartbeat_interval_s(self) -> float:
        return self.heartbeat_interval_ms / 1000

    @property
    def retry_delay_s(self) -> float:
        return self.retry_delay_ms / 1000

    @property
    def cache_ttl_s(self) -> float:
        return self.cache_ttl_ms / 1000

    @property
    def stale_max_age_s(self) -> float:
        return self.stale_max_age_ms / 1000

    @property
    def request_timeout_s(self) -> float:
        return self.request_timeout_ms / 1000

    @property
    def shutdown_timeout_s(self) -> float:
        return self.shutdown_timeout_ms / 1000

    @property
    def empty_grace_s(self) -> float:
        return self.empty_grace_ms / 1000

    @property
    def watch_idle_s(self) -> float:
        """A watched service not looked up for this long stops being watched."""
        idle_ms = self.watch.idle_ms if self.watch.idle_ms is not None else 5 * self.cache_ttl_ms
        return idle_ms / 1000


def _unspecified(host: str) -> bool:
    """``0.0.0.0``, ``::`` and the like: where a server binds, not where anyone reaches it."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def _non_negative_ms(name: str, raw: str) -> float:
    if raw.strip() == "0":
        return 0.0
    return _positive_ms(name, raw)


_FLAGS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _flag(name: str, raw: str) -> bool:
    try:
        return _FLAGS[raw.strip().lower()]
    except KeyError:
        raise ValueError(f"{name} must be one of {', '.join(_FLAGS)}, got {raw!r}") from None


def _non_negative_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {raw!r}")
    return value
