"""Watching for changes: one follower of the store's live changes per replica fans them out to
blocking discovery queries and change-stream subscribers on this replica.

Notifications are hints: a woken blocking query re-reads the revision from the store, so a missed or
duplicated event can delay an answer by at most one wait, never make it wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from registry_server.errors import RegistryError, StoreError
from registry_server.model import ChangeEvent, ChangeNotice
from registry_server.store.base import InstanceStore
from registry_server.store.documents import UndecodableDocumentError

log = logging.getLogger("registry_server.change_hub")


class WatchLimitError(RegistryError):
    """This replica already serves its maximum number of watchers."""


class _Closed:
    """Sentinel put into subscriber queues when the hub shuts down."""


class _Overflow:
    """Sentinel: the subscriber fell too far behind and lost events."""


class _Gap:
    """Sentinel: this replica lost its live feed for a while; events may be missing since the last one."""


CLOSED = _Closed()
OVERFLOW = _Overflow()
GAP = _Gap()
QueueItem = ChangeEvent | _Closed | _Overflow | _Gap


@dataclass(eq=False)
class Subscription:
    service: str | None
    queue: asyncio.Queue[QueueItem] = field(default_factory=lambda: asyncio.Queue(maxsize=1000))

    def offer(self, item: QueueItem) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            with contextlib.suppress(asyncio.QueueEmpty):  # make room to say that events were lost
                self.queue.get_nowait()
            self.queue.put_nowait(OVERFLOW)


class ChangeHub:
    def __init__(self, store: InstanceStore, *, max_watchers: int,
                 on_count: Callable[[str, int], None] | None = None,
                 on_change: Callable[[str | None], None] | None = None) -> None:
        """``on_count(kind, n)``: this replica now holds ``n`` watchers of ``kind``. ``on_change(service)``:
        a change of ``service`` was announced, made through any replica (``None``: of any service, after
        the live feed was lost for a while)."""
        self._store = store
        self.max_watchers = max_watchers
        self._on_count = on_count or (lambda kind, n: None)
        self._on_change = on_change or (lambda service: None)
        self._counts: dict[str, int] = {"blocking": 0, "stream": 0}
        self._changed: dict[str, asyncio.Event] = {}
        self._subscribers: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    def __repr__(self) -> str:
        return f"ChangeHub(watchers={self._counts}, max={self.max_watchers})"

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._read(), name="registry-change-reader")

    def close(self) -> None:
        """Release every watcher now: blocking queries answer, change streams end."""
        self._closing.set()
        for event in self._changed.values():
            event.set()
        self._changed.clear()
        for sub in self._subscribers:
            sub.offer(CLOSED)

    async def stop(self) -> None:
        self.close()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def check_capacity(self) -> None:
        """Raise :class:`WatchLimitError` when every watcher slot of this replica is taken."""
        if sum(self._counts.values()) >= self.max_watchers:
            raise WatchLimitError(f"this registry replica already serves {self.max_watchers} watchers")

    @contextlib.asynccontextmanager
    async def slot(self, kind: str, *, checked: bool = False) -> AsyncIterator[None]:
        """Hold one of this replica's watcher slots; :class:`WatchLimitError` when none is free
        (unless the caller ``checked`` capacity just before)."""
        if not checked:
            self.check_capacity()
        self._counts[kind] += 1
        self._on_count(kind, self._counts[kind])
        try:
            yield
        finally:
            self._counts[kind] -= 1
            self._on_count(kind, self._counts[kind])

    def subscribe(self, service: str | None) -> Subscription:
        sub = Subscription(service)
        if self.closing:
            sub.offer(CLOSED)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    async def wait_for_change(self, service: str, index: int, timeout_s: float) -> bool:
        """Wait until the service's revision differs from ``index`` (moved on, or reset below it).

        Returns True when it did, False when ``timeout_s`` ran out or the hub is closing.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self.closing:
            changed = self._changed.get(service)
            if changed is None:
                changed = self._changed[service] = asyncio.Event()
            if await self._store.revision(service) != index:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await changed.wait()
        return False

    def dispatch(self, notice: ChangeNotice) -> None:
        service = notice.service
        self._on_change(service)
        changed = self._changed.pop(service, None)
        if changed is not None:
            changed.set()
        subscribers = [sub for sub in self._subscribers if sub.service is None or sub.service == service]
        if not subscribers:
            return
        try:
            event = notice.event  # built here, once, only when someone streams this service
        except UndecodableDocumentError:
            return  # the store logged and counted it; the streams go on without it
        for sub in subscribers:
            sub.offer(event)

    def _wake_all(self) -> None:
        self._on_change(None)
        for event in self._changed.values():
            event.set()
        self._changed.clear()

    async def _read(self) -> None:
        subscribed_before = False
        delay = 0.1
        followed = 0
        while True:
            try:
                async for item in self._store.changes():
                    if item is None:  # (re)subscribed
                        if subscribed_before:
                            log.info("change reader: following changes again; watchers re-check")
                            self._wake_all()  # blocking queries re-check their revision
                            for sub in self._subscribers:
                                sub.offer(GAP)  # change streams replay what they missed, or reset
                        subscribed_before = True
                        delay = 0.1
                        continue
                    self.dispatch(item)
                    followed += 1
                    if followed % 20 == 0:
                        # A mass expiry announces thousands of changes that arrive already buffered:
                        # let the requests in flight run between them.
                        await asyncio.sleep(0)
            except StoreError as exc:
                log.warning("change reader: store unavailable, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
