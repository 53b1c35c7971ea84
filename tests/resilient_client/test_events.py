from typing import Any

from prometheus_client import CollectorRegistry

from resilient_client import (
    DiscoveryLookedUp,
    DiscoveryResult,
    Event,
    EventBus,
    FailedOver,
    RequestFinished,
    RequestOutcome,
    ResilientClient,
    client_metrics,
)
from resilient_client.tallies import CountAndObserve
from tests.support.client_fakes import FakeClock, ScriptedTransport, StaticDiscovery, instance, respond


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_a_channel_reports_the_event_its_fields_make() -> None:
    seen: list[Event] = []
    bus = EventBus([seen.append])
    bus.channel(RequestFinished, "User", RequestOutcome.SUCCESS).fire(0.25)
    bus.channel(DiscoveryLookedUp, "User", DiscoveryResult.HIT).fire()
    assert seen == [RequestFinished("User", RequestOutcome.SUCCESS, 0.25),
                    DiscoveryLookedUp("User", DiscoveryResult.HIT)]


def test_a_channel_is_kept_per_event_type_and_fixed_fields() -> None:
    bus = EventBus()
    assert bus.channel(RequestFinished, "User", RequestOutcome.SUCCESS) is bus.channel(
        RequestFinished, "User", RequestOutcome.SUCCESS)
    assert bus.channel(RequestFinished, "User", RequestOutcome.FAILURE) is not bus.channel(
        RequestFinished, "User", RequestOutcome.SUCCESS)


def test_a_channel_nobody_listens_to_calls_no_subscriber() -> None:
    class OnlyFailovers:
        def __init__(self) -> None:
            self.seen: list[Event] = []

        def __call__(self, event: Event) -> None:
            self.seen.append(event)

        def handler_for(self, event_type: type) -> Any:
            return self.seen.append if event_type is FailedOver else None

    subscriber = OnlyFailovers()
    bus = EventBus([subscriber])
    bus.channel(RequestFinished, "User", RequestOutcome.SUCCESS).fire(0.1)
    bus.channel(FailedOver, "User").fire("h:1")
    assert subscriber.seen == [FailedOver("User", "h:1")]


def test_with_only_the_metrics_listening_a_channel_updates_the_series_directly() -> None:
    registry = CollectorRegistry()
    metrics = client_metrics(registry)
    bus = EventBus([metrics])
    channel = bus.channel(RequestFinished, "User", RequestOutcome.SUCCESS)
    assert isinstance(channel.fire.__self__, CountAndObserve)  # type: ignore[attr-defined]  # (no event built)
    channel.fire(0.2)
    bus.channel(DiscoveryLookedUp, "User", DiscoveryResult.HIT).fire()
    assert sample(registry, "resilient_client_requests_total", service="User", outcome="success") == 1
    assert sample(registry, "resilient_client_request_duration_seconds_count", service="User") == 1
    assert sample(registry, "resilient_client_request_duration_seconds_sum", service="User") == 0.2
    assert sample(registry, "resilient_client_request_duration_seconds_bucket", service="User", le="0.25") == 1
    assert sample(registry, "resilient_client_request_duration_seconds_bucket", service="User", le="0.1") == 0
    assert sample(registry, "resilient_client_discovery_total", service="User", result="hit") == 1


def test_a_subscriber_added_later_gets_the_events_of_existing_channels_and_metrics_count_once() -> None:
    registry = CollectorRegistry()
    bus = EventBus([client_metrics(registry)])
    finished = bus.channel(RequestFinished, "User", RequestOutcome.FAILURE)
    hit = bus.channel(DiscoveryLookedUp, "User", DiscoveryResult.HIT)
    finished.fire(0.5)
    seen: list[Event] = []
    bus.subscribe(seen.append)
    finished.fire(1.5)
    hit.fire()
    assert seen == [RequestFinished("User", RequestOutcome.FAILURE, 1.5),
                    DiscoveryLookedUp("User", DiscoveryResult.HIT)]
    assert sample(registry, "resilient_client_requests_total", service="User", outcome="failure") == 2
    assert sample(registry, "resilient_client_request_duration_seconds_sum", service="User") == 2.0
    assert sample(registry, "resilient_client_discovery_total", service="User", result="hit") == 1


def test_a_failing_subscriber_on_a_channel_is_logged_not_raised() -> None:
    bus = EventBus([lambda event: 1 / 0])
    bus.channel(RequestFinished, "User", RequestOutcome.SUCCESS).fire(0.1)


async def _calls(subscribers: list[Any], registry: CollectorRegistry) -> FakeClock:
    clock = FakeClock()
    transport = ScriptedTransport()
    transport.behaviours[7002] = respond(500)
    discovery = StaticDiscovery({"User": [instance("User", port) for port in (7001, 7002)]})
    client = ResilientClient(discovery, transport=transport, clock=clock, metrics_registry=registry,
                             subscribers=subscribers)
    for _ in range(4):
        await client.get("User", "/")
    return clock


async def test_a_subscriber_receives_every_calls_request_finished_as_before() -> None:
    seen: list[Event] = []
    registry = CollectorRegistry()
    await _calls([seen.append], registry)
    assert [event for event in seen if isinstance(event, RequestFinished)] == [
        RequestFinished("User", outcome, 0.0)
        for outcome in (RequestOutcome.SUCCESS, RequestOutcome.FAILURE) * 2]
    assert sample(registry, "resilient_client_requests_total", service="User", outcome="success") == 2
    assert sample(registry, "resilient_client_requests_total", service="User", outcome="failure") == 2


async def test_without_subscribers_the_metrics_still_count_every_call() -> None:
    registry = CollectorRegistry()
    await _calls([], registry)
    assert sample(registry, "resilient_client_requests_total", service="User", outcome="success") == 2
    assert sample(registry, "resilient_client_requests_total", service="User", outcome="failure") == 2
    assert sample(registry, "resilient_client_request_duration_seconds_count", service="User") == 4
