"""Load balancing: consecutive calls go round-robin over the UP instances (the seed's example).

Start two or three ``user_service.py`` instances, then:

    SERVICE_REGISTRY_URL=http://localhost:3011 python examples/load_balancing.py
"""

from __future__ import annotations

import asyncio
from collections import Counter

from resilient_client import ResilientClient


async def main() -> None:
    async with ResilientClient() as client:  # the registry URL comes from SERVICE_REGISTRY_URL
        served_by = Counter()
        for _ in range(30):
            resp = await client.get("User", "/users/42")
            served_by[resp.json()["served_by"]] += 1
        created = await client.post("User", "/users", json={"name": "Grace"})  # POST: also balanced
        print("GET /users/42 served by port:", dict(served_by))
        print("POST /users ->", created.status, created.json())


if __name__ == "__main__":
    asyncio.run(main())
