"""The change hub's fan-out: every announced change wakes its service's listeners; the whole event (its
instance parsed) is built only when a change stream of that service, or of all, takes it. Each watcher's
buffer, and all of them together, are bounded in bytes."""

from __future__ import annotations

import asyncio

from registry_server.change_hub import OVERFLOW, WATCHER_EVENTS, ChangeHub, Subscription
from registry_server.model import ChangeEvent, ChangeNotice, EventType, Instance, InstanceRegistration, InstanceStatus
from registry_server.store.memory import MemoryStore


def event(service: str) -> ChangeEvent:
    inst = Instance(id="i-1", name=service, host="h", port=1, scheme="http", health_endpoint="/health",
                    version="", description="", status=InstanceStatus.UP, metadata={}, registered_at_ms=1,
                    last_heartbeat_ms=1, expires_at_ms=2)
    return ChangeEvent("1-0/" + service, EventType.EXPIRED, service, 3, inst)


class Counted:
    """A notice source that counts how often the event behind it was built."""

    def __init__(self) -> None:
        self.built = 0

    def notice(self, service: str) -> ChangeNotice:
        def build() -> ChangeEvent:
            self.built += 1
            return event(service)
        return ChangeNotice(service, build)


async def test_a_change_nobody_streams_wakes_its_listeners_without_building_the_event() -> None:
    heard: list[str | None] = []
    hub = ChangeHub(MemoryStore(), max_watchers=10, on_change=heard.append)
    other = hub.subscribe("Other")
    counted = Counted()
    hub.dispatch(counted.notice("Auth"))
    assert heard == ["Auth"]
    assert counted.built == 0, "no subscriber of Auth: the instance is never parsed"
    assert other.empty()


async def test_the_event_is_built_once_however_many_stream_it() -> None:
    hub = ChangeHub(MemoryStore(), max_watchers=10)
    auth, everything, other = hub.subscribe("Auth"), hub.subscribe(None), hub.subscribe("Other")
    counted = Counted()
    hub.dispatch(counted.notice("Auth"))
    assert counted.built == 1
    first, second = auth.get_nowait(), everything.get_nowait()
    assert isinstance(first, ChangeEvent)
    assert first is second
    assert (first.service, first.type, first.instance.id) == ("Auth", EventType.EXPIRED, "i-1")
    assert other.empty()


def test_a_notice_of_a_ready_event_hands_back_that_event() -> None:
    ready = event("Auth")
    notice = ChangeNotice.of(ready)
    assert (notice.service, notice.event) == ("Auth", ready)


def sized(n: int, service: str = "Auth", value_chars: int = 1000) -> ChangeNotice:
    """A distinct event of about ``value_chars`` bytes of metadata."""
    inst = Instance(id=f"i-{n}", name=service, host="h", port=1, scheme="http", health_endpoint="/health",
                    version="", description="", status=InstanceStatus.UP,
                    metadata={"k": f"{n}-".ljust(value_chars, "v")}, registered_at_ms=1, last_heartbeat_ms=1,
                    expires_at_ms=2)
    return ChangeNotice.of(ChangeEvent(f"{n}-0", EventType.UPDATED, service, n, inst))


def drain(sub: Subscription) -> list[object]:
    items: list[object] = []
    while not sub.empty():
        items.append(sub.get_nowait())
    return items


async def test_a_watcher_that_never_reads_overflows_at_its_byte_bound_and_then_holds_nothing() -> None:
    hub = ChangeHub(MemoryStore(), max_watchers=10, watcher_bytes=100_000, watchers_bytes=1_000_000)
    stalled = hub.subscribe("Auth")
    for n in range(60):  # about 1.7 KB each as charged: 100 KB holds 58
        hub.dispatch(sized(n))
        assert stalled.held_bytes <= 100_000
        assert hub.held_bytes == stalled.held_bytes
    assert stalled.overflowed
    assert hub.held_bytes == 0, "what an overflowed watcher held is released at once"
    hub.dispatch(sized(60))
    assert drain(stalled) == [OVERFLOW], "handed the overflow first, and nothing after it"


async def test_a_watcher_overflows_past_a_thousand_events_however_small_they_are() -> None:
    hub = ChangeHub(MemoryStore(), max_watchers=10)
    stalled = hub.subscribe("Auth")
    for n in range(WATCHER_EVENTS):
        hub.dispatch(sized(n, value_chars=1))
    assert len(stalled) == WATCHER_EVENTS and not stalled.overflowed
    hub.dispatch(sized(WATCHER_EVENTS, value_chars=1))
    assert drain(stalled) == [OVERFLOW]


async def test_a_watcher_that_reads_never_overflows() -> None:
    hub = ChangeHub(MemoryStore(), max_watchers=10, watcher_bytes=20_000, watchers_bytes=20_000)
    reader = hub.subscribe(None)
    for n in range(100):  # 1.7 MB in all, 20 KB at a time
        hub.dispatch(sized(n, service=f"svc-{n % 3}"))
        taken = reader.get_nowait()
        assert isinstance(taken, ChangeEvent) and taken.id == f"{n}-0"
    assert (reader.held_bytes, hub.held_bytes, reader.overflowed) == (0, 0, False)


async def test_past_the_bound_of_all_watchers_the_one_furthest_behind_overflows() -> None:
    hub = ChangeHub(MemoryStore(), max_watchers=10, watcher_bytes=50_000, watchers_bytes=60_000)
    behind, ahead = hub.subscribe("Auth"), hub.subscribe("Billing")
    for n in range(20):  # Auth: about 34 KB, under its own bound
        hub.dispatch(sized(n, service="Auth"))
    for n in range(20, 35):  # Billing's 15 events take the total past 60 KB: Auth gives way
        hub.dispatch(sized(n, service="Billing"))
    assert behind.overflowed and not ahead.overflowed
    assert hub.held_bytes == ahead.held_bytes <= 60_000
    assert drain(behind) == [OVERFLOW]
    assert [e.id for e in drain(ahead) if isinstance(e, ChangeEvent)] == [f"{n}-0" for n in range(20, 35)]
    assert hub.held_bytes == 0


async def test_a_watcher_that_goes_on_after_its_overflow_hears_changes_again() -> None:
    hub = ChangeHub(MemoryStore(), max_watchers=10, watcher_bytes=10_000, watchers_bytes=10_000)
    blocking = hub.subscribe(None)  # as a dialect's blocking query: it only needs to be woken
    for n in range(10):
        hub.dispatch(sized(n))
    assert drain(blocking) == [OVERFLOW]
    hub.dispatch(sized(10))
    assert [item.id for item in drain(blocking) if isinstance(item, ChangeEvent)] == ["10-0"]


async def test_a_watcher_that_leaves_releases_what_it_held() -> None:
    hub = ChangeHub(MemoryStore(), max_watchers=10)
    gone = hub.subscribe("Auth")
    for n in range(5):
        hub.dispatch(sized(n))
    assert hub.held_bytes > 5 * 1000
    hub.unsubscribe(gone)
    assert hub.held_bytes == 0


async def test_a_blocking_query_on_a_name_nobody_changes_leaves_nothing_behind() -> None:
    hub = ChangeHub(MemoryStore(), max_watchers=10)
    for n in range(20):  # made-up names, each waited on until its wait runs out
        assert await hub.wait_for_change(f"made-up-{n}", 0, 0.001) is False
    assert await hub.wait_for_change("other", 5, 1.0) is True  # its revision is 0, not 5: at once
    assert (hub._changed, hub._waiters) == ({}, {})


async def test_every_blocking_query_of_a_service_is_woken_when_one_of_them_leaves_first() -> None:
    store = MemoryStore()
    hub = ChangeHub(store, max_watchers=10)
    long = asyncio.create_task(hub.wait_for_change("Auth", 0, 30.0))
    assert await hub.wait_for_change("Auth", 0, 0.001) is False  # a second waiter gives up first
    await store.register(InstanceRegistration(name="Auth", host="h", port=1, id="a-1"), 0, 30_000)
    hub.dispatch(sized(1))
    async with asyncio.timeout(5):
        assert await long is True
