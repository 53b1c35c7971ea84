import asyncio
from collections import Counter
from typing import cast

import pytest
from prometheus_client import CollectorRegistry

from resilient_client import (
    AttemptTimeoutError,
    BackoffConfig,
    BreakerConfig,
    BreakerRejectedError,
    CircuitOpenError,
    ClientConfig,
    ConnectError,
    ConnectionLostError,
    ResilientClient,
    ServiceInstance,
    ServiceUnavailableError,
)
from resilient_client._breaker import InstanceBreaker
from resilient_client.hooks import BreakerState
from tests.support.client_fakes import FakeClock, ScriptedTransport, StaticDiscovery, fail, instance, respond

PORTS = (7001, 7002, 7003)


def make(ports: tuple[int, ...] = PORTS, **config: object) -> tuple[ResilientClient, ScriptedTransport,
                                                                     FakeClock, CollectorRegistry]:
    transport, clock, registry = ScriptedTransport(), FakeClock(), CollectorRegistry()
    discovery = StaticDiscovery({"User": [instance("User", port) for port in ports]})
    settings = {"backoff": BackoffConfig(base_s=0.1, max_s=1, jitter=0), **config}
    client = ResilientClient(discovery, transport=transport, clock=clock, metrics_registry=registry,
                             config=ClientConfig(**settings))  # type: ignore[arg-type]
    return client, transport, clock, registry


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_calls_rotate_round_robin_over_the_instances() -> None:
    client, transport, _, registry = make()
    for _ in range(30):
        assert (await client.get("User", "/users/1")).status == 200
    assert Counter(transport.ports()) == {7001: 10, 7002: 10, 7003: 10}
    assert sample(registry, "resilient_client_requests_total", service="User", outcome="success") == 30


async def test_the_response_has_its_body_read_and_decoded() -> None:
    client, transport, _, _ = make()
    transport.behaviours[7001] = respond(200, b'{"id": 42}', {"Content-Type": "application/json"})
    resp = await client.get("User", "users/42")
    assert (resp.status, resp.json(), resp.text(), resp.content) == (200, {"id": 42}, '{"id": 42}', b'{"id": 42}')
    assert resp.headers["Content-Type"] == "application/json"
    assert transport.sent[0].url == "http://127.0.0.1:7001/users/42"


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_a_gateway_failure_on_a_get_fails_over_to_the_next_instance(status: int) -> None:
    client, transport, _, registry = make()
    transport.behaviours[7001] = respond(status)
    assert (await client.get("User", "/x")).status == 200
    assert transport.ports() == [7001, 7002]
    assert sample(registry, "resilient_client_failovers_total", service="User") == 1


async def test_a_connection_error_fails_over() -> None:
    client, transport, _, _ = make()
    transport.behaviours[7001] = fail(ConnectError("refused"))
    assert (await client.get("User", "/x")).status == 200
    assert transport.ports() == [7001, 7002]


@pytest.mark.parametrize("status", [400, 404, 409, 500])
async def test_other_statuses_are_returned_as_they_are(status: int) -> None:
    client, transport, _, _ = make()
    transport.behaviours[7001] = respond(status)
    assert (await client.get("User", "/x")).status == status
    assert transport.ports() == [7001]


async def test_a_post_answered_503_is_not_repeated_and_the_503_is_returned() -> None:
    client, transport, _, _ = make()
    transport.behaviours[7001] = respond(503)
    assert (await client.post("User", "/users", json={"name": "x"})).status == 503
    assert transport.ports() == [7001]


async def test_an_idempotent_post_answered_503_fails_over() -> None:
    client, transport, _, _ = make()
    transport.behaviours[7001] = respond(503)
    assert (await client.post("User", "/users", json={"name": "x"}, idempotent=True)).status == 200
    assert transport.ports() == [7001, 7002]


async def test_a_post_that_was_never_sent_fails_over() -> None:
    client, transport, _, _ = make()
    transport.behaviours[7001] = fail(ConnectError("refused"))
    assert (await client.patch("User", "/users/1", json={})).status == 200
    assert transport.ports() == [7001, 7002]


@pytest.mark.parametrize("error", [AttemptTimeoutError("read timed out"), ConnectionLostError("reset")])
async def test_a_post_that_may_have_been_sent_is_not_repeated(error: Exception) -> None:
    client, transport, _, _ = make()
    transport.behaviours[7001] = fail(error)  # type: ignore[arg-type]
    with pytest.raises(ServiceUnavailableError) as info:
        await client.post("User", "/users", json={})
    assert info.value.last_error is error
    assert transport.ports() == [7001]


async def test_the_last_gateway_failure_is_returned_when_every_instance_fails() -> None:
    client, transport, _clock, registry = make(max_passes=1)
    transport.behaviours = {7001: respond(503), 7002: fail(ConnectError("refused")), 7003: respond(502)}
    assert (await client.get("User", "/x")).status == 502
    assert sample(registry, "resilient_client_requests_total", service="User", outcome="failure") == 1


async def test_every_instance_failing_below_http_raises_service_unavailable_naming_the_service() -> None:
    client, transport, _, _registry = make(max_passes=1)
    transport.behaviours = {port: fail(ConnectError(f"refused {port}")) for port in PORTS}
    with pytest.raises(ServiceUnavailableError, match=r"'User'.*refused") as info:
        await client.get("User", "/x")
    assert info.value.service == "User"
    assert isinstance(info.value.last_error, ConnectError)


async def test_further_passes_wait_with_backoff_and_count_as_retries() -> None:
    client, transport, clock, registry = make(max_passes=3)
    calls = 0

    def flaky(request):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return respond(200)(request) if calls > 6 else ConnectError("refused")

    transport.behaviours = dict.fromkeys(PORTS, flaky)
    assert (await client.get("User", "/x")).status == 200
    assert clock.sleeps == [0.1, 0.2]
    assert len(transport.sent) == 7
    assert sample(registry, "resilient_client_retries_total", service="User") == 2


async def test_retry_after_on_a_503_is_honoured_within_the_deadline() -> None:
    client, transport, clock, _ = make(ports=(7001,), max_passes=2)
    answers = iter([respond(503, headers={"Retry-After": "2"}), respond(200)])
    transport.behaviours[7001] = lambda request: next(answers)(request)
    assert (await client.get("User", "/x")).status == 200
    assert clock.sleeps == [2.0]


async def test_a_retry_after_beyond_the_deadline_returns_the_503() -> None:
    client, transport, clock, _ = make(ports=(7001,), max_passes=2, total_timeout_s=1.0)
    transport.behaviours[7001] = respond(503, headers={"Retry-After": "5"})
    assert (await client.get("User", "/x")).status == 503
    assert clock.sleeps == []


async def test_each_attempt_gets_at_most_the_time_left_of_the_deadline() -> None:
    client, transport, _clock, _ = make(ports=(7001,), attempt_timeout_s=5.0, total_timeout_s=3.0)
    await client.get("User", "/x")
    assert transport.timeouts == [3.0]


async def test_no_registered_instance_raises_service_unavailable() -> None:
    client, transport, _, registry = make(ports=())
    with pytest.raises(ServiceUnavailableError, match="no UP instance"):
        await client.get("User", "/x")
    assert transport.sent == []
    assert sample(registry, "resilient_client_requests_total", service="User", outcome="no_instances") == 1


async def test_an_instance_with_an_open_breaker_is_skipped() -> None:
    client, transport, _, _ = make(breaker=BreakerConfig(fail_max=1), max_passes=1)
    transport.behaviours[7001] = fail(ConnectError("refused"))
    await client.get("User", "/x")
    assert client.breakers.get("User", "127.0.0.1:7001").state is BreakerState.OPEN
    transport.sent.clear()
    for _ in range(6):
        await client.get("User", "/x")
    assert 7001 not in transport.ports()


async def test_all_breakers_open_fails_at_once_without_network_io() -> None:
    client, transport, _, registry = make(breaker=BreakerConfig(fail_max=1), max_passes=1)
    transport.behaviours = {port: fail(ConnectError("refused")) for port in PORTS}
    with pytest.raises(ServiceUnavailableError):
        await client.get("User", "/x")
    transport.sent.clear()
    with pytest.raises(CircuitOpenError, match=r"'User'.*circuit breakers"):
        await client.get("User", "/x")
    assert transport.sent == []
    assert sample(registry, "resilient_client_requests_total", service="User", outcome="circuit_open") == 1


class AnswerInHand:
    """A discovery whose answer is always fresh: a tuple, handed back at once."""

    def __init__(self, *ports: int) -> None:
        self.answer = tuple(instance("User", port) for port in ports)

    def instances(self, service: str) -> tuple[ServiceInstance, ...]:
        return self.answer

    async def close(self) -> None:
        pass


async def test_an_answer_discovery_hands_back_at_once_is_used_without_an_await() -> None:
    transport = ScriptedTransport()
    async with ResilientClient(AnswerInHand(7001, 7002), transport=transport, metrics=False) as client:
        assert (await client.get("User", "/x")).status == 200
        assert (await client.get("User", "/x")).status == 200
    assert [request.url for request in transport.sent] == ["http://127.0.0.1:7001/x", "http://127.0.0.1:7002/x"]


async def test_a_cancelled_call_is_not_a_breaker_failure() -> None:
    client, transport, _, _ = make(ports=(7001,), breaker=BreakerConfig(fail_max=1))
    started = asyncio.Event()

    async def hang(request, timeout_s):  # type: ignore[no-untyped-def]
        started.set()
        await asyncio.Event().wait()

    transport.send = hang  # type: ignore[method-assign]
    task = asyncio.create_task(client.get("User", "/x"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert client.breakers.get("User", "127.0.0.1:7001").state is BreakerState.CLOSED


async def test_two_clients_share_the_metrics_of_one_registry() -> None:
    registry = CollectorRegistry()
    discovery = StaticDiscovery({"User": [instance("User", 7001)]})
    clients = [ResilientClient(discovery, transport=ScriptedTransport(), metrics_registry=registry)
               for _ in range(2)]
    for client in clients:
        await client.get("User", "/x")
    assert sample(registry, "resilient_client_requests_total", service="User", outcome="success") == 2


async def test_close_closes_the_transport_and_async_with_does_too() -> None:
    transport = ScriptedTransport()
    async with ResilientClient(StaticDiscovery(), transport=transport, metrics=False):
        pass
    assert transport.closed


STATE_GAUGE = "resilient_client_circuit_breaker_state"


def gauge(registry: CollectorRegistry, port: int) -> float | None:
    return registry.get_sample_value(STATE_GAUGE, {"service": "User", "instance": f"127.0.0.1:{port}"})


async def test_an_instance_that_leaves_discovery_loses_its_breaker_and_its_state_gauge_series() -> None:
    client, transport, _, registry = make(breaker=BreakerConfig(fail_max=1), max_passes=1)
    transport.behaviours[7001] = fail(ConnectError("refused"))
    await client.get("User", "/x")  # 7001 is refused and trips; the call fails over to 7002
    assert gauge(registry, 7001) == 2
    cast(StaticDiscovery, client.manager).services["User"] = [instance("User", 7002), instance("User", 7003)]
    await client.get("User", "/x")
    assert gauge(registry, 7001) is None
    assert sorted(breaker.instance for breaker in client.breakers) == ["127.0.0.1:7002", "127.0.0.1:7003"]
    assert (gauge(registry, 7002), gauge(registry, 7003)) == (0, 0)


async def test_when_the_last_instance_leaves_every_breaker_of_the_service_goes() -> None:
    client, _, _, registry = make()
    await client.get("User", "/x")
    assert len(client.breakers) == 3
    cast(StaticDiscovery, client.manager).services["User"] = []
    with pytest.raises(ServiceUnavailableError, match="no UP instance"):
        await client.get("User", "/x")
    assert len(client.breakers) == 0
    assert [gauge(registry, port) for port in PORTS] == [None, None, None]


async def test_a_call_still_out_on_a_dropped_instance_does_not_bring_its_series_back() -> None:
    client, transport, _, registry = make(ports=(7001,), breaker=BreakerConfig(fail_max=1), max_passes=1)
    started, release = asyncio.Event(), asyncio.Event()
    send = transport.send

    async def slow_refusal(request, timeout_s):  # type: ignore[no-untyped-def]
        if request.url.startswith("http://127.0.0.1:7001"):
            started.set()
            await release.wait()
            raise ConnectError("refused")
        return await send(request, timeout_s)

    transport.send = slow_refusal  # type: ignore[method-assign]
    out = asyncio.create_task(client.get("User", "/x"))
    await started.wait()
    cast(StaticDiscovery, client.manager).services["User"] = [instance("User", 7002)]
    await client.get("User", "/x")  # sees 7001 gone: its breaker is dropped while the first call is out
    release.set()
    with pytest.raises(ServiceUnavailableError):
        await out  # its failure would have tripped the dropped breaker
    assert gauge(registry, 7001) is None
    assert [breaker.instance for breaker in client.breakers] == ["127.0.0.1:7002"]


# -- the breaker as the client drives it: admitted before the attempt, told its outcome after -------------


def breaker_of(client: ResilientClient, port: int) -> InstanceBreaker:
    return client.breakers.get("User", f"127.0.0.1:{port}")


async def test_a_503_counts_on_the_instance_breaker_and_a_later_success_resets_the_count() -> None:
    client, transport, _, _ = make(ports=(7001,), breaker=BreakerConfig(fail_max=3), max_passes=1)
    transport.behaviours[7001] = respond(503)
    assert (await client.get("User", "/x")).status == 503
    assert (await client.get("User", "/x")).status == 503
    assert breaker_of(client, 7001).fail_counter == 2
    transport.behaviours[7001] = respond(200)
    assert (await client.get("User", "/x")).status == 200
    assert breaker_of(client, 7001).fail_counter == 0


async def test_the_failure_that_trips_a_breaker_is_the_error_the_call_reports() -> None:
    client, transport, _, _ = make(ports=(7001,), breaker=BreakerConfig(fail_max=1), max_passes=1)
    refused = ConnectError("refused")
    transport.behaviours[7001] = fail(refused)
    with pytest.raises(ServiceUnavailableError) as info:
        await client.get("User", "/x")
    assert info.value.last_error is refused
    assert breaker_of(client, 7001).state is BreakerState.OPEN


async def test_an_error_of_the_transport_that_is_not_about_the_instance_propagates_uncounted() -> None:
    client, transport, _, _ = make(ports=(7001,), breaker=BreakerConfig(fail_max=2), max_passes=1)
    transport.behaviours[7001] = fail(ConnectError("refused"))
    with pytest.raises(ServiceUnavailableError):
        await client.get("User", "/x")
    bug = RuntimeError("a bug in a transport")
    transport.behaviours[7001] = fail(bug)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError) as info:
        await client.get("User", "/x")
    assert info.value is bug
    assert (breaker_of(client, 7001).state, breaker_of(client, 7001).fail_counter) == (BreakerState.CLOSED, 1)


async def test_once_the_reset_timeout_passed_one_call_probes_and_its_success_closes_the_breaker() -> None:
    client, transport, clock, _ = make(ports=(7001,), breaker=BreakerConfig(fail_max=1), max_passes=1)
    transport.behaviours[7001] = fail(ConnectError("refused"))
    with pytest.raises(ServiceUnavailableError):
        await client.get("User", "/x")
    breaker = breaker_of(client, 7001)
    clock.advance(BreakerConfig().reset_timeout_s)
    transport.behaviours[7001] = respond(200)
    assert (await client.get("User", "/x")).status == 200
    assert breaker.state is BreakerState.CLOSED
    assert breaker.rejections == 0


async def test_an_instance_whose_breaker_opened_during_the_call_is_turned_away_without_io() -> None:
    client, transport, _, _ = make(ports=(7001, 7002), breaker=BreakerConfig(fail_max=1), max_passes=1)
    await client.get("User", "/x")  # at 7001: the next call starts at 7002
    release, waiting = asyncio.Event(), asyncio.Event()
    tried: list[str] = []

    async def slow_refusal(request, timeout_s):  # type: ignore[no-untyped-def]
        tried.append(request.url)
        waiting.set()
        await release.wait()
        raise ConnectError("refused")

    transport.send = slow_refusal  # type: ignore[method-assign]
    slow = asyncio.create_task(client.get("User", "/x"))  # 7002 first, then 7001
    await waiting.wait()
    other = breaker_of(client, 7001)

    async def refused() -> None:
        raise ConnectError("refused")

    with pytest.raises(ConnectError):  # another call trips 7001 meanwhile
        await other.call(refused, lambda _: False)
    release.set()
    with pytest.raises(ServiceUnavailableError) as info:
        await slow
    assert isinstance(info.value.last_error, BreakerRejectedError)
    assert tried == ["http://127.0.0.1:7002/x"]
    assert other.rejections == 1
