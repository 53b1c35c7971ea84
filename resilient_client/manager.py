"""``ServiceRegistryManager``: register this service, keep its lease alive, discover the others."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry

from resilient_client._backoff import Backoff, come_back_after
from resilient_client._clock import Clock, SystemClock
from resilient_client._discovery import WatchedDiscovery
from resilient_client._registry_http import RegistryHttp
from resilient_client._report import Reporter
from resilient_client.config import BackoffConfig, ManagerConfig
from resilient_client.errors import RegistryRequestError, RegistryUnavailableError
from resilient_client.hooks import HeartbeatOutcome, Hook, RegistrationOutcome, RegistrationState
from resilient_client.metrics import client_metrics
from resilient_client.model import ServiceInstance, Status

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Registration:
    """What this service registers as; ``id`` and ``lease_token`` are chosen once, client-side."""

    id: str
    name: str
    host: str | None
    port: int
    version: str = ""
    description: str = ""
    health_endpoint: str = "/health"
    scheme: str = "http"
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)
    lease_token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    health_check_interval_ms: float | None = None

    def body(self, status: Status) -> dict[str, Any]:
        host = {} if self.host is None else {"host": self.host}  # none: the registry records the peer address
        body: dict[str, Any] = {
            "id": self.id, "name": self.name, **host, "port": self.port, "scheme": self.scheme,
            "health_endpoint": self.health_endpoint, "version": self.version, "description": self.description,
            "status": status.value, "metadata": dict(self.metadata), "lease_token": self.lease_token}
        interval = self.health_check_interval_ms
        if interval is not None:  # else the registry's default, and registries without checks see no change
            body["health_check"] = {"interval": interval / 1000} if interval > 0 else False
        return body


class ServiceRegistryManager:
    """Registers one service instance, heartbeats it, deregisters it, and discovers services (cached).

    Every argument defaults from the environment (intervals in milliseconds). ``config`` replaces
    the environment entirely; the keyword arguments still override it. ``watch=False`` turns off the
    blocking queries that keep discovery current (TTL polling only). ``health_check_interval`` (env
    ``SERVICE_REGISTRY_HEALTH_CHECK_INTERVAL``) asks the registry to check the health endpoint this often;
    ``0`` asks for no checks, unset leaves it to the registry's default.
    """

    def __init__(self, registry_url: str | Sequence[str] | None = None, heartbeat_interval: float | None = None,
                 retry_delay: float | None = None, max_retries: int | None = None,
                 cache_ttl: float | None = None, auth_token: str | None = None, host: str | None = None,
                 port: int | None = None, *, watch: bool | None = None, config: ManagerConfig | None = None,
                 metrics_registry: CollectorRegistry | None = None, metrics: bool = True,
                 hooks: Iterable[Hook] = (), clock: Clock | None = None,
                 rng: random.Random | None = None, session: aiohttp.ClientSession | None = None,
                 health_check_interval: float | None = None) -> None:
        base = config if config is not None else ManagerConfig.from_env()
        self.config = base.with_overrides(
            registry_url=registry_url, heartbeat_interval_ms=heartbeat_interval, retry_delay_ms=retry_delay,
            max_retries=max_retries, cache_ttl_ms=cache_ttl, auth_token=auth_token, host=host, port=port,
            health_check_interval_ms=health_check_interval)
        if watch is not None:
            self.config = replace(self.config, watch=replace(self.config.watch, enabled=watch))
        self._reporter = Reporter(client_metrics(metrics_registry) if metrics else None, hooks)
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._backoff = Backoff(BackoffConfig(base_s=self.config.retry_delay_s, factor=2.0,
                                              max_s=max(self.config.retry_delay_s * 32, 1.0), jitter=0.5))
        self._http = RegistryHttp(self.config.registry_urls, auth_token=self.config.auth_token,
                                  timeout_s=self.config.request_timeout_s,
                                  max_answer_bytes=self.config.max_answer_bytes, session=session)
        self.discovery = WatchedDiscovery(self._http, self.config, clock=self._clock, reporter=self._reporter,
                                          rng=self._rng)
        self._registration: _Registration | None = None
        self._status = Status.UP
        self._state = RegistrationState.UNREGISTERED
        self._accepted = False
        """Whether the registry accepted the current registration at least once (else nothing to take back)."""
        self._heartbeats: asyncio.Task[None] | None = None
        self._deregistered_id: str | None = None

    # -- registration ------------------------------------------------------------------------------------

    @property
    def instance_id(self) -> str | None:
        return None if self._registration is None else self._registration.id

    @property
    def registered(self) -> bool:
        """Whether the registry accepted the registration (and no heartbeat has been refused since)."""
        return self._state is RegistrationState.REGISTERED

    @property
    def registration_state(self) -> RegistrationState:
        """Where registration stands; each change is also a hook event and the ``resilient_client_registered``
        gauge."""
        return self._state

    def _set_state(self, state: RegistrationState) -> None:
        if state is not self._state:
            self._state = state
            if self._registration is not None:
                self._reporter.registration_changed(self._registration.name, state)

    @property
    def status(self) -> Status:
        return self._status

    @property
    def lease_token(self) -> str | None:
        return None if self._registration is None else self._registration.lease_token

    async def register(self, name: str, port: int | None = None, *, host: str | None = None,
                       version: str = "", description: str = "", health_endpoint: str = "/health",
                       scheme: str = "http", metadata: Mapping[str, str] | None = None,
                       status: Status | str = Status.UP, instance_id: str | None = None) -> str | None:
        """Register and start heartbeats; the instance id, or ``None`` after ``max_retries`` retries.

        After ``None`` the heartbeat loop keeps registering at the heartbeat interval. The id is chosen
        once per name and reused by every retry and re-registration. A refusal the registry will repeat
        (400/401/403/409/422) raises :class:`RegistryRequestError` at once. A service that must start
        whatever the registry's state uses :meth:`register_in_background`.
        """
        await self._prepare(name, port, host=host, version=version, description=description,
                            health_endpoint=health_endpoint, scheme=scheme, metadata=metadata, status=status,
                            instance_id=instance_id)
        await self._register_with_retries()
        self._heartbeats = asyncio.get_running_loop().create_task(
            self._heartbeat_loop(), name=f"heartbeats:{self.instance_id}")
        return self.instance_id if self.registered else None

    async def register_in_background(self, name: str, port: int | None = None, *, host: str | None = None,
                                     version: str = "", description: str = "", health_endpoint: str = "/health",
                                     scheme: str = "http", metadata: Mapping[str, str] | None = None,
                                     status: Status | str = Status.UP, instance_id: str | None = None) -> str:
        """Like :meth:`register` (same arguments, same retries and backoff, then heartbeats), but returns at
        once with the instance id the registration will have; :attr:`registration_state` says how it goes.

        A refusal the registry will repeat is logged, and retried at the heartbeat interval.
        """
        await self._prepare(name, port, host=host, version=version, description=description,
                            health_endpoint=health_endpoint, scheme=scheme, metadata=metadata, status=status,
                            instance_id=instance_id)
        self._heartbeats = asyncio.get_running_loop().create_task(
            self._register_then_beat(), name=f"registration:{self.instance_id}")
        assert self._registration is not None
        return self._registration.id

    async def _prepare(self, name: str, port: int | None, *, host: str | None, version: str, description: str,
                       health_endpoint: str, scheme: str, metadata: Mapping[str, str] | None,
                       status: Status | str, instance_id: str | None) -> None:
        await self._stop_heartbeats()
        self._status = Status(status)
        previous = self._registration
        reuse = previous is not None and previous.name == name and instance_id in (None, previous.id)
        self._registration = _Registration(
            id=previous.id if reuse and previous is not None else instance_id or _new_id(name),
            name=name, host=host or self.config.host, port=self.config.port if port is None else port,
            version=version, description=description, health_endpoint=health_endpoint, scheme=scheme,
            metadata=dict(metadata or {}), health_check_interval_ms=self.config.health_check_interval_ms,
            **({"lease_token": previous.lease_token} if reuse and previous is not None else {}))
        self._accepted = self._accepted and reuse  # the same id again: the registry may still hold it
        self._deregistered_id = None
        self._set_state(RegistrationState.REGISTERING)

    async def _register_with_retries(self) -> None:
        assert self._registration is not None
        name = self._registration.name
        retries = self.config.max_retries
        for attempt in range(retries + 1):
            try:
                await self._register_once()
            except RegistryUnavailableError as exc:
                if attempt == retries:
                    log.error("registration of %s failed after %d retries (%s); retrying every %.3gs in "
                              "the background", name, retries, exc, self.config.heartbeat_interval_s)
                    break
                delay = max(self._backoff.delay(attempt, self._rng), exc.retry_after_s or 0.0)
                log.warning("registration of %s failed (%s); retry %d/%d in %.3gs", name, exc, attempt + 1,
                            retries, delay)
                await self._clock.sleep(delay)
            else:
                log.info("registered %s as %s", name, self.instance_id)
                break

    async def _register_then_beat(self) -> None:
        try:
            await self._register_with_retries()
        except RegistryRequestError as exc:
            log.error("registry refused the registration of %s: %s", self.instance_id, exc)
        await self._heartbeat_loop()

    async def set_status(self, status: Status | str) -> bool:
        """Change the reported status and send it at once; it also goes with every later heartbeat.

        ``False`` when it could not be delivered now: the next heartbeat carries it (or the registration,
        while the registry has not accepted one yet).
        """
        self._status = Status(status)
        if self._registration is None or self._heartbeats is None or not self.registered:
            return False
        try:
            await self._beat_once()
        except (RegistryUnavailableError, RegistryRequestError) as exc:
            log.warning("status %s not delivered now (%s); the next heartbeat carries it", status, exc)
            return False
        return True

    async def deregister(self) -> None:
        """Stop heartbeats (and registration attempts) and remove the instance from the registry; safe to call
        any number of times. Nothing is sent when the registry never accepted the registration."""
        await self._stop_heartbeats()
        registration = self._registration
        if registration is None or self._deregistered_id == registration.id:
            return
        if not self._accepted:
            self._deregistered_id = registration.id
            self._set_state(RegistrationState.UNREGISTERED)
            return
        try:
            await self._http.deregister(registration.id, registration.lease_token)
        except (RegistryUnavailableError, RegistryRequestError) as exc:
            log.warning("deregistration of %s failed (%s); its lease will expire", registration.id, exc)
        else:
            log.info("deregistered %s", registration.id)
        self._deregistered_id = registration.id
        self._set_state(RegistrationState.UNREGISTERED)

    async def _register_once(self) -> None:
        registration = self._registration
        assert registration is not None
        try:
            answer = await self._http.register(registration.body(self._status), registration.lease_token)
        except (RegistryUnavailableError, RegistryRequestError):
            self._reporter.registration_attempted(registration.name, RegistrationOutcome.FAILED)
            raise
        token = answer.get("lease_token")
        if isinstance(token, str) and token and token != registration.lease_token:
            self._registration = replace(registration, lease_token=token)
        self._accepted = True
        self._deregistered_id = None
        self._reporter.registration_attempted(registration.name, RegistrationOutcome.OK)
        self._set_state(RegistrationState.REGISTERED)

    async def _beat_once(self) -> float:
        """One heartbeat (or registration); the seconds the registry asked to wait before the next (0: none)."""
        registration = self._registration
        assert registration is not None
        wait_s = 0.0
        try:
            if not self.registered:
                await self._register_once()
                return wait_s
            next_in_s = await self._http.heartbeat(registration.id, self._status.value, registration.lease_token)
            if next_in_s is None:
                log.warning("registry forgot %s; registering again", registration.id)
                self._set_state(RegistrationState.REGISTERING)
                await self._register_once()
                outcome = HeartbeatOutcome.REREGISTERED
            else:
                outcome = HeartbeatOutcome.OK
                wait_s = next_in_s
        except (RegistryUnavailableError, RegistryRequestError):
            self._reporter.heartbeat_sent(registration.name, HeartbeatOutcome.FAILED)
            raise
        self._reporter.heartbeat_sent(registration.name, outcome)
        return wait_s

    async def _heartbeat_loop(self) -> None:
        """One heartbeat right away (or a registration, while unregistered), then one per interval."""
        interval = self.config.heartbeat_interval_s
        failures = 0
        delay = 0.0 if self.registered else interval
        while True:
            await self._clock.sleep(delay)
            try:
                wait_s = await self._beat_once()
            except RegistryUnavailableError as exc:
                if failures == 0:  # one line when the registry goes away, one when it is back
                    log.warning("registry unreachable: heartbeats of %s fail (%s); retrying", self.instance_id, exc)
                delay = min(interval, self._backoff.delay(failures, self._rng)) if self.registered \
                    else interval
                if exc.retry_after_s is not None:  # an overloaded registry said when to come back
                    delay = max(delay, come_back_after(exc.retry_after_s, interval, self._rng))
                failures += 1
            except RegistryRequestError as exc:
                log.error("registry refused the heartbeat of %s: %s", self.instance_id, exc)
                delay = interval
            except Exception:
                log.exception("heartbeat of %s failed unexpectedly", self.instance_id)
                delay = interval
            else:
                if failures:
                    log.info("registry reachable again: heartbeats of %s go through after %d failed",
                             self.instance_id, failures)
                failures = 0
                delay = max(interval, come_back_after(wait_s, interval, self._rng)) if wait_s else interval  # paced

    async def _stop_heartbeats(self) -> None:
        task, self._heartbeats = self._heartbeats, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- discovery ---------------------------------------------------------------------------------------

    async def discover_services(self, name: str | None = None,
                                status: Status | str | None = Status.UP) -> list[ServiceInstance]:
        """Instances of ``name`` (every service when ``None``) with ``status`` (all when ``None``).

        Served from the cache, which a blocking query keeps current while the service is in use (else
        for the cache TTL); when no registry can be reached, the last answer is served (up to
        ``stale_max_age_ms`` old), else :class:`RegistryUnavailableError` is raised.
        """
        value = _STATUS_VALUES.get(status) if status is not None else None  # (Status(...) costs µs)
        if value is None and status is not None:
            value = Status(status).value
        found = self.discovery.lookup(name, value)
        return list(found if isinstance(found, tuple) else await found)

    def instances(self, service: str) -> tuple[ServiceInstance, ...] | Awaitable[tuple[ServiceInstance, ...]]:
        """The UP instances of ``service`` as a :class:`~resilient_client.ResilientClient` asks for them: what
        ``discover_services(service)`` lists, through the same cache, as the cached tuple itself (the same
        object for as long as the cache serves the same answer, so the client sees at once that it did).

        While the cache holds a fresh answer, the tuple is returned at once, with nothing to await;
        otherwise an awaitable of it."""
        return self.discovery.lookup(service, _UP)

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop heartbeats and watches and close the HTTP session (does not deregister)."""
        await self._stop_heartbeats()
        await self.discovery.aclose()
        await self._http.aclose()

    async def __aenter__(self) -> ServiceRegistryManager:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            async with asyncio.timeout(self.config.shutdown_timeout_s):
                await self.deregister()
        except TimeoutError:
            log.warning("the registry did not take the deregistration of %s within %.3gs; its lease will expire",
                        self.instance_id, self.config.shutdown_timeout_s)
        finally:
            await self.close()

    def __repr__(self) -> str:
        return (f"ServiceRegistryManager(registry={','.join(self.config.registry_urls)}, "
                f"instance_id={self.instance_id!r}, registration={self._state}, status={self._status})")


_STATUS_VALUES: dict[str, str] = {status.value: status.value for status in Status}
"""A status, given as a member or as its value (a ``Status`` hashes and compares as its value)."""
_UP = Status.UP.value



def _new_id(name: str) -> str:
    return f"{name}-{secrets.token_hex(8)}"
