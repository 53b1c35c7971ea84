"""What the interop tests start: the registry on a real Redis, scrape targets as real processes, and
calls to the registry's own REST API."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.polling import wait_until
from tests.support.processes import ManagedProcess, free_port, http_status

LEASE_TOKEN = "interop-test-lease-token"


def start_backend(tmp_path: Path, name: str) -> tuple[ManagedProcess, int]:
    """``tests/support/interop_metrics_backend.py`` on a free port, answering before this returns."""
    port = free_port()
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    proc = ManagedProcess(args=[sys.executable, "-m", "tests.support.interop_metrics_backend", str(port), name],
                          env=env, log_path=tmp_path / f"backend-{name}-{port}.log").start()
    wait_until(lambda: http_status(f"http://127.0.0.1:{port}/health") == 200 or not proc.alive(),
               timeout=15, message=f"backend {name} to answer")
    assert proc.alive(), proc.log_text()
    return proc, port


def call(method: str, url: str, body: dict[str, Any] | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One HTTP call with our lease token; the status and the decoded JSON body (or text)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Content-Type": "application/json", "X-Lease-Token": LEASE_TOKEN, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, raw = int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = int(exc.code), exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def register(registry_url: str, name: str, port: int, instance_id: str, **extra: Any) -> None:
    status, body = call("POST", registry_url + "/instances", {
        "name": name, "port": port, "host": "127.0.0.1", "id": instance_id, "lease_token": LEASE_TOKEN,
        "version": "1.0.0", **extra})
    assert status in (200, 201), body


def instance_ids(registry_url: str, service: str) -> list[str]:
    status, body = call("GET", f"{registry_url}/services/{service}")
    assert status == 200, body
    return [inst["id"] for inst in body["instances"]]
