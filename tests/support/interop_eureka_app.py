"""A service speaking Eureka through the ``py-eureka-client`` package, run as its own process.

It registers as ``orders`` with the registry's Eureka API (renewing every second), discovers ``USER``
and calls its ``/hello`` until that works, prints ``CALLED <json>``, and on SIGTERM stops the Eureka
client (which reports DOWN and cancels its registration) and exits.
Run: ``python -m tests.support.interop_eureka_app <eureka url> <port>``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from py_eureka_client.eureka_client import EurekaClient


async def main(eureka_url: str, port: int) -> None:
    client = EurekaClient(eureka_server=eureka_url, app_name="orders", instance_host="127.0.0.1",
                          instance_ip="127.0.0.1", instance_port=port, renewal_interval_in_secs=1,
                          duration_in_secs=5)
    await client.start()
    print("STARTED", flush=True)
    while True:  # the client's own retry loop: discovery fills in as the registry answers
        try:
            answer = await client.do_service("USER", "/hello", return_type="json")
        except Exception as exc:
            print(f"RETRY {exc!r}", flush=True)
            await asyncio.sleep(0.2)
            continue
        print("CALLED " + json.dumps(answer), flush=True)
        break
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await client.stop()
    print("STOPPED", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
