"""Failover: kill one ``user_service.py`` while this runs; every call still succeeds.

A refused connection, a timeout or a 502/503/504 moves the call to the next instance; after 5
consecutive failures the instance's circuit breaker opens and it is skipped for 30 s. Only when no
instance gives an HTTP response does a call raise ``ServiceUnavailableError`` (the seed's
"All User instances failed" error).

    SERVICE_REGISTRY_URL=http://localhost:3011 python examples/failover.py
"""

from __future__ import annotations

import asyncio

from resilient_client import ClientConfig, ResilientClient, ServiceUnavailableError


async def main() -> None:
    config = ClientConfig(attempt_timeout_s=2.0, total_timeout_s=6.0)
    async with ResilientClient(config=config) as client:
        for call in range(1, 61):
            try:
                resp = await client.get("User", "/users/42")
                print(f"call {call:2}: {resp.status} from port {resp.json()['served_by']}")
            except ServiceUnavailableError as exc:
                print(f"call {call:2}: {exc}")
            await asyncio.sleep(0.5)
        for breaker in client.breakers:
            print(f"breaker {breaker.instance}: {breaker.state.label}")


if __name__ == "__main__":
    asyncio.run(main())
