"""Orders service (Flask, synchronous code): registers itself and calls User through the synchronous client.

The same client as the asyncio services, without ``await``: ``resilient_client.sync`` runs it on a
background event loop shared by every request thread. Run:

    SERVICE_REGISTRY_URL=http://localhost:3011 PORT=5001 python examples/flask_service.py
    curl localhost:5001/orders/42
"""

from __future__ import annotations

import os
import signal
import sys

import prometheus_client
from flask import Flask, Response, jsonify

from resilient_client import ServiceUnavailableError
from resilient_client.sync import ResilientClient, ServiceRegistryManager

PORT = int(os.environ.get("PORT", "5001"))
manager = ServiceRegistryManager()
users = ResilientClient(manager)
app = Flask(__name__)


@app.get("/orders/<user_id>")
def order(user_id: str) -> tuple[Response, int]:
    try:
        resp = users.get("User", f"/users/{user_id}")
    except ServiceUnavailableError as exc:
        return jsonify(error=str(exc)), 503
    if resp.status != 200:
        return jsonify(error="unknown user"), 404
    return jsonify(order=f"order-of-{user_id}", user=resp.json()), 200


@app.get("/health")
def health() -> Response:
    return jsonify(status="UP")


@app.get("/metrics")
def metrics() -> Response:
    return Response(prometheus_client.generate_latest(), content_type=prometheus_client.CONTENT_TYPE_LATEST)


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # leave the with block below: deregister, then exit
    with manager, users:
        manager.register_in_background("Orders", PORT, version="1.0.0", description="Order service")
        app.run(host=os.environ.get("BIND", "127.0.0.1"), port=PORT, threaded=True)


if __name__ == "__main__":
    main()
