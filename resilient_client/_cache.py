"""The discovery cache: fresh for a TTL, one registry request per concurrent miss, stale-if-error.

Every lookup is reported once as ``hit`` (fresh), ``miss`` (asked the registry, alone or sharing another
caller's request), ``stale`` (the registry could not be reached; an older answer was served), ``error``
(it could not be reached and nothing young enough was cached) or ``protected`` (the value served says it
stands in for an empty answer: see :mod:`resilient_client._empty_set`).

A watcher may :meth:`~DiscoveryCache.put` answers as they arrive; a *watched* entry is fresh whatever its
age until :meth:`~DiscoveryCache.unwatch`, then it ages from its last answer as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from resilient_client._clock import Clock, SystemClock
from resilient_client._report import Reporter
from resilient_client.errors import RegistryUnavailableError
from resilient_client.hooks import DiscoveryResult

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    label: str
    """The service the key stands for, as reported."""
    fetched_at: float
    ttl_s: float
    """How long ``value`` is fresh (``ttl_for(value)``)."""
    hit_result: DiscoveryResult
    """What a fresh lookup of this answer reports: ``hit``, or ``protected``."""
    quiet_until: float = 0.0
    """After a failed refresh, serve stale without asking the registry again until then."""
    watched: bool = False
    """Kept current by a watcher: fresh whatever its age."""


class DiscoveryCache(Generic[K, V]):
    """Caches ``fetch(key)`` per key.

    ``ttl_s``: an answer younger than this is served without asking the registry. ``max_stale_s``: an
    answer up to this old is served when the registry cannot be reached (``RegistryUnavailableError``);
    after such a failure the registry is not asked again for ``error_backoff_s``. ``ttl_for(value)``, when
    given, replaces ``ttl_s`` per value; ``protected(value)`` says a value is reported as ``protected``.
    """

    def __init__(self, fetch: Callable[[K], Awaitable[V]], *, ttl_s: float, max_stale_s: float,
                 error_backoff_s: float = 1.0, clock: Clock | None = None, reporter: Reporter | None = None,
                 label: Callable[[K], str] = str, ttl_for: Callable[[V], float] | None = None,
                 protected: Callable[[V], bool] | None = None) -> None:
        self._fetch = fetch
        self._ttl_s = ttl_s
        self._ttl_for = ttl_for or (lambda value: ttl_s)
        self._protected = protected or (lambda value: False)
        self._max_stale_s = max_stale_s
        self._error_backoff_s = min(error_backoff_s, ttl_s)
        self._clock = clock or SystemClock()
        self._reporter = reporter or Reporter()
        self._label = label
        self._entries: dict[K, _Entry[V]] = {}
        self._inflight: dict[K, asyncio.Task[V]] = {}

    def fresh(self, key: K) -> V | None:
        """The value of ``key`` while it is fresh, at once (reported as a hit), else ``None``: then
        :meth:`get` decides. The only place freshness is judged."""
        entry = self._entries.get(key)
        if entry is not None and (entry.watched or self._clock.monotonic() - entry.fetched_at < entry.ttl_s):
            self._reporter.looked_up(entry.label, entry.hit_result)
            return entry.value
        return None

    async def get(self, key: K) -> V:
        """The value of ``key``: cached while fresh, else fetched (stale if the registry cannot be reached)."""
        value = self.fresh(key)
        if value is not None:
            return value
        entry = self._entries.get(key)
        if entry is not None:
            now = self._clock.monotonic()
            if now < entry.quiet_until and now - entry.fetched_at <= self._max_stale_s:
                self._report(key, DiscoveryResult.STALE, entry.value)
                return entry.value
        try:
            value = await asyncio.shield(self._shared_fetch(key))
        except RegistryUnavailableError:
            entry = self._entries.get(key)
            now = self._clock.monotonic()
            if entry is not None and now - entry.fetched_at <= self._max_stale_s:
                entry.quiet_until = now + self._error_backoff_s
                self._report(key, DiscoveryResult.STALE, entry.value)
                return entry.value
            self._report(key, DiscoveryResult.ERROR)
            raise
        except asyncio.CancelledError:
            raise
        except Exception:
            self._report(key, DiscoveryResult.ERROR)
            raise
        self._report(key, DiscoveryResult.MISS, value)
        return value

    def put(self, key: K, value: V, *, watched: bool = False) -> None:
        """Store an answer that arrived by itself (from a watcher); ``watched``: fresh until
        :meth:`unwatch`."""
        self._entries[key] = self._entry(key, value, watched)

    def unwatch(self, key: K) -> None:
        """The key's watcher stopped or fails: its entry ages from its last answer again."""
        entry = self._entries.get(key)
        if entry is not None:
            entry.watched = False

    def peek(self, key: K) -> V | None:
        """The cached value whatever its age, without asking anyone."""
        entry = self._entries.get(key)
        return None if entry is None else entry.value

    def invalidate(self, key: K | None = None) -> None:
        """Forget one key (or all): the next lookup asks the registry."""
        if key is None:
            self._entries.clear()
        else:
            self._entries.pop(key, None)

    async def aclose(self) -> None:
        """Cancel the registry requests in flight."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    def _shared_fetch(self, key: K) -> asyncio.Task[V]:
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch_and_store(key))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return task

    async def _fetch_and_store(self, key: K) -> V:
        value = await self._fetch(key)
        previous = self._entries.get(key)
        self._entries[key] = self._entry(key, value, previous is not None and previous.watched)
        return value

    def _entry(self, key: K, value: V, watched: bool) -> _Entry[V]:
        return _Entry(value, self._label(key), self._clock.monotonic(), self._ttl_for(value),
                      self._result(DiscoveryResult.HIT, value),
                      watched=watched)

    def _forget(self, key: K, task: asyncio.Task[V]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here, so an unawaited failure is never logged as lost

    def _result(self, result: DiscoveryResult, value: V | None) -> DiscoveryResult:
        return DiscoveryResult.PROTECTED if value is not None and self._protected(value) else result

    def _report(self, key: K, result: DiscoveryResult, value: V | None = None) -> None:
        self._reporter.looked_up(self._label(key), self._result(result, value))

    def __repr__(self) -> str:
        return f"DiscoveryCache(ttl_s={self._ttl_s}, max_stale_s={self._max_stale_s}, keys={len(self._entries)})"
