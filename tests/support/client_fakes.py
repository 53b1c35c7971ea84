"""Stand-ins for the client's I/O dependencies: a virtual clock, a scripted transport, a fixed discovery."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from resilient_client import Response, ServiceInstance, TransportError
from resilient_client._transport import OutgoingRequest


class FakeClock:
    """Virtual time: ``sleep`` advances it at once (yielding to the loop) and records the wait."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def instance(name: str, port: int, *, host: str = "127.0.0.1", status: str = "UP") -> ServiceInstance:
    return ServiceInstance.from_json({"id": f"{name}-{port}", "name": name, "host": host, "port": port,
                                      "status": status})


@dataclass
class StaticDiscovery:
    """``instances`` answers from a dict; counts the lookups."""

    services: dict[str, list[ServiceInstance]] = field(default_factory=dict)
    lookups: int = 0

    async def instances(self, name: str) -> list[ServiceInstance]:
        self.lookups += 1
        return list(self.services.get(name, []))

    async def close(self) -> None:
        pass


Behaviour = Callable[[OutgoingRequest], Response | BaseException]


def respond(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Behaviour:
    def behave(request: OutgoingRequest) -> Response:
        return Response(status=status, headers=headers or {}, content=body or request.url.encode(),
                        url=request.url, instance_id=request.instance_id)
    return behave


def fail(error: TransportError) -> Behaviour:
    return lambda request: error


@dataclass
class ScriptedTransport:
    """Answers by port: ``behaviours[port]`` decides each attempt; every attempt is recorded."""

    behaviours: dict[int, Behaviour] = field(default_factory=dict)
    sent: list[OutgoingRequest] = field(default_factory=list)
    timeouts: list[float] = field(default_factory=list)
    closed: bool = False

    async def send(self, request: OutgoingRequest, timeout_s: float) -> Response:
        self.sent.append(request)
        self.timeouts.append(timeout_s)
        port = int(request.url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
        outcome = self.behaviours.get(port, respond(200))(request)
        await asyncio.sleep(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def ports(self) -> Sequence[int]:
        return [int(req.url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]) for req in self.sent]

    async def aclose(self) -> None:
        self.closed = True
