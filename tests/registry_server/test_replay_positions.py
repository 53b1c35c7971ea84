"""A change stream keeps, per service, the newest event its replays sent, only until the live events pass
it: a stream that follows churning names holds nothing, and a replay too wide for the budget resets the
stream instead of growing it."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import AsyncGenerator, AsyncIterator
from typing import cast

import pytest
from sse_starlette import ServerSentEvent

from registry_server.api.rendered import RenderedAnswers
from registry_server.api.replay_positions import PositionsBudget, ReplayPositions, entry_bytes
from registry_server.api.watching import WatchApi
from registry_server.app import create_app
from registry_server.change_hub import ChangeHub, Subscription
from registry_server.model import ChangeEvent, EventType, Instance, InstanceRegistration, InstanceStatus
from registry_server.settings import Settings
from registry_server.store.memory import MemoryStore
from tests.support.clock import FakeClock
from tests.support.polling import async_wait_until


def event(service: str, ms: int, seq: int = 0) -> ChangeEvent:
    inst = Instance(id="i-1", name=service, host="h", port=1, scheme="http", health_endpoint="/health",
                    version="", description="", status=InstanceStatus.UP, metadata={}, registered_at_ms=1,
                    last_heartbeat_ms=1, expires_at_ms=2)
    return ChangeEvent(f"{ms}-{seq}/{service}", EventType.REGISTERED, service, 1, inst)


def test_live_events_of_churning_names_leave_nothing_behind() -> None:
    budget = PositionsBudget()
    positions = ReplayPositions(budget)
    assert all(positions.live(event(f"svc-{n}", 1000 + n)) for n in range(10_000))
    assert (len(positions), positions.held, budget.held) == (0, 0, 0)


def test_a_replayed_event_arriving_live_is_dropped_and_the_next_one_frees_the_entry() -> None:
    budget = PositionsBudget()
    positions = ReplayPositions(budget)
    assert positions.record(event("Auth", 1000)) and positions.record(event("Auth", 1000, 1))
    assert positions.held == budget.held == entry_bytes("Auth")
    assert not positions.live(event("Auth", 1000)), "sent by the replay"
    assert not positions.live(event("Auth", 1000, 1)), "sent by the replay"
    assert positions.live(event("Auth", 1001))
    assert (len(positions), budget.held) == (0, 0), "every later live event of Auth is later still"
    assert positions.live(event("Auth", 1000, 5)), "with no entry left, a live event is new"


def test_a_replay_past_the_streams_budget_or_all_streams_budget_is_refused() -> None:
    one = entry_bytes("svc-0")
    budget = PositionsBudget(stream_bytes=3 * one, all_bytes=5 * one)
    first, second = ReplayPositions(budget), ReplayPositions(budget)
    assert [first.record(event(f"svc-{n}", 1000)) for n in range(4)] == [True, True, True, False]
    assert [second.record(event(f"svc-{n}", 1000)) for n in range(3)] == [True, True, False], "5 in all"
    assert first.record(event("svc-0", 1001)), "a service already held costs nothing more"
    first.clear()
    assert budget.held == 2 * one
    assert second.record(event("svc-2", 1000))


@pytest.mark.parametrize("width", [2, 24, 128])
def test_an_entry_takes_no_more_than_it_is_charged(width: int) -> None:
    """Each name is its own string, kept alive by the entry alone once its event is sent."""
    positions = ReplayPositions(PositionsBudget(stream_bytes=2**40, all_bytes=2**40))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(20_000):
            positions.record(event(f"{n:06d}".ljust(width, "s"), 1_700_000_000_000 + n, n % 1000))
        gc.collect()
        taken = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert taken <= positions.held, (taken, positions.held)
    assert taken >= positions.held / 2, "charged far more than taken: the bound would refuse replays for nothing"


@pytest.fixture
async def parts() -> AsyncIterator[tuple[WatchApi, ChangeHub, PositionsBudget]]:
    app = create_app(Settings(instance_ttl_s=30), store=MemoryStore(), clock=FakeClock())
    hub: ChangeHub = app.state.hub
    hub.start()
    budget = PositionsBudget(stream_bytes=4 * entry_bytes("svc-0"))
    yield (WatchApi(app.state.registry, hub, app.state.metrics, app.state.access, RenderedAnswers(), budget),
           hub, budget)
    await hub.stop()


async def register(api: WatchApi, name: str) -> None:
    await api.registry.register(InstanceRegistration(id=f"{name}-1", name=name, host="h", port=1))


async def next_event(stream: AsyncIterator[ServerSentEvent]) -> ServerSentEvent:
    return await asyncio.wait_for(anext(stream), 5)


async def wait_for_queued(sub: Subscription, count: int) -> None:
    async def queued() -> bool:  # the hub's reader hands on the store's changes
        return len(sub) >= count

    await async_wait_until(queued, timeout=5, message=f"{count} events queued")


async def test_a_stream_drops_the_live_copies_of_what_it_replayed_and_then_holds_nothing(
        parts: tuple[WatchApi, ChangeHub, PositionsBudget]) -> None:
    api, hub, budget = parts
    since = await api.registry.store.last_event_id()
    sub = hub.subscribe(None)  # as a stream does: live changes queue up before the replay reads
    for n in range(4):
        await register(api, f"svc-{n}")
    await wait_for_queued(sub, 4)
    stream = api._events(sub, None, since)
    replayed = [await next_event(stream) for _ in range(4)]
    assert [e.event for e in replayed] == ["registered"] * 4
    assert (await next_event(stream)).event == "ready"
    assert budget.held == 4 * entry_bytes("svc-0")
    await register(api, "svc-9")
    after = await next_event(stream)
    assert '"service":"svc-9"' in str(after.data), "the four live copies were dropped"
    assert after.id not in {e.id for e in replayed}
    assert budget.held == 4 * entry_bytes("svc-0"), "svc-9 was never replayed: nothing recorded for it"
    await api.registry.deregister("svc-0-1")
    assert (await next_event(stream)).event == "deregistered"
    assert budget.held == 3 * entry_bytes("svc-0"), "svc-0's entry went with its first new event"
    await cast(AsyncGenerator[ServerSentEvent, None], stream).aclose()
    assert budget.held == 0


async def test_a_stream_replaying_more_services_than_its_budget_resets(
        parts: tuple[WatchApi, ChangeHub, PositionsBudget]) -> None:
    api, hub, budget = parts
    since = await api.registry.store.last_event_id()
    for n in range(5):
        await register(api, f"svc-{n}")
    stream = api._events(hub.subscribe(None), None, since)
    kinds = [(await next_event(stream)).event for _ in range(5)]
    assert kinds == ["registered"] * 4 + ["reset"], "five services to replay, room for four"
    with pytest.raises(StopAsyncIteration):
        await next_event(stream)
    assert budget.held == 0
