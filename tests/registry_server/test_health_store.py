"""Health state and the shared check schedule: one contract, both stores."""

from __future__ import annotations

import asyncio

from registry_server.model import (
    ChangeEvent,
    EventType,
    Health,
    HealthCheckSpec,
    HealthStatus,
    InstanceRegistration,
    InstanceStatus,
)
from registry_server.store.base import InstanceStore
from tests.support.store_backend import StoreFactory

NOW = 1_795_000_000_000
TTL = 60_000


def reg(instance_id: str = "Pay-1", **fields: object) -> InstanceRegistration:
    values: dict[str, object] = {"id": instance_id, "name": "Pay", "host": "10.0.0.5", "port": 3001,
                                 "health_check": HealthCheckSpec(5.0, 2.0, 2)}
    values.update(fields)
    return InstanceRegistration(**values)  # type: ignore[arg-type]


async def fail(store: InstanceStore, at_ms: int, instance_id: str = "Pay-1", *, deregister_after_ms: int = 0) -> object:
    return await store.record_health("Pay", instance_id, False, "HTTP 500", at_ms, failures=2,
                                      deregister_after_ms=deregister_after_ms)


async def test_a_registered_instance_is_unchecked_and_keeps_what_it_asked_for(store: InstanceStore) -> None:
    await store.register(reg(), NOW, TTL)
    got = await store.get("Pay-1", NOW + 1)
    assert got is not None
    assert got.health.status is HealthStatus.UNCHECKED and got.health.checked_at_ms is None
    assert got.health_check == HealthCheckSpec(5.0, 2.0, 2)
    await store.register(reg("Pay-2", health_check=False), NOW, TTL)
    opted_out = await store.get("Pay-2", NOW + 1)
    assert opted_out is not None and opted_out.health_check is False


async def test_failures_in_a_row_make_it_critical_and_down_as_one_change(store: InstanceStore) -> None:
    await store.register(reg(), NOW, TTL)
    before = await store.revision("Pay")
    first = await fail(store, NOW + 1)
    assert first is not None
    assert first.instance.status is InstanceStatus.UP and first.transition is None, "one failure is not enough"
    assert await store.revision("Pay") == before, "a failure below the threshold changes nothing readers see"
    second = await fail(store, NOW + 2)
    assert second is not None and second.transition is HealthStatus.CRITICAL and not second.deregistered
    view = await store.service("Pay", NOW + 3)
    (inst,) = view.instances
    assert inst.status is InstanceStatus.DOWN
    assert (inst.health.status, inst.health.checked_at_ms, inst.health.output) == (
        HealthStatus.CRITICAL, NOW + 2, "HTTP 500")
    assert view.revision == before + 1
    events = await store.read_events("0-0")
    assert (events[-1].type, events[-1].instance.status) == (EventType.STATUS_CHANGED, InstanceStatus.DOWN)
    (summary,) = await store.services(NOW + 3)
    assert summary.statuses == {"DOWN": 1}


async def test_its_own_heartbeat_cannot_bring_back_a_critical_instance(store: InstanceStore) -> None:
    await store.register(reg(), NOW, TTL)
    await fail(store, NOW + 1)
    await fail(store, NOW + 2)
    renewal = await store.heartbeat("Pay-1", InstanceStatus.UP, NOW + 3, TTL)
    assert renewal is not None and renewal.instance.status is InstanceStatus.DOWN and not renewal.status_changed
    assert renewal.instance.health.status is HealthStatus.CRITICAL
    again = await store.register(reg(), NOW + 4, TTL)
    assert again.instance.status is InstanceStatus.DOWN, "registering the same again does not clear the finding"


async def test_a_passing_check_restores_the_status_it_last_reported(store: InstanceStore) -> None:
    await store.register(reg(), NOW, TTL)
    await fail(store, NOW + 1)
    await fail(store, NOW + 2)
    await store.heartbeat("Pay-1", InstanceStatus.STARTING, NOW + 3, TTL)
    rev = await store.revision("Pay")
    passed = await store.record_health("Pay", "Pay-1", True, "HTTP 200", NOW + 4, failures=2, deregister_after_ms=0)
    assert passed is not None and passed.transition is HealthStatus.PASSING
    got = await store.get("Pay-1", NOW + 5)
    assert got is not None
    assert (got.status, got.health.status) == (InstanceStatus.STARTING, HealthStatus.PASSING)
    assert await store.revision("Pay") == rev + 1
    again = await store.record_health("Pay", "Pay-1", True, "HTTP 200", NOW + 6, failures=2, deregister_after_ms=0)
    assert again is not None and again.transition is None, "passing again is no transition"


async def test_registering_another_document_starts_the_checks_afresh(store: InstanceStore) -> None:
    await store.register(reg(), NOW, TTL)
    await fail(store, NOW + 1)
    await fail(store, NOW + 2)
    moved = await store.register(reg(port=3002), NOW + 3, TTL)
    assert (moved.instance.status, moved.instance.health.status) == (InstanceStatus.UP, HealthStatus.UNCHECKED)
    got = await store.get("Pay-1", NOW + 4)
    assert got is not None and got.health.status is HealthStatus.UNCHECKED


async def test_critical_for_longer_than_the_setting_deregisters_it(store: InstanceStore) -> None:
    await store.register(reg(), NOW, TTL)
    await fail(store, NOW + 1, deregister_after_ms=10_000)
    await fail(store, NOW + 2, deregister_after_ms=10_000)
    early = await fail(store, NOW + 5_000, deregister_after_ms=10_000)
    assert early is not None and not early.deregistered
    late = await fail(store, NOW + 10_002, deregister_after_ms=10_000)
    assert late is not None and late.deregistered
    assert await store.get("Pay-1", NOW + 10_003) is None
    assert (await store.read_events("0-0"))[-1].type is EventType.DEREGISTERED
    assert await store.register(reg(), NOW + 10_004, TTL) is not None, "its id is free again"


def shown(event: ChangeEvent) -> tuple[str, str, Health]:
    return event.type.value, event.instance.status.value, event.instance.health


async def test_events_show_the_instance_with_its_health_in_history_and_live(store_factory: StoreFactory) -> None:
    follower, store = store_factory(), store_factory()
    changes = follower.changes()
    assert await asyncio.wait_for(anext(changes), 5) is None, "first: subscribed"
    await store.register(reg(), NOW, TTL)
    start = await store.last_event_id()
    await fail(store, NOW + 1)
    await fail(store, NOW + 2)
    await store.heartbeat("Pay-1", InstanceStatus.STARTING, NOW + 3, TTL)  # kept for later: no change
    await store.record_health("Pay", "Pay-1", True, "HTTP 200", NOW + 4, failures=2, deregister_after_ms=0)
    await store.heartbeat("Pay-1", InstanceStatus.UP, NOW + 5, TTL)
    await store.deregister("Pay-1", NOW + 6)
    expected = [
        ("status_changed", "DOWN", Health(HealthStatus.CRITICAL, NOW + 2, "HTTP 500")),
        ("status_changed", "STARTING", Health(HealthStatus.PASSING, NOW + 4, "HTTP 200")),
        ("status_changed", "UP", Health(HealthStatus.PASSING, NOW + 4, "HTTP 200")),
        ("deregistered", "UP", Health(HealthStatus.PASSING, NOW + 4, "HTTP 200")),
    ]
    assert [shown(e) for e in await store.read_events(start)] == expected
    live = []
    while len(live) < 5:
        notice = await asyncio.wait_for(anext(changes), 5)
        assert notice is not None
        live.append(notice.event)
    assert shown(live[0]) == ("registered", "UP", Health()), "not checked yet"
    assert [shown(e) for e in live[1:]] == expected, "the live feed carries what the history holds"
    assert live[1].instance.to_json()["health"] == {
        "status": "critical", "checked_at": "2026-11-18T11:06:40.002Z", "output": "HTTP 500"}


async def test_a_transition_is_a_change_even_when_the_status_shown_stays(store: InstanceStore) -> None:
    await store.register(reg(status=InstanceStatus.DOWN), NOW, TTL)
    before, start = await store.revision("Pay"), await store.last_event_id()
    await fail(store, NOW + 1)
    second = await fail(store, NOW + 2)
    assert second is not None and second.transition is HealthStatus.CRITICAL
    assert await store.revision("Pay") == before + 1
    (event,) = await store.read_events(start)
    assert shown(event) == ("status_changed", "DOWN", Health(HealthStatus.CRITICAL, NOW + 2, "HTTP 500"))


async def test_an_expired_critical_instance_leaves_with_what_its_checks_found(store: InstanceStore) -> None:
    await store.register(reg(), NOW, TTL)
    await fail(store, NOW + 1)
    await fail(store, NOW + 2)
    start = await store.last_event_id()
    assert [e.id for e in await store.expire(NOW + TTL, 10)] == ["Pay-1"]
    (event,) = await store.read_events(start)
    assert shown(event) == ("expired", "DOWN", Health(HealthStatus.CRITICAL, NOW + 2, "HTTP 500"))


async def test_a_check_of_an_instance_gone_records_nothing(store: InstanceStore) -> None:
    assert await fail(store, NOW) is None


async def test_each_due_check_goes_to_one_replica_until_its_hold_ends(store_factory: StoreFactory) -> None:
    one, two = store_factory(), store_factory()
    for n in range(6):
        await one.schedule_health_check("Pay", f"Pay-{n}", NOW + n)
    await one.schedule_health_check("Pay", "Pay-0", NOW + 99_999)  # already scheduled: kept
    first = await one.claim_health_checks(NOW + 3, 2_000, 10)
    second = await two.claim_health_checks(NOW + 5, 2_000, 10)
    assert sorted(first) == [("Pay", f"Pay-{n}") for n in range(4)]
    assert sorted(second) == [("Pay", "Pay-4"), ("Pay", "Pay-5")]
    assert await two.claim_health_checks(NOW + 1_000, 2_000, 10) == [], "held by their claimers"
    await one.reschedule_health_check("Pay", "Pay-0", NOW + 5_000)
    await one.unschedule_health_check("Pay", "Pay-1")
    await one.reschedule_health_check("Pay", "Pay-1", NOW)  # unscheduled: stays so
    after_hold = await two.claim_health_checks(NOW + 2_004, 2_000, 10)
    assert sorted(after_hold) == [("Pay", "Pay-2"), ("Pay", "Pay-3")], "a claimer that never came back"
    rest = await one.claim_health_checks(NOW + 5_000, 2_000, 10)
    assert sorted(rest) == [("Pay", f"Pay-{n}") for n in (0, 2, 3, 4, 5)], "rescheduled, and the holds ended"


async def test_a_claim_first_reschedules_the_checks_its_caller_finished(store_factory: StoreFactory) -> None:
    one, two = store_factory(), store_factory()
    for n in range(3):
        await one.schedule_health_check("Pay", f"Pay-{n}", NOW)
    assert len(await one.claim_health_checks(NOW, 2_000, 10)) == 3
    await one.unschedule_health_check("Pay", "Pay-2")  # gone meanwhile: stays unscheduled
    done = [("Pay", "Pay-0", NOW + 5_000), ("Pay", "Pay-1", NOW + 1_000), ("Pay", "Pay-2", NOW + 1_000)]
    assert await one.claim_health_checks(NOW + 1_000, 60_000, 10, done=done) == [("Pay", "Pay-1")], (
        "rescheduled before the claim: due again at once")
    assert await two.claim_health_checks(NOW + 4_999, 2_000, 10) == [], "Pay-0 not before its next due time"
    assert await two.claim_health_checks(NOW + 5_000, 2_000, 10) == [("Pay", "Pay-0")]
    assert await one.claim_health_checks(NOW + 9_000, 2_000, 0, done=[("Pay", "Pay-0", NOW + 9_500)]) == [], (
        "a claim of none only hands back")
    assert await two.claim_health_checks(NOW + 9_500, 2_000, 10) == [("Pay", "Pay-0")]


async def test_get_many_reads_each_live_instance_of_its_service_together(store: InstanceStore) -> None:
    await store.register(reg("Pay-1"), NOW, TTL)
    await store.register(reg("Pay-2", port=3002), NOW, TTL)
    await store.register(reg("Pay-3"), NOW - TTL, TTL)  # its lease runs out at NOW
    got = await store.get_many([("Pay", "Pay-2"), ("Pay", "Pay-1"), ("Other", "Pay-1"), ("Pay", "nope"),
                                ("Pay", "Pay-3")], NOW)
    assert [(i.id, i.port) if i is not None else None for i in got] == [("Pay-2", 3002), ("Pay-1", 3001), None,
                                                                          None, None]
    assert await store.get_many([], NOW) == []
