"""Expiry protection: an outage of the store must not expire instances whose heartbeats it swallowed."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from registry_server.errors import StoreUnavailableError
from registry_server.expiry_protection import HELD_UNHEARD_TTLS, OVERLOAD_LOG_QUIET_MS
from registry_server.metrics import RegistryMetrics
from registry_server.model import InstanceRegistration
from registry_server.registry import Registry
from registry_server.store.memory import MemoryStore
from tests.support.clock import FakeClock

TTL_MS = 10_000


class FlakyStore(MemoryStore):
    """A memory store that can be made unreachable, as Redis is when it is down or frozen."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def __getattribute__(self, name: str) -> Any:
        attr = super().__getattribute__(name)
        if name in {"register", "heartbeat", "deregister", "get", "service", "all_instances", "services",
                    "expire", "extend_leases", "ping"} and super().__getattribute__("down"):
            async def unreachable(*args: Any, **kwargs: Any) -> Any:
                raise StoreUnavailableError(name, "connection refused")
            return unreachable
        return attr


def setup() -> tuple[Registry, FlakyStore, FakeClock, CollectorRegistry]:
    store, clock, metrics = FlakyStore(), FakeClock(), CollectorRegistry()
    return Registry(store, clock, TTL_MS, RegistryMetrics(metrics)), store, clock, metrics


async def test_an_outage_longer_than_the_ttl_expires_nobody() -> None:
    registry, store, clock, metrics = setup()
    for n in range(3):
        await registry.register(InstanceRegistration(id=f"i{n}", name="Auth", host="h", port=1))
    clock.advance(5)
    await registry.heartbeat("i0", None)  # the last contact before the outage
    store.down = True
    clock.advance(1)
    for _ in range(3):
        with contextlib.suppress(StoreUnavailableError):
            await registry.sweep()
        clock.advance(10)  # 31 s of outage in all: three TTLs
    assert registry.protection.active
    assert metrics.get_sample_value("registry_expiry_protection_active") == 1
    store.down = False
    assert await registry.sweep() == [], "nothing expired by the outage"
    assert not registry.protection.active
    assert metrics.get_sample_value("registry_expirations_total", {"service": "Auth"}) == 0
    assert metrics.get_sample_value("registry_lease_extensions_total") == 3
    assert [i.id for i in (await registry.service("Auth")).instances] == ["i0", "i1", "i2"]
    clock.advance(TTL_MS / 1000)  # a full TTL after the store came back, without a heartbeat
    assert len(await registry.sweep()) == 3, "silent owners still expire, one TTL after the outage"


async def test_the_first_operation_after_an_outage_sees_protected_leases() -> None:
    """A heartbeat arriving before the next sweep must find its lease, not a 404 that forces re-registration."""
    registry, store, clock, _metrics = setup()
    await registry.register(InstanceRegistration(id="i", name="Auth", host="h", port=1))
    store.down = True
    with contextlib.suppress(StoreUnavailableError):
        await registry.heartbeat("i", None)
    clock.advance(30)
    store.down = False
    renewed = await registry.heartbeat("i", None)
    assert renewed is not None
    assert renewed.expires_at_ms == clock.now_ms() + TTL_MS


async def test_concurrent_requests_share_one_recovery_attempt_instead_of_queueing() -> None:
    """A frozen store makes each attempt wait its whole timeout: callers must not wait one after another."""
    import asyncio

    registry, store, _clock, _metrics = setup()
    await registry.register(InstanceRegistration(id="i", name="Auth", host="h", port=1))
    registry.protection.unreachable()
    attempts = 0
    release = asyncio.Event()

    async def slow_failing_extend(since_ms: int, until_ms: int) -> int:
        nonlocal attempts
        attempts += 1
        await release.wait()
        raise StoreUnavailableError("extend", "timed out")

    store.extend_leases = slow_failing_extend  # type: ignore[method-assign]
    calls = [asyncio.create_task(registry.get("i")) for _ in range(8)]
    await asyncio.sleep(0)
    release.set()
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert attempts == 1
    assert all(isinstance(o, StoreUnavailableError) for o in outcomes)


async def test_an_overload_in_pulses_is_logged_once_at_its_start_and_once_a_minute_after_its_end(
        caplog: pytest.LogCaptureFixture) -> None:
    registry, _, clock, _ = setup()
    protection = registry.protection
    caplog.set_level(logging.INFO, logger="registry_server.expiry_protection")
    for _ in range(5):  # five pulses of refusals, each a second long, five seconds apart
        for _ in range(10):
            protection.shed()
            clock.advance(0.1)
        await registry.sweep()
        assert protection.shedding_since_ms is not None
        clock.advance(5)
        await registry.sweep()
        assert protection.shedding_since_ms is None, "/healthz: this pulse is over"
    lines = [record.getMessage() for record in caplog.records]
    assert sum("overloaded: refusing writes" in line for line in lines) == 1
    assert not any("no longer overloaded" in line for line in lines)
    clock.advance(OVERLOAD_LOG_QUIET_MS / 1000)
    await registry.sweep()
    ended = [record.getMessage() for record in caplog.records if "no longer overloaded" in record.getMessage()]
    assert ended == ["no longer overloaded: no write refused for 60 s (50 refused in 25 s); the leases held "
                     "run a full TTL from now"]


async def test_an_endless_overload_still_expires_an_instance_nobody_hears_from() -> None:
    """While the replica stays overloaded, the leases of instances heard lately are held; one that stopped
    heartbeating is held only for a while, so its death is seen during the overload itself."""
    registry, _, clock, metrics = setup()
    protection = registry.protection
    for name in ("alive", "dead"):
        await registry.register(InstanceRegistration(id=name, name="Auth", host="h", port=1))
    ttl_s = TTL_MS / 1000
    expired_at: float | None = None
    for second in range(1, int(10 * ttl_s)):  # ten TTLs of overload, swept every second
        clock.advance(1)
        protection.hold()  # the loop ran late within the last second
        if second % 25 == 0:  # heard now and then: further apart than a TTL (told to come back later)
            await registry.heartbeat("alive", None)
        expired = [gone.id for gone in await registry.sweep()]
        assert "alive" not in expired
        if expired:
            assert expired == ["dead"]
            expired_at = second
            break
    assert protection.holding_since_ms is not None, "the overload never ended"
    assert expired_at is not None, "the dead instance was held for as long as the overload lasted"
    assert HELD_UNHEARD_TTLS * ttl_s < expired_at <= (HELD_UNHEARD_TTLS + 1) * ttl_s + 1
    assert metrics.get_sample_value("registry_expirations_total", {"service": "Auth"}) == 1
