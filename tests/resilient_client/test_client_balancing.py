"""The balancers a client takes from its configuration, and its zone, seen through real calls."""

import asyncio
import random
from collections import Counter

import pytest
from prometheus_client import CollectorRegistry

from resilient_client import ClientConfig, ResilientClient, Response, ServiceInstance
from resilient_client._transport import OutgoingRequest
from tests.support.client_fakes import FakeClock, ScriptedTransport, StaticDiscovery, instance, respond


def zoned(port: int, zone: str | None) -> ServiceInstance:
    return ServiceInstance.from_json({"id": f"User-{port}", "name": "User", "host": "127.0.0.1", "port": port,
                                      "metadata": {} if zone is None else {"zone": zone}})


def client_for(instances: list[ServiceInstance], config: ClientConfig | None, transport: object,
               ) -> ResilientClient:
    return ResilientClient(StaticDiscovery({"User": instances}), transport=transport,  # type: ignore[arg-type]
                           clock=FakeClock(), metrics_registry=CollectorRegistry(), config=config,
                           rng=random.Random(11))


class HeldTransport:
    """Holds every request to ``held`` ports until released; answers the others at once."""

    def __init__(self, held: set[int]) -> None:
        self.held = held
        self.release = asyncio.Event()
        self.ports: list[int] = []

    async def send(self, request: OutgoingRequest, timeout_s: float) -> Response:
        port = int(request.url.rsplit(":", 1)[1].split("/", 1)[0])
        self.ports.append(port)
        if port in self.held:
            await self.release.wait()
        await asyncio.sleep(0)
        return Response(200, {}, b"", request.url, request.instance_id)

    async def aclose(self) -> None:
        pass


async def test_random_balancing_spreads_the_calls() -> None:
    transport = ScriptedTransport()
    client = client_for([instance("User", port) for port in (7001, 7002, 7003)],
                        ClientConfig(load_balancer="random"), transport)
    for _ in range(3000):
        await client.get("User", "/x")
    counts = Counter(transport.ports())
    assert set(counts) == {7001, 7002, 7003} and all(900 < count < 1100 for count in counts.values()), counts


async def test_least_outstanding_sends_new_calls_away_from_an_instance_with_calls_in_flight() -> None:
    transport = HeldTransport(held={7001})
    client = client_for([instance("User", port) for port in (7001, 7002, 7003)],
                        ClientConfig(load_balancer="least_outstanding"), transport)
    stuck = []
    while not stuck:  # start calls until one is held on 7001
        call = asyncio.ensure_future(client.get("User", "/x"))
        await asyncio.sleep(0)
        if transport.ports[-1] == 7001:
            stuck.append(call)
        else:
            await call
    started = len(transport.ports)
    for _ in range(300):
        await client.get("User", "/x")
    assert 7001 not in transport.ports[started:]  # 7001 has one in flight, the others none
    assert client.breakers.get("User", "127.0.0.1:7001").outstanding == 1
    transport.release.set()
    await stuck[0]
    assert client.breakers.get("User", "127.0.0.1:7001").outstanding == 0
    before = len(transport.ports)
    for _ in range(300):
        await client.get("User", "/x")
    assert Counter(transport.ports[before:])[7001] > 50  # idle again: back in the spread


async def test_calls_stay_in_the_configured_zone_and_spread_over_it() -> None:
    transport = ScriptedTransport()
    instances = [zoned(7001, "eu-1a"), zoned(7002, "eu-1b"), zoned(7003, "eu-1a"), zoned(7004, None)]
    client = client_for(instances, ClientConfig(zone="eu-1a"), transport)
    for _ in range(100):
        await client.get("User", "/x")
    assert Counter(transport.ports()) == {7001: 50, 7003: 50}


async def test_calls_spill_to_other_zones_when_their_own_fails_over() -> None:
    transport = ScriptedTransport()
    transport.behaviours[7001] = respond(503)
    transport.behaviours[7003] = respond(503)
    instances = [zoned(7001, "eu-1a"), zoned(7002, "eu-1b"), zoned(7003, "eu-1a")]
    client = client_for(instances, ClientConfig(zone="eu-1a"), transport)
    assert (await client.get("User", "/x")).status == 200
    assert transport.ports() == [7001, 7003, 7002]
    for _ in range(10):  # both breakers of the zone open: only the other zone is left
        await client.get("User", "/x")
    before = len(transport.sent)
    for _ in range(20):
        assert (await client.get("User", "/x")).status == 200
    assert transport.ports()[before:] == [7002] * 20


async def test_the_zone_comes_from_service_zone_when_no_config_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_ZONE", "eu-1b")
    transport = ScriptedTransport()
    client = client_for([zoned(7001, "eu-1a"), zoned(7002, "eu-1b")], None, transport)
    for _ in range(10):
        await client.get("User", "/x")
    assert (client.config.zone, Counter(transport.ports())) == ("eu-1b", {7002: 10})
