"""An in-process registry that speaks the SPEC §1 REST API, for the client's unit-level tests.

It records every request and can be told to fail: answer 503 to the next N registrations, or forget
every instance (as a flushed Redis would). Discovery answers carry ``X-Registry-Index`` (a per-service
revision moved by every change) and ``?index=N&wait=...`` is a blocking query, as in the real registry;
``blocking=False`` plays an older registry that ignores both, ``refuse_blocking`` a replica that turns
blocking queries away (``503 too_many_watchers`` with ``Retry-After``, or any status).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
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
    query: dict[str, str] = field(default_factory=dict)

    @property
    def blocking(self) -> bool:
        return "index" in self.query


@dataclass
class FakeRegistry:
    ttl_s: float = 90.0
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)
    leases: dict[str, str] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    fail_registrations: int = 0
    fail_everything: bool = False
    shed_heartbeats: int = 0
    """Answer the next N heartbeats ``503 overloaded`` with ``Retry-After``, as an overloaded registry does."""
    pace_heartbeats: int = 0
    """Serve the next N heartbeats with ``Retry-After`` on their 200, as a registry running late does."""
    blocking: bool = True
    refuse_blocking: tuple[int, str] | None = None
    retry_after: str = "1"
    revisions: dict[str, int] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    _runner: web.AppRunner | None = None
    held: dict[str, int] = field(default_factory=dict)
    """Blocking queries waiting right now, per service."""
    _changed: dict[str, asyncio.Event] = field(default_factory=dict)
    stall: asyncio.Event | None = None
    """When set, every request waits for this event before it is answered (a registry that hangs)."""
    _stopping: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self, method: str, prefix: str = "") -> list[Seen]:
        return [seen for seen in self.seen if seen.method == method and seen.path.startswith(prefix)]

    def forget_all(self, *, reset_revisions: bool = True) -> None:
        """Lose every instance, as a flushed Redis would (revisions start again from 0)."""
        names = {inst["name"] for inst in self.instances.values()} | set(self.revisions)
        self.instances.clear()
        self.leases.clear()
        if reset_revisions:
            self.revisions.clear()
        for name in names:
            self._wake(name)

    def bump(self, name: str) -> int:
        """Move the service's revision on, as every change of membership or status does."""
        self.revisions[name] = self.revisions.get(name, 0) + 1
        self._wake(name)
        return self.revisions[name]

    def remove(self, instance_id: str) -> None:
        """Deregister (or expire) an instance: the revision moves on."""
        self.bump(self.instances.pop(instance_id)["name"])

    def blocking_queries(self, name: str | None = None) -> list[Seen]:
        return [seen for seen in self.requests("GET", "/services/" + (name or "")) if seen.blocking]

    def _wake(self, name: str) -> None:
        event = self._changed.pop(name, None)
        if event is not None:
            event.set()

    def add(self, name: str, port: int, *, host: str = "127.0.0.1", status: str = "UP",
            instance_id: str | None = None) -> dict[str, Any]:
        instance_id = instance_id or f"{name}-{secrets.token_hex(4)}"
        self.instances[instance_id] = self._instance({"id": instance_id, "name": name, "port": port,
                                                      "host": host, "status": status})
        self.bump(name)
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
        self.seen.append(Seen(request.method, request.path, dict(request.headers), body, dict(request.query)))
        if self.stall is not None:
            await self.stall.wait()
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
        self.bump(body["name"])
        payload = {**self.instances[instance_id], "lease_token": token}
        return web.json_response(payload, status=200 if previous else 201,
                                 headers={"Location": f"/instances/{instance_id}"})

    async def _heartbeat(self, request: web.Request) -> web.Response:
        if self.shed_heartbeats > 0:
            self.shed_heartbeats -= 1
            response = _error(503, "overloaded", "told to shed")
            response.headers["Retry-After"] = self.retry_after
            return response
        instance = self.instances.get(request.match_info["id"])
        if instance is None:
            return _error(404, "instance_not_found", "unknown instance")
        raw = await request.read()
        if raw:
            status = json.loads(raw).get("status")
            if status and status != instance["status"]:
                instance["status"] = status
                self.bump(instance["name"])
        instance["last_heartbeat"] = _now()
        if self.pace_heartbeats > 0:
            self.pace_heartbeats -= 1
            return web.json_response(instance, headers={"Retry-After": self.retry_after})
        return web.json_response(instance)

    async def _deregister(self, request: web.Request) -> web.Response:
        instance = self.instances.pop(request.match_info["id"], None)
        if instance is None:
            return _error(404, "instance_not_found", "unknown instance")
        self.bump(instance["name"])
        return web.Response(status=204)

    def _filtered(self, request: web.Request, name: str | None) -> list[dict[str, Any]]:
        statuses = set(filter(None, request.query.get("status", "").split(",")))
        return [inst for key, inst in sorted(self.instances.items())
                if (name is None or inst["name"] == name) and (not statuses or inst["status"] in statuses)]

    async def _service(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        index = request.query.get("index")
        if self.blocking and index is not None:
            if self.refuse_blocking is not None:
                status, code = self.refuse_blocking
                return _error(status, code, "told to refuse blocking queries",
                              headers={"Retry-After": self.retry_after})
            await self._wait_for_change(name, int(index), _seconds(request.query.get("wait", "60s")))
        headers = {"X-Registry-Index": str(self.revisions.get(name, 0))} if self.blocking else {}
        return web.json_response({"name": name, "instances": self._filtered(request, name)}, headers=headers)

    async def _wait_for_change(self, name: str, index: int, wait_s: float) -> None:
        deadline = asyncio.get_running_loop().time() + wait_s
        self.held[name] = self.held.get(name, 0) + 1
        try:
            while self.revisions.get(name, 0) == index and not self._stopping:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    return
                event = self._changed.setdefault(name, asyncio.Event())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), remaining)
        finally:
            self.held[name] -= 1

    async def _all(self, request: web.Request) -> web.Response:
        return web.json_response({"instances": self._filtered(request, request.query.get("name"))})

    async def start(self) -> FakeRegistry:
        self._stopping = False
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
        self._stopping = True  # answer the blocking queries held open, as the real registry does
        for name in list(self._changed):
            self._wake(name)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


def _seconds(raw: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", raw)
    assert match is not None, raw
    return float(match.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[match.group(2)]
