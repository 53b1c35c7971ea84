"""Discovery as the manager serves it: the cache, the watches that keep it current, empty-set protection.

``lookup`` answers from :class:`~resilient_client._cache.DiscoveryCache` and marks the service as in use;
:class:`~resilient_client._watches.ServiceWatches` keeps each service in use current with blocking queries.
Every answer, polled or watched, goes through :func:`~resilient_client._empty_set.admit` before it
replaces what the cache holds.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable

from resilient_client._cache import DiscoveryCache
from resilient_client._clock import Clock
from resilient_client._empty_set import CachedAnswer, admit
from resilient_client._registry_http import RegistryHttp
from resilient_client._report import Reporter
from resilient_client._watches import ServiceWatches
from resilient_client.config import ManagerConfig
from resilient_client.hooks import ProtectionOutcome
from resilient_client.model import ServiceAnswer, ServiceInstance

log = logging.getLogger(__name__)

DiscoveryKey = tuple[str | None, str | None]
"""(service name or ``None`` for every service, status filter or ``None`` for all statuses)."""

Found = tuple[ServiceInstance, ...] | Awaitable[tuple[ServiceInstance, ...]]
"""A lookup's answer: the instances at once when the cache holds a fresh answer (nothing to await, the
common case of a call), else an awaitable of them."""

PROTECTED_TTL_S = 1.0
"""While protecting, a polled answer is fresh for at most this long: the registry is asked again soon."""


class WatchedDiscovery:
    """The discovery cache of one manager, kept current by blocking queries while a service is in use."""

    def __init__(self, http: RegistryHttp, config: ManagerConfig, *, clock: Clock, reporter: Reporter,
                 rng: random.Random) -> None:
        self._http = http
        self._config = config
        self._clock = clock
        self._reporter = reporter
        ttl_s = config.cache_ttl_s
        self.cache: DiscoveryCache[DiscoveryKey, CachedAnswer] = DiscoveryCache(
            self._fetch, ttl_s=ttl_s, max_stale_s=config.stale_max_age_s, clock=clock, reporter=reporter,
            label=self.label, ttl_for=lambda view: min(ttl_s, PROTECTED_TTL_S) if view.protected else ttl_s,
            protected=lambda view: view.protected)
        self.watches: ServiceWatches[DiscoveryKey] = ServiceWatches(
            self, config.watch, idle_s=config.watch_idle_s, clock=clock, rng=rng, reporter=reporter)

    def lookup(self, name: str | None, status: str | None) -> Found:
        """The instances of ``name`` (every service: ``None``) with ``status`` (any: ``None``), from the cache:
        the cached tuple itself while it is fresh, else an awaitable of the answer. A single service looked
        up is watched from now on."""
        key: DiscoveryKey = (name, status)
        view = self.cache.fresh(key)
        if view is None:
            return self._refreshed(key)
        if name is not None:
            self.watches.touch(key)
        return view.instances

    async def _refreshed(self, key: DiscoveryKey) -> tuple[ServiceInstance, ...]:
        view = await self.cache.get(key)
        if key[0] is not None:
            self.watches.touch(key)
        return view.instances

    async def aclose(self) -> None:
        await self.watches.aclose()
        await self.cache.aclose()

    # -- the cache's fetch -------------------------------------------------------------------------------

    async def _fetch(self, key: DiscoveryKey) -> CachedAnswer:
        name, status = key
        if name is None:
            return CachedAnswer(await self._http.all_instances(status))
        return self._admit(key, await self._http.service(name, status))

    def _admit(self, key: DiscoveryKey, answer: ServiceAnswer) -> CachedAnswer:
        view, outcome = admit(self.cache.peek(key), answer, now=self._clock.monotonic(),
                              grace_s=self._config.empty_grace_s)
        if outcome is not None:
            service = self.label(key)
            if outcome is ProtectionOutcome.STARTED:
                log.warning("%s read as empty at revision %s, not past %s: keeping its %d last known "
                            "instances for up to %.3gs", service, answer.revision, view.basis,
                            len(view.instances), self._config.empty_grace_s)
            else:
                log.info("%s: empty-set protection ended (%s)", service, outcome.value)
            self._reporter.protected(service, outcome)
        return view

    # -- WatchSource -------------------------------------------------------------------------------------

    @staticmethod
    def label(key: DiscoveryKey) -> str:
        return key[0] or "*"

    def index(self, key: DiscoveryKey) -> int | None:
        view = self.cache.peek(key)
        return None if view is None else view.revision

    def recheck_at(self, key: DiscoveryKey) -> float | None:
        view = self.cache.peek(key)
        return None if view is None else view.protected_until

    async def poll(self, key: DiscoveryKey, index: int | None, wait_s: float) -> ServiceAnswer:
        name, status = key
        assert name is not None, "only single services are watched"
        return await self._http.service(
            name, status, index=index, wait_s=wait_s,
            timeout_s=wait_s * (1 + 1 / 16) + self._config.request_timeout_s)

    def deliver(self, key: DiscoveryKey, answer: ServiceAnswer, *, watched: bool) -> None:
        self.cache.put(key, self._admit(key, answer), watched=watched)

    def lost(self, key: DiscoveryKey) -> None:
        self.cache.unwatch(key)

    def __repr__(self) -> str:
        return f"WatchedDiscovery({self.cache!r}, {self.watches!r})"
