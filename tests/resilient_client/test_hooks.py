import logging

import pytest
from prometheus_client import CollectorRegistry

from resilient_client import (
    BreakerConfig,
    ClientConfig,
    ConnectError,
    ManagerConfig,
    ResilientClient,
    ServiceRegistryManager,
)
from resilient_client.hooks import (
    BreakerState,
    BreakerStateChanged,
    DiscoveryLookedUp,
    DiscoveryResult,
    Event,
    FailedOver,
    HeartbeatOutcome,
    HeartbeatSent,
    Hook,
    RegistrationAttempted,
    RegistrationOutcome,
    RequestFinished,
    RequestOutcome,
    Retried,
)
from tests.support.client_fake_registry import FakeRegistry
from tests.support.client_fakes import FakeClock, ScriptedTransport, StaticDiscovery, fail, instance, respond
from tests.support.polling import async_wait_until


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def _calls(hooks: list[Hook], registry: CollectorRegistry) -> None:
    transport = ScriptedTransport()
    transport.behaviours[7002] = respond(500)
    discovery = StaticDiscovery({"User": [instance("User", port) for port in (7001, 7002)]})
    client = ResilientClient(discovery, transport=transport, clock=FakeClock(), metrics_registry=registry,
                             hooks=hooks)
    for _ in range(4):
        await client.get("User", "/")


async def test_a_hook_receives_every_calls_request_finished_and_the_metrics_count_them_too() -> None:
    seen: list[Event] = []
    registry = CollectorRegistry()
    await _calls([seen.append], registry)
    assert [event for event in seen if isinstance(event, RequestFinished)] == [
        RequestFinished("User", outcome, 0.0)
        for outcome in (RequestOutcome.SUCCESS, RequestOutcome.FAILURE) * 2]
    assert sample(registry, "resilient_client_requests_total", service="User", outcome="success") == 2
    assert sample(registry, "resilient_client_requests_total", service="User", outcome="failure") == 2


async def test_without_hooks_the_metrics_still_count_every_call() -> None:
    registry = CollectorRegistry()
    await _calls([], registry)
    assert sample(registry, "resilient_client_requests_total", service="User", outcome="success") == 2
    assert sample(registry, "resilient_client_requests_total", service="User", outcome="failure") == 2
    assert sample(registry, "resilient_client_request_duration_seconds_count", service="User") == 4


async def test_a_failing_hook_is_logged_and_the_call_and_the_other_hooks_go_on(
        caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Event] = []

    def broken(event: Event) -> None:
        raise ZeroDivisionError

    registry = CollectorRegistry()
    with caplog.at_level(logging.ERROR):
        await _calls([broken, seen.append], registry)
    assert len([event for event in seen if isinstance(event, RequestFinished)]) == 4
    assert any("hook" in record.getMessage() and record.exc_info for record in caplog.records)
    assert sample(registry, "resilient_client_requests_total", service="User", outcome="success") == 2


async def test_hooks_see_failovers_retries_and_breaker_changes_as_frozen_events() -> None:
    seen: list[Event] = []
    clock = FakeClock()
    transport = ScriptedTransport({7001: fail(ConnectError("refused")), 7002: respond(503)})
    discovery = StaticDiscovery({"User": [instance("User", port) for port in (7001, 7002)]})
    client = ResilientClient(discovery, transport=transport, clock=clock, metrics=False, hooks=[seen.append],
                             config=ClientConfig(max_passes=2, breaker=BreakerConfig(fail_max=1)))
    assert (await client.get("User", "/")).status == 503
    assert FailedOver("User", "127.0.0.1:7001") in seen
    assert [type(event) for event in seen if isinstance(event, Retried)] == [Retried]
    opened = [event for event in seen if isinstance(event, BreakerStateChanged) and event.transition]
    assert [(event.instance, event.state) for event in opened] == [("127.0.0.1:7001", BreakerState.OPEN),
                                                                   ("127.0.0.1:7002", BreakerState.OPEN)]
    with pytest.raises(AttributeError):
        seen[0].service = "other"  # type: ignore[misc]


async def test_a_managers_hooks_see_its_registrations_heartbeats_and_lookups() -> None:
    seen: list[Event] = []
    fake = await FakeRegistry().start()
    try:
        fake.add("User", 7001)
        config = ManagerConfig(registry_urls=(fake.url,), host="127.0.0.1", port=4000, heartbeat_interval_ms=60_000)
        async with ServiceRegistryManager(config=config, metrics=False, watch=False, hooks=[seen.append]) as manager:
            await manager.register("Auth", 3001)
            await async_wait_until(lambda: _any(seen, HeartbeatSent), message="first heartbeat")
            await manager.discover_services("User")
            await manager.discover_services("User")
    finally:
        await fake.stop()
    assert RegistrationAttempted("Auth", RegistrationOutcome.OK) in seen
    assert HeartbeatSent("Auth", HeartbeatOutcome.OK) in seen
    assert [event for event in seen if isinstance(event, DiscoveryLookedUp)] == [
        DiscoveryLookedUp("User", DiscoveryResult.MISS), DiscoveryLookedUp("User", DiscoveryResult.HIT)]


async def _any(seen: list[Event], kind: type) -> bool:
    return any(isinstance(event, kind) for event in seen)
