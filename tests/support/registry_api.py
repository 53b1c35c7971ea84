"""The registry's app in process, on the memory store with a hand-moved clock, for API tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from registry_server.app import create_app
from registry_server.settings import Settings
from registry_server.store.memory import MemoryStore
from registry_server.sweeper import Sweeper
from tests.support.clock import FakeClock

TTL_S = 10.0
TOKEN = "lease-token-of-the-test-0001"


@dataclass
class Api:
    http: httpx.AsyncClient
    clock: FakeClock
    app: Starlette
    metrics: CollectorRegistry

    async def register(self, **body: Any) -> httpx.Response:
        return await self.http.post("/instances", json={"lease_token": TOKEN, **body})

    def metric(self, name: str, **labels: str) -> float | None:
        return self.metrics.get_sample_value(name, labels)

    @property
    def sweeper(self) -> Sweeper:
        sweeper: Sweeper = self.app.state.sweeper
        return sweeper


def make_api(settings: Settings | None = None, store: Any = None) -> tuple[Starlette, FakeClock, CollectorRegistry]:
    clock = FakeClock()
    metrics = CollectorRegistry()
    app = create_app(settings or Settings(instance_ttl_s=TTL_S), store=store or MemoryStore(), clock=clock,
                     metrics_registry=metrics)
    return app, clock, metrics
