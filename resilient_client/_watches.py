"""One long poll per service in use: blocking queries that keep the discovery cache current.

A watch starts on the first lookup of a key and asks the registry again as soon as each answer arrives,
with the revision of the last one (``index``), so the registry answers the moment the service changes.
It stops when the key has not been looked up for ``idle_s`` and on :meth:`ServiceWatches.aclose`. While
blocking queries fail — no replica reachable, ``503 too_many_watchers`` (its ``Retry-After`` is honoured),
a refusal, or a registry that ignores them (no ``X-Registry-Index``) — the watch tells its source it is
lost, so the cache falls back to TTL polling, and tries again with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar

from resilient_client._backoff import Backoff
from resilient_client._clock import Clock, SystemClock
from resilient_client._report import Reporter
from resilient_client.config import WatchConfig
from resilient_client.errors import RegistryUnavailableError
from resilient_client.hooks import WatchState
from resilient_client.model import ServiceAnswer

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)

MIN_WAIT_S = 0.05
"""The shortest wait a blocking query is sent with (when idleness or protection ends sooner)."""


class WatchSource(Protocol[K_contra]):
    """What a watch reads from and writes to: the registry on one side, the cache on the other."""

    def label(self, key: K_contra) -> str: ...

    def index(self, key: K_contra) -> int | None:
        """The revision the cache holds for ``key`` (``None``: the first query answers at once)."""

    def recheck_at(self, key: K_contra) -> float | None:
        """Monotonic time by which the registry must be asked again whatever happens, or ``None``."""

    async def poll(self, key: K_contra, index: int | None, wait_s: float) -> ServiceAnswer: ...

    def deliver(self, key: K_contra, answer: ServiceAnswer, *, watched: bool) -> None: ...

    def lost(self, key: K_contra) -> None:
        """The key is no longer watched (failing or stopped): the cache falls back to its TTL."""


class _Watch:
    __slots__ = ("key", "last_used", "state", "task")

    def __init__(self, key: object, now: float) -> None:
        self.key = key
        self.last_used = now
        self.state: WatchState | None = None
        self.task: asyncio.Task[None] | None = None


class ServiceWatches(Generic[K]):
    """The watches of one discovery cache."""

    def __init__(self, source: WatchSource[K], config: WatchConfig, *, idle_s: float,
                 clock: Clock | None = None, rng: random.Random | None = None,
                 reporter: Reporter | None = None) -> None:
        self._source = source
        self._config = config
        self._idle_s = idle_s
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._reporter = reporter or Reporter()
        self._backoff = Backoff(config.retry)
        self._watches: dict[K, _Watch] = {}
        self._closed = False

    def touch(self, key: K) -> None:
        """``key`` was looked up now: watch it (unless closed, disabled or at ``max_services``)."""
        watch = self._watches.get(key)
        if watch is not None:
            watch.last_used = self._clock.monotonic()
            return
        if self._closed or not self._config.enabled or len(self._watches) >= self._config.max_services:
            return
        watch = self._watches[key] = _Watch(key, self._clock.monotonic())
        watch.task = asyncio.get_running_loop().create_task(self._run(key, watch),
                                                            name=f"watch:{self._source.label(key)}")

    def state(self, key: K) -> WatchState:
        watch = self._watches.get(key)
        if watch is None:
            return WatchState.STOPPED
        return watch.state or WatchState.POLLING

    @property
    def keys(self) -> list[K]:
        return list(self._watches)

    async def aclose(self) -> None:
        """Stop every watch and wait for them to end; no watch starts afterwards."""
        self._closed = True
        tasks = [watch.task for watch in self._watches.values() if watch.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, key: K, watch: _Watch) -> None:
        source, clock = self._source, self._clock
        index = source.index(key)
        failures = 0
        try:
            while True:
                now = clock.monotonic()
                wait = min(self._config.wait_s, watch.last_used + self._idle_s - now)
                if wait <= 0:
                    return  # not looked up for idle_s
                recheck = source.recheck_at(key)
                if recheck is not None:
                    wait = min(wait, recheck - now)
                wait = max(wait, MIN_WAIT_S)
                try:
                    answer = await source.poll(key, index, wait)
                except Exception as exc:  # a bad answer must not end the watch
                    self._set_state(key, watch, WatchState.POLLING)
                    source.lost(key)
                    delay = self._retry_delay(failures, exc)
                    failures += 1
                    log.info("watching %s failed (%s); TTL polling meanwhile, next try in %.2gs",
                             source.label(key), exc, delay)
                    await clock.sleep(delay)
                    continue
                if answer.revision is None:  # the registry ignores blocking queries: poll, and try later
                    source.deliver(key, answer, watched=False)
                    self._set_state(key, watch, WatchState.POLLING)
                    source.lost(key)
                    failures += 1
                    await clock.sleep(self._backoff.config.max_s)
                    continue
                early = answer.revision == index and clock.monotonic() - now < wait / 2
                index = answer.revision
                source.deliver(key, answer, watched=True)
                self._set_state(key, watch, WatchState.WATCHING)
                if early:  # unchanged, yet answered long before the wait: a replica shutting down
                    await clock.sleep(self._backoff.delay(failures, self._rng))
                    failures += 1
                else:
                    failures = 0
        finally:
            if self._watches.get(key) is watch:
                del self._watches[key]
            source.lost(key)
            self._set_state(key, watch, WatchState.STOPPED)

    def _retry_delay(self, failures: int, exc: Exception) -> float:
        delay = self._backoff.delay(failures, self._rng)
        if isinstance(exc, RegistryUnavailableError) and exc.retry_after_s is not None:
            delay = max(delay, exc.retry_after_s)
        return delay

    def _set_state(self, key: K, watch: _Watch, state: WatchState) -> None:
        if watch.state is not state:
            watch.state = state
            self._reporter.watch_changed(self._source.label(key), state)

    def __repr__(self) -> str:
        return f"ServiceWatches(watching={len(self._watches)}, enabled={self._config.enabled})"
