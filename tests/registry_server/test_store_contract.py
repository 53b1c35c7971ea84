"""One contract, two stores: the memory store and the Redis store behave the same."""

from __future__ import annotations

import asyncio
import time

import pytest

from registry_server.errors import InstanceConflictError
from registry_server.model import InstanceRegistration, InstanceStatus
from registry_server.store.base import InstanceStore
from tests.support.store_backend import StoreFactory

NOW = 1_795_000_000_000
TTL = 10_000


def reg(instance_id: str = "Auth-1", name: str = "Auth", **fields: object) -> InstanceRegistration:
    values: dict[str, object] = {"id": instance_id, "name": name, "host": "10.0.0.5", "port": 3001}
    values.update(fields)
    return InstanceRegistration(**values)  # type: ignore[arg-type]


async def test_register_creates_an_instance_that_reads_back_with_every_field(store: InstanceStore) -> None:
    result = await store.register(reg(version="1.0.0", description="d", metadata={"zone": "eu-1"},
                                      status=InstanceStatus.STARTING, scheme="https", health_endpoint="/hc"), NOW, TTL)
    assert result.created and not result.replaced_expired
    got = await store.get("Auth-1", NOW + 1)
    assert got == result.instance
    assert got is not None
    assert (got.name, got.host, got.port, got.scheme, got.health_endpoint, got.version, got.description,
            got.metadata, got.status) == ("Auth", "10.0.0.5", 3001, "https", "/hc", "1.0.0", "d",
                                          {"zone": "eu-1"}, InstanceStatus.STARTING)
    assert (got.registered_at_ms, got.last_heartbeat_ms, got.expires_at_ms) == (NOW, NOW, NOW + TTL)


async def test_reregistering_the_same_id_updates_in_place_and_keeps_registered_at(store: InstanceStore) -> None:
    await store.register(reg(version="1"), NOW, TTL)
    again = await store.register(reg(version="2"), NOW + 500, TTL)
    assert not again.created
    assert again.instance.registered_at_ms == NOW
    assert again.instance.expires_at_ms == NOW + 500 + TTL
    view = await store.service("Auth", NOW + 600)
    assert [i.version for i in view.instances] == ["2"]


async def test_revision_moves_on_membership_and_status_changes_only(store: InstanceStore) -> None:
    r1 = (await store.register(reg(), NOW, TTL)).revision
    same = (await store.register(reg(), NOW + 1, TTL)).revision
    assert same == r1, "an identical re-registration is not a change"
    plain = await store.heartbeat("Auth-1", None, NOW + 2, TTL)
    assert await store.revision("Auth") == r1, "a plain heartbeat is not a change"
    repeated = await store.heartbeat("Auth-1", InstanceStatus.UP, NOW + 3, TTL)
    assert await store.revision("Auth") == r1, "a heartbeat repeating the status is not a change"
    changed = await store.heartbeat("Auth-1", InstanceStatus.DOWN, NOW + 4, TTL)
    assert plain is not None and repeated is not None and changed is not None
    assert (plain.status_changed, repeated.status_changed, changed.status_changed) == (False, False, True)
    r2 = await store.revision("Auth")
    assert r2 > r1
    r3 = (await store.register(reg(version="9"), NOW + 5, TTL)).revision
    assert r3 > r2
    await store.deregister("Auth-1", NOW + 6)
    r4 = await store.revision("Auth")
    assert r4 > r3, "the last instance leaving still moves the revision"
    r5 = (await store.register(reg(), NOW + 7, TTL)).revision
    assert r5 > r4, "revisions never go backwards, also after the service emptied"


async def test_an_id_owned_by_another_service_is_a_conflict(store: InstanceStore) -> None:
    await store.register(reg("shared-id", "Auth"), NOW, TTL)
    with pytest.raises(InstanceConflictError) as info:
        await store.register(reg("shared-id", "User"), NOW, TTL)
    assert info.value.owner == "Auth"
    assert (await store.service("User", NOW)).instances == []


async def test_a_deregistered_id_may_be_registered_under_another_name(store: InstanceStore) -> None:
    await store.register(reg("x-1", "Auth"), NOW, TTL)
    assert await store.heartbeat("x-1", None, NOW + 1, TTL) is not None  # the id's service is now cached
    await store.deregister("x-1", NOW + 2)
    moved = await store.register(reg("x-1", "User"), NOW + 3, TTL)
    assert moved.created
    renewed = await store.heartbeat("x-1", None, NOW + 4, TTL)
    assert renewed is not None and renewed.instance.name == "User"


async def test_heartbeat_renews_the_lease_and_can_change_status(store: InstanceStore) -> None:
    await store.register(reg(), NOW, TTL)
    renewal = await store.heartbeat("Auth-1", InstanceStatus.DOWN, NOW + 4000, TTL)
    assert renewal is not None
    inst = renewal.instance
    assert (inst.status, inst.last_heartbeat_ms, inst.expires_at_ms) == (
        InstanceStatus.DOWN, NOW + 4000, NOW + 4000 + TTL)
    assert inst.registered_at_ms == NOW
    assert await store.get("Auth-1", NOW + TTL + 1000) is not None, "renewed past the first lease"


async def test_a_heartbeat_never_shortens_a_lease_given_since(store: InstanceStore) -> None:
    await store.register(reg(), NOW, TTL)
    long = await store.heartbeat("Auth-1", None, NOW + 1000, 3 * TTL)  # told to come back later
    assert long is not None and long.instance.expires_at_ms == NOW + 1000 + 3 * TTL
    late = await store.heartbeat("Auth-1", InstanceStatus.DOWN, NOW + 2000, TTL)  # sent before it, served after
    assert late is not None and late.instance.status is InstanceStatus.DOWN
    assert late.instance.expires_at_ms == NOW + 1000 + 3 * TTL, "the longer lease stands"
    assert await store.get("Auth-1", NOW + 2 * TTL) is not None


async def test_heartbeat_for_unknown_or_expired_ids_is_none(store: InstanceStore) -> None:
    assert await store.heartbeat("nobody", None, NOW, TTL) is None
    await store.register(reg(), NOW, TTL)
    assert await store.heartbeat("Auth-1", None, NOW + TTL, TTL) is None, "the lease ran out at NOW+TTL"


async def test_reads_never_return_an_expired_instance_before_the_sweep(store: InstanceStore) -> None:
    await store.register(reg("a-1", version="1"), NOW, TTL)
    await store.register(reg("a-2"), NOW + 5000, TTL)
    later = NOW + TTL  # a-1 expired exactly now, a-2 is live
    assert await store.get("a-1", later) is None
    assert [i.id for i in (await store.service("Auth", later)).instances] == ["a-2"]
    assert [i.id for i in await store.all_instances(later)] == ["a-2"]
    [summary] = await store.services(later)
    assert (summary.name, summary.instances, summary.statuses) == ("Auth", 1, {"UP": 1})
    assert await store.services(NOW + 5000 + TTL) == [], "a service with only expired instances is not listed"


async def test_deregister_removes_a_live_instance_once(store: InstanceStore) -> None:
    await store.register(reg(), NOW, TTL)
    gone = await store.deregister("Auth-1", NOW + 1)
    assert gone is not None and gone.id == "Auth-1"
    assert await store.deregister("Auth-1", NOW + 2) is None
    assert await store.get("Auth-1", NOW + 2) is None
    assert await store.services(NOW + 2) == []


async def test_deregister_leaves_an_expired_instance_to_the_sweeper(store: InstanceStore) -> None:
    await store.register(reg(), NOW, TTL)
    assert await store.deregister("Auth-1", NOW + TTL) is None
    assert [i.id for i in await store.expire(NOW + TTL, 100)] == ["Auth-1"]


async def test_lists_are_sorted_by_id(store: InstanceStore) -> None:
    for iid, name in [("c", "Auth"), ("a", "User"), ("b", "Auth"), ("d", "User")]:
        await store.register(reg(iid, name), NOW, TTL)
    assert [i.id for i in await store.all_instances(NOW)] == ["a", "b", "c", "d"]
    assert [i.id for i in (await store.service("Auth", NOW)).instances] == ["b", "c"]
    assert [s.name for s in await store.services(NOW)] == ["Auth", "User"]


async def test_service_summaries_count_instances_by_status(store: InstanceStore) -> None:
    await store.register(reg("a", status=InstanceStatus.UP), NOW, TTL)
    await store.register(reg("b", status=InstanceStatus.UP), NOW, TTL)
    await store.register(reg("c", status=InstanceStatus.DOWN), NOW, TTL)
    await store.heartbeat("b", InstanceStatus.STOPPING, NOW + 1, TTL)
    [summary] = await store.services(NOW + 2)
    assert summary.instances == 3
    assert summary.statuses == {"DOWN": 1, "STOPPING": 1, "UP": 1}


async def test_expire_removes_only_leases_that_ran_out(store: InstanceStore) -> None:
    await store.register(reg("old"), NOW, TTL)
    await store.register(reg("new"), NOW + 3000, TTL)
    removed = await store.expire(NOW + TTL, 100)
    assert [i.id for i in removed] == ["old"]
    assert [i.id for i in (await store.service("Auth", NOW + TTL)).instances] == ["new"]
    assert await store.expire(NOW + TTL, 100) == []


async def test_expire_respects_its_batch_limit_per_service(store: InstanceStore) -> None:
    for n in range(5):
        await store.register(reg(f"i-{n}"), NOW, TTL)
    first = await store.expire(NOW + TTL, 3)
    second = await store.expire(NOW + TTL, 3)
    assert (len(first), len(second)) == (3, 2)
    assert sorted(i.id for i in first + second) == [f"i-{n}" for n in range(5)]


async def test_concurrent_sweepers_remove_each_expired_instance_exactly_once(store_factory: StoreFactory) -> None:
    replicas = [store_factory() for _ in range(3)]
    for n in range(60):
        await replicas[n % 3].register(reg(f"i-{n:02d}", "Auth" if n % 2 else "User"), NOW, TTL)
    results = await asyncio.gather(*(r.expire(NOW + TTL, 7) for r in replicas for _ in range(4)))
    removed = [inst.id for batch in results for inst in batch]
    while True:  # whatever the batches left behind
        more = await replicas[0].expire(NOW + TTL, 100)
        if not more:
            break
        removed.extend(i.id for i in more)
    assert sorted(removed) == [f"i-{n:02d}" for n in range(60)]


async def test_reregistering_after_an_unswept_expiry_reports_it(store: InstanceStore) -> None:
    await store.register(reg(), NOW, TTL)
    result = await store.register(reg(), NOW + TTL + 1, TTL)
    assert result.created and result.replaced_expired
    assert result.instance.registered_at_ms == NOW + TTL + 1
    assert await store.expire(NOW + TTL + 2, 100) == [], "the replaced instance is not expired twice"


async def test_replicas_see_each_others_writes(store_factory: StoreFactory) -> None:
    a, b = store_factory(), store_factory()
    await a.register(reg(), NOW, TTL)
    assert await b.heartbeat("Auth-1", InstanceStatus.DOWN, NOW + 1, TTL) is not None
    got = await a.get("Auth-1", NOW + 2)
    assert got is not None and got.status is InstanceStatus.DOWN
    assert await b.deregister("Auth-1", NOW + 3) is not None
    assert await a.get("Auth-1", NOW + 4) is None


async def test_each_change_appends_one_event_in_order_and_heartbeats_append_none(store: InstanceStore) -> None:
    start = await store.last_event_id()
    await store.register(reg("a"), NOW, TTL)
    await store.register(reg("a"), NOW + 1, TTL)  # no change: no event
    await store.heartbeat("a", None, NOW + 2, TTL)  # plain heartbeat: no event
    await store.heartbeat("a", InstanceStatus.DOWN, NOW + 3, TTL)
    await store.register(reg("a", version="2", status=InstanceStatus.DOWN), NOW + 4, TTL)
    await store.register(reg("a", version="2", status=InstanceStatus.UP), NOW + 5, TTL)
    await store.deregister("a", NOW + 6)
    await store.register(reg("b"), NOW + 7, TTL)
    await store.expire(NOW + 7 + TTL, 100)
    events = await store.read_events(start)
    assert [(e.type.value, e.instance.id) for e in events] == [
        ("registered", "a"), ("status_changed", "a"), ("updated", "a"), ("status_changed", "a"),
        ("deregistered", "a"), ("registered", "b"), ("expired", "b")]
    revisions = [e.revision for e in events]
    assert revisions == sorted(revisions)
    assert len(set(revisions)) == len(revisions), "each of these changes moved the revision"
    assert events[-1].revision == await store.revision("Auth")
    assert events[1].instance.status is InstanceStatus.DOWN
    assert events[2].instance.version == "2"
    assert all(e.service == "Auth" for e in events)
    assert await store.last_event_id() == events[-1].id
    assert await store.read_events(events[2].id) == events[3:]


async def test_every_replica_follows_changes_made_through_another(store_factory: StoreFactory) -> None:
    follower, writer = store_factory(), store_factory()
    changes = follower.changes()
    assert await asyncio.wait_for(anext(changes), 5) is None, "first: subscribed"
    await writer.register(reg("w"), NOW, TTL)
    await writer.heartbeat("w", InstanceStatus.DOWN, NOW + 1, TTL)
    first_notice = await asyncio.wait_for(anext(changes), 5)
    second_notice = await asyncio.wait_for(anext(changes), 5)
    assert first_notice is not None
    assert second_notice is not None
    assert (first_notice.service, second_notice.service) == ("Auth", "Auth"), "the service, before any event is built"
    first, second = first_notice.event, second_notice.event
    assert [(first.type.value, first.instance.id), (second.type.value, second.instance.status)] == [
        ("registered", "w"), ("status_changed", InstanceStatus.DOWN)]
    assert await follower.read_events(first.id) == [second], "the live feed and the history agree"
    await changes.aclose()


async def test_a_sweep_removing_many_is_followed_event_by_event_in_history_order(
        store_factory: StoreFactory) -> None:
    follower, writer = store_factory(), store_factory()
    changes = follower.changes()
    assert await asyncio.wait_for(anext(changes), 5) is None, "first: subscribed"
    for n in range(30):
        await writer.register(reg(f"m-{n:02d}", name="Many" if n % 3 else "Other"), NOW, TTL)
    start = await follower.last_event_id()
    assert len(await writer.expire(NOW + TTL, 1000)) == 30
    followed = []
    while len(followed) < 60:  # 30 registrations, then 30 expiries
        notice = await asyncio.wait_for(anext(changes), 5)
        assert notice is not None
        assert notice.event.service == notice.service
        followed.append(notice.event)
    expired = [e for e in followed if e.type.value == "expired"]  # across services, a Cluster's shards interleave
    assert sorted(e.instance.id for e in expired) == [f"m-{n:02d}" for n in range(30)]
    history = await follower.read_events(start)
    for service in ("Many", "Other"):
        assert [e for e in expired if e.service == service] == [e for e in history if e.service == service], (
            "each service's events arrive as its history has them")
    await changes.aclose()


async def test_an_expiry_over_a_replaced_lease_is_recorded_before_the_new_registration(store: InstanceStore) -> None:
    start = await store.last_event_id()
    await store.register(reg(), NOW, TTL)
    await store.register(reg(), NOW + TTL, TTL)
    assert [e.type.value for e in await store.read_events(start)] == ["registered", "expired",
                                                                                  "registered"]


async def test_history_is_complete_until_trimmed_and_not_after_a_reset(small_history_store: InstanceStore) -> None:
    store = small_history_store
    first = await store.last_event_id()
    assert await store.history_complete(first)
    for n in range(300):
        await store.register(reg(f"i-{n}"), NOW, TTL)
    newest = await store.last_event_id()
    assert await store.history_complete(newest)
    assert not await store.history_complete(first), "older events were trimmed"
    ms = newest.partition("-")[0]
    assert not await store.history_complete(f"{int(ms) + 10**9}-0"), "an id from a newer (reset) history"


async def test_extending_leases_after_an_outage_covers_only_those_live_when_it_began(store: InstanceStore) -> None:
    await store.register(reg("gone-before"), NOW - TTL - 1, TTL)  # expired before the outage began
    await store.register(reg("live-at-start"), NOW - 5000, TTL)  # expires during the outage
    await store.register(reg("long-lease"), NOW, 100 * TTL)  # outlives the extension
    outage_began, back = NOW, NOW + 2 * TTL
    extended = await store.extend_leases(outage_began, back + TTL)
    assert extended == 1
    assert await store.get("gone-before", back) is None
    survivor = await store.get("live-at-start", back)
    assert survivor is not None
    assert survivor.expires_at_ms == back + TTL
    long_lease = await store.get("long-lease", back)
    assert long_lease is not None
    assert long_lease.expires_at_ms == NOW + 100 * TTL, "extension never shortens a lease"
    assert await store.extend_leases(outage_began, back + TTL) == 0, "idempotent"
    assert [i.id for i in await store.expire(back, 100)] == ["gone-before"]


async def test_extending_leases_can_spare_those_whose_owner_was_not_heard_lately(store: InstanceStore) -> None:
    """An overload holds the leases of instances heard lately only: a dead one is no longer held."""
    await store.register(reg("silent"), NOW, TTL)
    await store.register(reg("renewed"), NOW, TTL)
    await store.heartbeat("renewed", None, NOW + 5000, TTL)
    await store.register(reg("late-comer"), NOW + 6000, TTL)
    extended = await store.extend_leases(NOW, NOW + 3 * TTL, heard_since_ms=NOW + 5000)
    assert extended == 2
    for kept in ("renewed", "late-comer"):
        found = await store.get(kept, NOW + 2 * TTL)
        assert found is not None and found.expires_at_ms == NOW + 3 * TTL
    silent = await store.get("silent", NOW)
    assert silent is not None and silent.expires_at_ms == NOW + TTL, "not heard since: its lease is left as it was"
    assert [i.id for i in await store.expire(NOW + TTL, 100)] == ["silent"]


async def test_lease_tokens_guard_renewal_removal_and_reregistration(store: InstanceStore) -> None:
    from registry_server.errors import LeaseTokenError
    from registry_server.model import lease_token_hash

    own, other = lease_token_hash("own-token-0123456789"), lease_token_hash("other-token-0123456789")
    await store.register(reg(lease_token_hash=own), NOW, TTL)
    for presented in (other, ""):
        with pytest.raises(LeaseTokenError):
            await store.heartbeat("Auth-1", None, NOW + 1, TTL, lease_token_hash=presented)
        with pytest.raises(LeaseTokenError):
            await store.deregister("Auth-1", NOW + 1, lease_token_hash=presented)
        with pytest.raises(LeaseTokenError):
            await store.register(reg(lease_token_hash=presented), NOW + 1, TTL, lease_token_hash=presented)
    assert await store.heartbeat("Auth-1", None, NOW + 2, TTL, lease_token_hash=own) is not None
    assert await store.heartbeat("Auth-1", None, NOW + 3, TTL) is not None, "None: the admin"
    assert (await store.register(reg(lease_token_hash=other), NOW + 4, TTL, lease_token_hash=own)).created is False
    assert await store.deregister("Auth-1", NOW + 5, lease_token_hash=other) is not None, "the token was replaced"


async def test_the_fleet_mark_reports_a_stale_mark_to_exactly_one_of_the_replicas_that_move_it(
        store_factory: StoreFactory) -> None:
    first, second = store_factory(), store_factory()
    assert await first.mark_alive(NOW, 3000) is None, "no mark yet: nothing to extend"
    assert await second.mark_alive(NOW + 1000, 3000) is None, "fresh"
    assert await first.mark_alive(NOW + 10_000, 3000) == NOW + 1000, "stale: this caller extends"
    assert await second.mark_alive(NOW + 10_001, 3000) is None, "the other replica finds it moved on"
    assert await second.mark_alive(NOW + 5000, 3000) is None, "a clock behind never moves the mark back"
    assert await first.mark_alive(NOW + 12_000, 3000) is None, "the mark stayed at the later clock"


# Retention: stream ids of the Redis store follow Redis's clock, so these tests run at the real time.

async def _churn(store: InstanceStore, name: str, now: int, times: int) -> int:
    """Register and deregister one instance of ``name`` ``times`` times; the revision it ends at."""
    for i in range(times):
        await store.register(reg(f"{name}-{i}", name), now + i, TTL)
        await store.deregister(f"{name}-{i}", now + i)
    return await store.revision(name)


async def test_a_service_without_instances_for_the_retention_is_dropped_and_no_sooner(store: InstanceStore) -> None:
    now = int(time.time() * 1000)
    await _churn(store, "Gone", now, 2)
    await store.register(reg("Kept-1", "Kept"), now, 60_000)
    assert await store.drop_idle(now + 500, 60_000) == []
    assert await store.drop_idle(now + 120_000, 60_000) == ["Gone"]
    assert await store.drop_idle(now + 120_000, 60_000) == []
    assert [s.name for s in await store.services(now + 1000)] == ["Kept"]


async def test_a_dropped_service_that_comes_back_never_goes_backwards(store: InstanceStore) -> None:
    now = int(time.time() * 1000)
    last = await _churn(store, "Back", now, 3)
    newest = await store.last_event_id()
    assert await store.drop_idle(now + 120_000, 60_000) == ["Back"]
    assert await store.revision("Back") >= last
    assert (await store.service("Back", now + 10)).revision >= last
    again = await store.register(reg("Back-9", "Back"), now + 10, TTL)
    assert again.revision > last
    events = await store.read_events(newest, count=10)
    assert [(e.service, e.revision > last) for e in events] == [("Back", True)]
    assert [s.name for s in await store.services(now + 20)] == ["Back"]


async def test_a_new_name_after_a_drop_starts_above_every_dropped_revision(store_factory: StoreFactory) -> None:
    now = int(time.time() * 1000)
    first, second = store_factory(), store_factory()
    last = await _churn(first, "Old", now, 4)
    assert await first.drop_idle(now + 120_000, 60_000) == ["Old"]
    assert await second.drop_idle(now + 120_000, 60_000) == []  # each name is dropped by one replica
    assert (await second.register(reg("New-1", "New"), now + 10, TTL)).revision > last


async def test_a_service_with_a_live_or_unswept_instance_is_never_dropped(store: InstanceStore) -> None:
    now = int(time.time() * 1000)
    await store.register(reg("Live-1", "Live"), now, 1_000)
    assert await store.drop_idle(now + 120_000, 60_000) == []  # its lease ran out but no sweep removed it
    assert [s.name for s in await store.services(now)] == ["Live"]


async def test_a_service_emptied_by_a_sweep_is_dropped_and_one_that_came_back_is_kept(store: InstanceStore) -> None:
    now = int(time.time() * 1000)
    await store.register(reg("Lapsed-1", "Lapsed"), now, 1_000)
    assert [gone.id for gone in await store.expire(now + 2_000, 100)] == ["Lapsed-1"]
    await _churn(store, "Back", now, 1)
    await store.register(reg("Back-9", "Back"), now + 10, 200_000)  # back after it was left empty
    assert [s.name for s in await store.services(now + 20)] == ["Back"]
    assert await store.drop_idle(now + 120_000, 60_000) == ["Lapsed"]
    assert await store.drop_idle(now + 120_000, 60_000) == []
    assert [s.name for s in await store.services(now + 30)] == ["Back"]
    await store.deregister("Back-9", now + 40)
    assert await store.drop_idle(now + 120_000, 60_000) == ["Back"]


async def test_the_events_of_a_service_left_empty_are_still_replayed(store: InstanceStore) -> None:
    now = int(time.time() * 1000)
    start = await store.last_event_id()
    await _churn(store, "Quiet", now, 1)
    events = await store.read_events(start, count=10)
    assert [(e.service, e.type.value) for e in events] == [("Quiet", "registered"), ("Quiet", "deregistered")]
    assert await store.last_event_id() == events[-1].id
    assert await store.history_complete(start)


async def test_a_registration_racing_the_last_deregistration_is_never_unlisted(store_factory: StoreFactory) -> None:
    now = int(time.time() * 1000)
    first, second = store_factory(), store_factory()
    names = [f"Race{n}" for n in range(30)]

    async def register_after(round_trips: int, name: str) -> None:
        for _ in range(round_trips):  # each a round trip to the store: the registration lands at another step
            await second.ping()
        await second.register(reg(f"{name}-b", name), now, TTL)

    for n, name in enumerate(names):  # the service is set aside as its last instance leaves, while another registers
        await first.register(reg(f"{name}-a", name), now, TTL)
        await asyncio.gather(first.deregister(f"{name}-a", now), register_after(n % 10, name))
    assert [s.name for s in await first.services(now + 1)] == sorted(names)
    gone = await second.expire(now + TTL, 1000)  # and every sweep still finds them
    assert sorted(g.id for g in gone) == sorted(f"{name}-b" for name in names)
