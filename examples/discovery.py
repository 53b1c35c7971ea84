"""Discover services: one service's instances, then every service (the seed's discovery example).

    SERVICE_REGISTRY_URL=http://localhost:3011 python examples/discovery.py User
"""

from __future__ import annotations

import asyncio
import sys

from resilient_client import ServiceRegistryManager


async def main(name: str) -> None:
    async with ServiceRegistryManager() as manager:  # no register(): exit only closes the session
        for inst in await manager.discover_services(name):
            print(f"{inst.name:12} {inst.id:32} {inst.url:28} {inst.status} v{inst.version} "
                  f"last heartbeat {inst.last_heartbeat:%H:%M:%S}")
        everything = await manager.discover_services()
        print(f"{len(everything)} UP instances of {len({i.name for i in everything})} services")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "User"))
