import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from resilient_client import (
    ManagerConfig,
    RegistryRequestError,
    RegistryUnavailableError,
    ServiceRegistryManager,
    Status,
)
from tests.support.client_fake_registry import FakeRegistry
from tests.support.polling import async_wait_until
from tests.support.processes import free_port


@pytest.fixture
async def registry() -> AsyncIterator[FakeRegistry]:
    fake = await FakeRegistry().start()
    try:
        yield fake
    finally:
        await fake.stop()


def manager_for(*urls: str, heartbeat_ms: float = 60_000, retry_ms: float = 5, retries: int = 2,
                **overrides: object) -> ServiceRegistryManager:
    config = ManagerConfig(registry_urls=urls, heartbeat_interval_ms=heartbeat_ms, retry_delay_ms=retry_ms,
                           max_retries=retries, host="127.0.0.1", port=4000, request_timeout_ms=2000)
    return ServiceRegistryManager(config=config, metrics_registry=CollectorRegistry(), **overrides)  # type: ignore[arg-type]


async def test_register_sends_the_fields_and_a_client_chosen_id(registry: FakeRegistry) -> None:
    async with manager_for(registry.url) as manager:
        service_id = await manager.register("Auth", 3001, version="1.0.0", description="Authentication service")
        assert service_id is not None and service_id.startswith("Auth-")
        body = registry.requests("POST", "/instances")[0].body
        assert body["id"] == service_id
        assert (body["name"], body["port"], body["host"], body["version"]) == ("Auth", 3001, "127.0.0.1", "1.0.0")
        assert registry.instances[service_id]["description"] == "Authentication service"


async def test_a_failed_registration_is_retried_with_the_same_id(registry: FakeRegistry) -> None:
    registry.fail_registrations = 2
    async with manager_for(registry.url, retries=2) as manager:
        service_id = await manager.register("Auth", 3001)
        posts = registry.requests("POST", "/instances")
        assert len(posts) == 3
        assert {post.body["id"] for post in posts} == {service_id}
        assert list(registry.instances) == [service_id]


async def test_after_max_retries_register_returns_none_and_keeps_trying_in_the_background(
        registry: FakeRegistry) -> None:
    registry.fail_registrations = 4
    async with manager_for(registry.url, retries=1, heartbeat_ms=50) as manager:
        assert await manager.register("Auth", 3001) is None
        assert len(registry.requests("POST")) == 2
        await async_wait_until(lambda: _true(manager.registered), message="background registration")
        assert list(registry.instances) == [manager.instance_id]


async def _true(value: bool) -> bool:
    return value


async def test_a_heartbeat_follows_registration_at_once_and_carries_the_status(registry: FakeRegistry) -> None:
    async with manager_for(registry.url, heartbeat_ms=60_000) as manager:
        service_id = await manager.register("Auth", 3001)
        await async_wait_until(lambda: _true(bool(registry.requests("PUT"))), message="first heartbeat")
        beat = registry.requests("PUT")[0]
        assert beat.path == f"/instances/{service_id}/heartbeat"
        assert beat.body == {"status": "UP"}


async def test_heartbeats_repeat_every_interval(registry: FakeRegistry) -> None:
    async with manager_for(registry.url, heartbeat_ms=30) as manager:
        service_id = await manager.register("Auth", 3001)
        await async_wait_until(lambda: _true(len(registry.requests("PUT")) >= 4), message="four heartbeats")
        assert {beat.path for beat in registry.requests("PUT")} == {f"/instances/{service_id}/heartbeat"}


async def test_a_404_heartbeat_re_registers_at_once_with_the_same_id(registry: FakeRegistry) -> None:
    async with manager_for(registry.url, heartbeat_ms=30) as manager:
        service_id = await manager.register("Auth", 3001)
        await async_wait_until(lambda: _true(bool(registry.requests("PUT"))), message="first heartbeat")
        registry.forget_all()
        await async_wait_until(lambda: _true(service_id in registry.instances), message="re-registration")
        assert {post.body["id"] for post in registry.requests("POST")} == {service_id}


async def test_set_status_is_sent_at_once(registry: FakeRegistry) -> None:
    async with manager_for(registry.url) as manager:
        service_id = await manager.register("Auth", 3001)
        assert await manager.set_status("DOWN")
        assert registry.instances[str(service_id)]["status"] == "DOWN"
        assert manager.status is Status.DOWN


async def test_deregister_removes_the_instance_and_is_idempotent(registry: FakeRegistry) -> None:
    manager = manager_for(registry.url)
    await manager.register("Auth", 3001)
    await manager.deregister()
    await manager.deregister()
    assert registry.instances == {}
    assert len(registry.requests("DELETE")) == 1
    await manager.close()


async def test_deregister_accepts_a_registry_that_already_forgot_the_instance(registry: FakeRegistry) -> None:
    async with manager_for(registry.url) as manager:
        await manager.register("Auth", 3001)
        registry.forget_all()
        await manager.deregister()  # a 404 is taken as done: no error, no retry
        assert len(registry.requests("DELETE")) == 1
        assert not manager.registered


async def test_leaving_async_with_deregisters(registry: FakeRegistry) -> None:
    async with manager_for(registry.url) as manager:
        await manager.register("Auth", 3001)
        assert registry.instances
    assert registry.instances == {}


async def test_the_lease_token_and_auth_token_are_sent_back(registry: FakeRegistry) -> None:
    async with manager_for(registry.url, auth_token="s3cret") as manager:
        await manager.register("Auth", 3001)
        await manager.set_status("DOWN")
        token = manager.lease_token
        assert token is not None and 16 <= len(token) <= 256
        assert registry.requests("POST")[0].body["lease_token"] == token
        assert registry.requests("PUT")[-1].headers["X-Lease-Token"] == token
        assert all(seen.headers["Authorization"] == "Bearer s3cret" for seen in registry.seen)


async def test_a_refused_registration_raises_at_once(registry: FakeRegistry) -> None:
    registry.add("Other", 1, instance_id="taken")
    async with manager_for(registry.url) as manager:
        with pytest.raises(RegistryRequestError, match="409"):
            await manager.register("Auth", 3001, instance_id="taken")


async def test_the_next_registry_replica_is_used_when_the_first_is_down(registry: FakeRegistry) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with manager_for(dead, registry.url) as manager:
        assert await manager.register("Auth", 3001) is not None
        registry.add("User", 7001)
        assert [inst.port for inst in await manager.discover_services("User")] == [7001]


async def test_a_fresh_cached_answer_is_served_without_asking_the_registry_and_counted_as_a_hit(
        registry: FakeRegistry) -> None:
    registry.add("User", 7001)
    registry.add("User", 7002, status="DOWN")
    metrics = CollectorRegistry()
    config = ManagerConfig(registry_urls=(registry.url,), host="127.0.0.1", port=4000)
    async with ServiceRegistryManager(config=config, metrics_registry=metrics, watch=False) as manager:
        listed = await manager.discover_services("User")
        assert [inst.port for inst in listed] == [7001]  # UP instances only
        assert await manager.discover_services("User") == listed
        assert await manager.discover_services("User") == listed
        assert len(registry.requests("GET", "/services/User")) == 1
        assert metrics.get_sample_value("resilient_client_discovery_total",
                                        {"service": "User", "result": "miss"}) == 1
        assert metrics.get_sample_value("resilient_client_discovery_total",
                                        {"service": "User", "result": "hit"}) == 2


async def test_instances_hands_back_a_fresh_answer_at_once_and_an_awaitable_otherwise(
        registry: FakeRegistry) -> None:
    registry.add("User", 7001)
    async with manager_for(registry.url, watch=False) as manager:
        found = manager.instances("User")
        assert not isinstance(found, tuple)  # nothing cached yet: the registry is asked
        first = await found
        assert [inst.port for inst in first] == [7001]
        assert manager.instances("User") is first  # fresh: the cached tuple itself, nothing to await
        assert len(registry.requests("GET", "/services/User")) == 1


async def test_discovery_returns_up_instances_and_caches_them(registry: FakeRegistry) -> None:
    registry.add("User", 7001)
    registry.add("User", 7002, status="DOWN")
    async with manager_for(registry.url) as manager:
        first = await manager.discover_services("User")
        assert [(inst.port, inst.status) for inst in first] == [(7001, Status.UP)]
        assert await manager.discover_services("User") == first
        assert len(registry.requests("GET", "/services/User")) == 1
        assert len(await manager.discover_services("User", status=None)) == 2
        assert {inst.name for inst in await manager.discover_services()} == {"User"}


async def test_discovery_without_any_registry_and_no_cache_raises(registry: FakeRegistry) -> None:
    async with manager_for(f"http://127.0.0.1:{free_port()}") as manager:
        with pytest.raises(RegistryUnavailableError):
            await manager.discover_services("User")


async def test_discovery_serves_stale_when_every_registry_answers_5xx(registry: FakeRegistry) -> None:
    registry.add("User", 7001)
    config_ttl = {"cache_ttl": 1}
    async with manager_for(registry.url, **config_ttl) as manager:
        await manager.discover_services("User")
        registry.fail_everything = True
        await async_wait_until(lambda: _stale_served(manager), message="stale answer")


async def _stale_served(manager: ServiceRegistryManager) -> bool:
    return [inst.port for inst in await manager.discover_services("User")] == [7001]


def _lines(caplog: pytest.LogCaptureFixture, start: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.getMessage().startswith(start)]


async def test_an_unreachable_registry_is_logged_once_in_one_short_line_and_once_when_back(
        registry: FakeRegistry, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="resilient_client")
    metrics = CollectorRegistry()
    config = ManagerConfig(registry_urls=(registry.url,), heartbeat_interval_ms=30, retry_delay_ms=5, max_retries=2,
                           host="127.0.0.1", port=4000, request_timeout_ms=2000)

    def failed() -> float:
        return metrics.get_sample_value("resilient_client_heartbeats_total",
                                        {"service": "Auth", "outcome": "failed"}) or 0.0

    async with ServiceRegistryManager(config=config, metrics_registry=metrics) as manager:
        assert await manager.register("Auth", 3001) is not None
        await async_wait_until(lambda: _true(bool(registry.requests("PUT"))), message="first heartbeat")
        await registry.stop()  # connections refused from now on
        await async_wait_until(lambda: _true(failed() >= 3), message="three failed heartbeats")
        (down,) = _lines(caplog, "registry unreachable")
        assert "ConnectionKey" not in down and len(down) < 300 and registry.url in down, down
        assert _lines(caplog, "registry reachable again") == []

        await registry.start()
        await async_wait_until(lambda: _true(bool(_lines(caplog, "registry reachable again"))), message="back")
        assert len(_lines(caplog, "registry unreachable")) == 1
        assert len(_lines(caplog, "registry reachable again")) == 1


async def test_registering_the_same_instance_again_still_deregisters_it_when_the_new_attempt_fails(
        registry: FakeRegistry) -> None:
    manager = manager_for(registry.url, retries=0)
    service_id = await manager.register("Auth", 3001)
    registry.fail_registrations = 1
    assert await manager.register("Auth", 3001) is None  # same id, and the registry still holds it
    await manager.deregister()
    await manager.close()
    assert [seen.path for seen in registry.requests("DELETE")] == [f"/instances/{service_id}"]


class SleepLog:
    """The system clock, recording each sleep the manager asks for."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(min(seconds, 0.01))  # virtual waits: the test checks what was asked, not how long


class FixedRandom(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize("answer", ["503 overloaded", "200 paced"])
@pytest.mark.parametrize(("interval_ms", "wait_s"), [(2000, 7.25), (500, 7.125)])
async def test_a_heartbeat_answered_with_retry_after_waits_that_long_and_part_of_a_second_once(
        registry: FakeRegistry, answer: str, interval_ms: float, wait_s: float) -> None:
    """Retry-After counts whole seconds: the manager comes back at a random point of the next second (0.25 of
    it here), or of its interval if shorter, so that instances answered together do not come back together."""
    clock = SleepLog()
    registry.retry_after = "7"
    async with manager_for(registry.url, heartbeat_ms=interval_ms, clock=clock, rng=FixedRandom(0.25)) as manager:
        await manager.register("Auth", 3001)
        await async_wait_until(lambda: _true(bool(registry.requests("PUT"))), message="first heartbeat")
        clock.sleeps.clear()
        if answer == "503 overloaded":
            registry.shed_heartbeats = 1
        else:
            registry.pace_heartbeats = 1
        before = len(registry.requests("PUT"))
        await async_wait_until(lambda: _true(len(registry.requests("PUT")) >= before + 3), message="heartbeats on")
        interval_s = interval_ms / 1000
        assert [s for s in clock.sleeps if s != interval_s] == [wait_s], \
            f"the wait after the {answer} is the Retry-After and a part of a second: {clock.sleeps}"
        assert manager.registered, "the instance stays registered: nothing to register again"
