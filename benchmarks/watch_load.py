"""Hold N blocking queries open on one registry from one aiohttp process (a load for bench_watch).

    python -m benchmarks.watch_load <registry-url> <watchers> <services>

Watcher ``n`` watches service ``svc{n % services}`` with ``wait=300s``, asking again whenever an answer
arrives, until the process is terminated. The first query (``index=0``) answers at once with the
revision; ``ready`` is printed when every watcher has had that answer, so all of them block from then on.
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp


class Started:
    """Counts watchers that had their first answer; ``all`` is set when every one has."""

    def __init__(self, total: int) -> None:
        self.count = 0
        self.total = total
        self.all = asyncio.Event()

    def add(self) -> None:
        self.count += 1
        if self.count >= self.total:
            self.all.set()


async def watch(session: aiohttp.ClientSession, url: str, started: Started) -> None:
    index = "0"
    first = True
    while True:
        try:
            async with session.get(url, params={"index": index, "wait": "300s"},
                                   timeout=aiohttp.ClientTimeout(total=330)) as resp:
                if first:
                    started.add()
                    first = False
                await resp.read()
                index = resp.headers.get("X-Registry-Index", index)
        except (aiohttp.ClientError, TimeoutError):
            await asyncio.sleep(1)


async def main(base: str, watchers: int, services: int) -> None:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = Started(watchers)
        tasks = [asyncio.create_task(watch(session, f"{base}/services/svc{n % services}", started))
                 for n in range(watchers)]
        await started.all.wait()
        print("ready", flush=True)
        await asyncio.gather(*tasks)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1].rstrip("/"), int(sys.argv[2]), int(sys.argv[3])))
