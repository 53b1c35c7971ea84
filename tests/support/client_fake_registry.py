"""An in-process registry that speaks the SPEC §1 REST API, for the client's unit-level tests.

It records every request and can be told to fail: answer 503 to the next N registrations, or forget
every instance (as a flushed Redis would).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from tests.support.processes import free_port


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeRegistry:
    ttl_s: float = 90.0
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)
    leases: dict[str, str] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    fail_registrations: int = 0
    fail_everything: bool = False
    port: int = field(default_factory=free_port)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self, method: str, prefix: str = "") -> list[Seen]:
        return [seen for seen in self.seen if seen.method == method and seen.path.startswith(prefix)]

    def forget_all(self) -> None:
        self.instances.clear()
        self.leases.clear()

    def add(self, name: str, port: int, *, host: str = "127.0.0.1", status: str = "UP",
            instance_id: str | None = None) -> dict[str, Any]:
        instance_id = instance_id or f"{name}-{secrets.token_hex(4)}"
        self.instances[instance_id] = self._instance({"id": instance_id, "name": name, "port": port,
                                                      "host": host, "status": status})
        return self.instances[instance_id]

    def _instance(self, body: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, Any]:
        now = _now()
        host, port, scheme = body.get("host", "127.0.0.1"), body["port"], body.get("scheme", "http")
        url = f"{scheme}://{host}:{port}"
        health = body.get("health_endpoint", "/health")
        return {"id": body["id"], "name": body["name"], "host": host, "port": port, "scheme": scheme,
                "url": url, "health_endpoint": health, "health_url": url + health,
                "version": body.get("version", ""), "description": body.get("description", ""),
                "status": body.get("status", "UP"), "metadata": body.get("metadata", {}),
                "registered_at": previous["registered_at"] if previous else now, "last_heartbeat": now,
                "expires_at": (datetime.now(UTC) + timedelta(seconds=self.ttl_s)).isoformat(
                    timespec="milliseconds").replace("+00:00", "Z")}

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        self.seen.append(Seen(request.method, request.path, dict(request.headers), body))
        if self.fail_everything:
            return _error(503, "unavailable", "told to fail")
        return await handler(request)  # type: ignore[no-any-return]

    async def _register(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.fail_registrations > 0:
            self.fail_registrations -= 1
            return _error(503, "store_unavailable", "told to fail")
        instance_id = body.get("id") or f"{body['name']}-{secrets.token_hex(8)}"
        body["id"] = instance_id
        previous = self.instances.get(instance_id)
        if previous is not None and previous["name"] != body["name"]:
            return _error(409, "id_conflict", "id belongs to another service")
        token = body.get("lease_token") or secrets.token_hex(16)
        self.leases[instance_id] = token
        self.instances[instance_id] = self._instance(body, previous)
        payload = {**self.instances[instance_id], "lease_token": token}
        return web.json_response(payload, status=200 if previous else 201,
                                 headers={"Location": f"/instances/{instance_id}"})

    async def _heartbeat(self, request: web.Request) -> web.Response:
        instance = self.instances.get(request.match_info["id"])
        if instance is None:
            return _error(404, "instance_not_found", "unknown instance")
        raw = await request.read()
        if raw:
            status = json.loads(raw).get("status")
            if status:
                instance["status"] = status
        instance["last_heartbeat"] = _now()
        return web.json_response(instance)

    async def _deregister(self, request: web.Request) -> web.Response:
        if self.instances.pop(request.match_info["id"], None) is None:
            return _error(404, "instance_not_found", "unknown instance")
        return web.Response(status=204)

    def _filtered(self, request: web.Request, name: str | None) -> list[dict[str, Any]]:
        statuses = set(filter(None, request.query.get("status", "").split(",")))
        return [inst for key, inst in sorted(self.instances.items())
                if (name is None or inst["name"] == name) and (not statuses or inst["status"] in statuses)]

    async def _service(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        return web.json_response({"name": name, "instances": self._filtered(request, name)})

    async def _all(self, request: web.Request) -> web.Response:
        return web.json_response({"instances": self._filtered(request, request.query.get("name"))})

    async def start(self) -> FakeRegistry:
        app = web.Application(middlewares=[self._record])
        app.router.add_post("/instances", self._register)
        app.router.add_put("/instances/{id}/heartbeat", self._heartbeat)
        app.router.add_delete("/instances/{id}", self._deregister)
        app.router.add_get("/instances", self._all)
        app.router.add_get("/services/{name}", self._service)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)
