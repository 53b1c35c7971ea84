"""Watching for changes: one follower of the store's live changes per replica fans them out to
blocking discovery queries and change-stream subscribers on this replica.

Notifications are hints: a woken blocking query re-reads the revision from the store, so a missed or
duplicated event can delay an answer by at most one wait, never make it wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable

from registry_server.errors import RegistryError, StoreError
from registry_server.model import ChangeEvent, ChangeNotice
from registry_server.store.base import InstanceStore
from registry_server.store.documents import UndecodableDocumentError, instance_footprint

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


WATCHER_EVENTS = 1000
"""The events one watcher's buffer holds at most."""
WATCHER_BYTES = 4 * 1024 * 1024
"""The bytes one watcher's buffer holds at most, as :func:`instance_footprint` charges its events (an event
shared by several watchers is charged to each)."""
WATCHERS_BYTES = 32 * 1024 * 1024
"""The bytes the buffers of all the watchers of a replica hold at most, charged the same way."""


_EVENT_BYTES = 160
"""What an event takes beside its instance and id, with its place in a buffer."""


class Subscription:
    """One watcher's buffer: the events announced and not yet taken, in order.

    A watcher whose buffer would pass :data:`WATCHER_EVENTS` or :data:`WATCHER_BYTES` (or that holds the
    most when all of them together would pass :data:`WATCHERS_BYTES`) overflows: what it holds is dropped
    and it is handed :data:`OVERFLOW` next, and nothing more until it takes that (a change stream then
    resets and ends)."""

    def __init__(self, service: str | None, release: Callable[[int], None]) -> None:
        self.service = service
        self._queue: asyncio.Queue[tuple[QueueItem, int]] = asyncio.Queue()
        self._release = release
        self.held_bytes = 0
        self.overflowed = False

    def __repr__(self) -> str:
        return f"Subscription({self.service!r}, events={self._queue.qsize()}, bytes={self.held_bytes})"

    def __len__(self) -> int:
        return self._queue.qsize()

    def empty(self) -> bool:
        return self._queue.empty()

    async def get(self) -> QueueItem:
        return self._taken(await self._queue.get())

    def get_nowait(self) -> QueueItem:
        """The next item; :class:`asyncio.QueueEmpty` when there is none."""
        return self._taken(self._queue.get_nowait())

    def _taken(self, entry: tuple[QueueItem, int]) -> QueueItem:
        item, size = entry
        self.held_bytes -= size
        self._release(size)
        if item is OVERFLOW:
            self.overflowed = False  # a watcher that goes on after it (a blocking query) hears changes again
        return item

    def put(self, item: QueueItem, size: int = 0) -> None:
        """Append ``item``, charged ``size`` bytes (the caller checked the bounds); nothing after an overflow."""
        if not self.overflowed:
            self._queue.put_nowait((item, size))
            self.held_bytes += size

    def overflow(self) -> None:
        """Drop what is held, so that the next item taken is :data:`OVERFLOW`; take nothing more till then."""
        if self.overflowed:
            return
        self.drop()
        self._queue.put_nowait((OVERFLOW, 0))
        self.overflowed = True

    def drop(self) -> None:
        """Release everything held (the watcher left)."""
        while not self._queue.empty():
            self._taken(self._queue.get_nowait())


class ChangeHub:
    def __init__(self, store: InstanceStore, *, max_watchers: int,
                 on_count: Callable[[str, int], None] | None = None,
                 on_change: Callable[[str | None], None] | None = None,
                 watcher_bytes: int = WATCHER_BYTES, watchers_bytes: int = WATCHERS_BYTES) -> None:
        """``on_count(kind, n)``: this replica now holds ``n`` watchers of ``kind``. ``on_change(service)``:
        a change of ``service`` was announced, made through any replica (``None``: of any service, after
        the live feed was lost for a while). ``watcher_bytes``, ``watchers_bytes``: the bounds of one
        watcher's buffer and of all of them (see :class:`Subscription`)."""
        self.watcher_bytes = min(watcher_bytes, watchers_bytes)
        self.watchers_bytes = watchers_bytes
        self.held_bytes = 0
        """What the buffers of all the watchers hold, as charged."""
        self._store = store
        self.max_watchers = max_watchers
        self._on_count = on_count or (lambda kind, n: None)
        self._on_change = on_change or (lambda service: None)
        self._counts: dict[str, int] = {"blocking": 0, "stream": 0}
        self._changed: dict[str, asyncio.Event] = {}
        self._waiters: dict[str, int] = {}
        """How many blocking queries wait for each service: its event goes with the last of them."""
        self._subscribers: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    def __repr__(self) -> str:
        return f"ChangeHub(watchers={self._counts}, max={self.max_watchers}, held_bytes={self.held_bytes})"

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
            sub.put(CLOSED)

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
        """A buffer of the changes of ``service`` (of every service: ``None``) from now on."""
        sub = Subscription(service, self._release)
        if self.closing:
            sub.put(CLOSED)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)
        sub.drop()

    def _release(self, size: int) -> None:
        self.held_bytes -= size

    def _signal(self, sub: Subscription, item: QueueItem) -> None:
        if len(sub) >= WATCHER_EVENTS:
            sub.overflow()
        else:
            sub.put(item)

    def _offer(self, sub: Subscription, event: ChangeEvent, size: int) -> None:
        """Buffer ``event`` for ``sub`` within the bounds, overflowing the watchers that pass them."""
        if sub.overflowed:
            return
        if len(sub) >= WATCHER_EVENTS or sub.held_bytes + size > self.watcher_bytes:
            sub.overflow()
            return
        while self.held_bytes + size > self.watchers_bytes:
            # The one furthest behind in bytes gives way: rare (it frees a whole buffer), so a scan will do.
            furthest = max(self._subscribers, key=lambda other: other.held_bytes)
            furthest.overflow()
            if furthest is sub:
                return
        sub.put(event, size)
        self.held_bytes += size

    async def wait_for_change(self, service: str, index: int, timeout_s: float) -> bool:
        """Wait until the service's revision differs from ``index`` (moved on, or reset below it).

        Returns True when it did, False when ``timeout_s`` ran out or the hub is closing.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        self._waiters[service] = self._waiters.get(service, 0) + 1
        try:
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
        finally:
            left = self._waiters.pop(service) - 1
            if left:
                self._waiters[service] = left
            else:  # the last waiter of a name nobody changes (made up, say) must not leave it behind
                self._changed.pop(service, None)

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
        size = instance_footprint(event.instance) + sys.getsizeof(event.id) + _EVENT_BYTES
        for sub in subscribers:
            self._offer(sub, event, size)

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
                                self._signal(sub, GAP)  # change streams replay what they missed, or reset
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
