"""A TCP server that accepts connections and reads everything, but never writes a byte.

Run: ``python -m tests.support.faults_blackhole PORT``. Logs one line per accepted connection and per
chunk read (``accepted`` / ``read <n>``), so a test can tell that a request reached it.
"""

from __future__ import annotations

import asyncio
import sys


async def _swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    print("accepted", flush=True)
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            break
        print(f"read {len(chunk)}", flush=True)
    writer.close()


async def _serve(port: int) -> None:
    server = await asyncio.start_server(_swallow, "127.0.0.1", port)
    print(f"listening {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1])))
