"""The Starlette way the client docs expose the metrics answers GET /metrics itself, not a redirect."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import prometheus_client
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from resilient_client.metrics import client_metrics

REPO = Path(__file__).resolve().parents[2]


def _documented_starlette_app() -> Starlette:
    """Run the snippet of docs/client.md that exposes the metrics, and return its Starlette app."""
    page = (REPO / "docs" / "client.md").read_text()
    (snippet,) = [block for block in re.findall(r"```python\n(.*?)```", page, flags=re.DOTALL)
                  if "starlette_app" in block and "/metrics" in block]
    namespace: dict[str, object] = {}
    exec(compile(snippet, "docs/client.md", "exec"), namespace)
    app = namespace["starlette_app"]
    assert isinstance(app, Starlette)
    return app


async def test_the_documented_starlette_form_answers_get_metrics_with_the_metrics() -> None:
    client_metrics()  # the client's families on the default registry, as any client creates them
    transport = httpx.ASGITransport(app=_documented_starlette_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        resp = await http.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == prometheus_client.CONTENT_TYPE_LATEST
    assert "# TYPE resilient_client_requests_total counter" in resp.text


async def test_a_mount_at_metrics_would_answer_a_redirect() -> None:
    # Why the docs use a route: the mount form sends curl users an empty 307.
    registry = CollectorRegistry()
    app = Starlette()
    app.mount("/metrics", prometheus_client.make_asgi_app(registry))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as http:
        resp = await http.get("/metrics")
    assert resp.status_code == 307 and resp.headers["location"].endswith("/metrics/")
