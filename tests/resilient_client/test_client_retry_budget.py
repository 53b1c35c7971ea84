"""A client with a retry budget: retries and failovers beyond it end the call with what it has."""

import pytest
from prometheus_client import CollectorRegistry

from resilient_client import BackoffConfig, BreakerConfig, ClientConfig, ResilientClient, ServiceUnavailableError
from resilient_client.errors import ConnectError
from resilient_client.hooks import Event, FailedOver, RetryBudgetExhausted
from tests.support.client_fakes import FakeClock, ScriptedTransport, StaticDiscovery, fail, instance, respond

PORTS = (7001, 7002, 7003)
NEVER_OPEN = BreakerConfig(fail_max=1_000_000)  # the budget alone limits the attempts here


def make(retry_budget: float | None, *, min_per_s: float = 0.0, hooks: tuple[object, ...] = (),
         ) -> tuple[ResilientClient, ScriptedTransport, FakeClock, CollectorRegistry]:
    transport, clock, registry = ScriptedTransport(), FakeClock(), CollectorRegistry()
    for port in PORTS:
        transport.behaviours[port] = respond(503)
    config = ClientConfig(retry_budget=retry_budget, retry_budget_min_per_s=min_per_s, max_passes=3,
                          breaker=NEVER_OPEN, backoff=BackoffConfig(base_s=0.1, max_s=1, jitter=0))
    client = ResilientClient(StaticDiscovery({"User": [instance("User", port) for port in PORTS]}),
                             transport=transport, clock=clock, metrics_registry=registry, config=config,
                             hooks=hooks)  # type: ignore[arg-type]
    return client, transport, clock, registry


def exhausted(registry: CollectorRegistry) -> float:
    return registry.get_sample_value("resilient_client_retry_budget_exhausted_total", {"service": "User"}) or 0.0


async def test_without_a_budget_a_failing_service_receives_every_attempt_of_every_call() -> None:
    client, transport, _, registry = make(None)
    for _ in range(50):
        assert (await client.get("User", "/x")).status == 503
    assert len(transport.sent) == 50 * 3 * 3  # instances x passes
    assert exhausted(registry) == 0


async def test_with_a_budget_a_failing_service_receives_at_most_the_share_more_than_the_calls() -> None:
    client, transport, _, registry = make(0.2)
    for _ in range(50):
        assert (await client.get("User", "/x")).status == 503  # the last answer, at once
    assert len(transport.sent) == 50 + 10
    assert exhausted(registry) == 50  # each call wanted more than the budget gave it (one retry per 5 calls)


async def test_an_exhausted_budget_returns_the_last_answer_without_failing_over_or_waiting() -> None:
    seen: list[Event] = []
    client, transport, clock, registry = make(0.2, hooks=(seen.append,))
    response = await client.get("User", "/x")  # one first attempt: 0.2 of a retry, not one
    assert (response.status, transport.ports(), clock.sleeps) == (503, [7001], [])
    assert exhausted(registry) == 1
    assert [type(event) for event in seen if isinstance(event, FailedOver | RetryBudgetExhausted)] == [
        RetryBudgetExhausted]


async def test_an_exhausted_budget_raises_the_last_error_when_no_instance_answered() -> None:
    client, transport, _, registry = make(0.2)
    transport.behaviours[7001] = fail(ConnectError("refused"))
    with pytest.raises(ServiceUnavailableError) as raised:
        await client.get("User", "/x")
    assert isinstance(raised.value.last_error, ConnectError)
    assert exhausted(registry) == 1


async def test_the_floor_lets_a_quiet_client_fail_over_and_ends_the_call_before_the_next_pass_wait() -> None:
    client, transport, clock, registry = make(0.2, min_per_s=0.2)  # 2 retries per 10 s window
    assert (await client.get("User", "/x")).status == 503
    assert transport.ports() == [7001, 7002, 7003]  # two failovers
    assert clock.sleeps == []  # no backoff wait for a pass the budget would not allow
    assert exhausted(registry) == 1


async def test_a_call_that_succeeds_at_once_spends_nothing() -> None:
    client, transport, _, registry = make(0.2)
    for port in PORTS:
        transport.behaviours[port] = respond(200)
    for _ in range(10):
        assert (await client.get("User", "/x")).status == 200
    transport.behaviours[7002] = respond(503)  # the next call starts there (round-robin) and fails over
    assert (await client.get("User", "/x")).status == 200
    assert transport.ports()[-2:] == [7002, 7003]
    assert exhausted(registry) == 0
