"""A resilient client in the test process, as the fault-injection tests (``tests/faults``) use it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from prometheus_client import CollectorRegistry

from resilient_client import BackoffConfig, ClientConfig, ResilientClient, ServiceRegistryManager

ATTEMPT_TIMEOUT_S = 1.5
CONFIG = ClientConfig(attempt_timeout_s=ATTEMPT_TIMEOUT_S, total_timeout_s=6.0, max_passes=2,
                      backoff=BackoffConfig(base_s=0.02, max_s=0.1))


@contextlib.asynccontextmanager
async def client_for(registry_urls: str | Sequence[str], *, cache_ttl_ms: float = 30_000,
                     heartbeat_ms: float = 30_000, config: ClientConfig = CONFIG,
                     ) -> AsyncIterator[tuple[ResilientClient, ServiceRegistryManager, CollectorRegistry]]:
    """A client in the test process with its own manager and its own metrics registry."""
    metrics = CollectorRegistry()
    manager = ServiceRegistryManager(registry_url=registry_urls, cache_ttl=cache_ttl_ms, retry_delay=100,
                                     heartbeat_interval=heartbeat_ms, host="127.0.0.1",
                                     metrics_registry=metrics)
    client = ResilientClient(manager, config=config, metrics_registry=metrics)
    try:
        yield client, manager, metrics
    finally:
        await client.close()
        await manager.close()


def value(metrics: CollectorRegistry, name: str, **labels: str) -> float:
    return metrics.get_sample_value(name, labels) or 0.0
