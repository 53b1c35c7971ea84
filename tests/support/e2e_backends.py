"""The e2e backends: real processes of ``tests.support.client_backend``, registered through their own manager."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import ManagedProcess, free_port

REPO = Path(__file__).resolve().parents[2]
HEARTBEAT_S = 0.3
REGISTRY_TTL_S = 2.0
SERVICE = "Backend"


@dataclass
class Backend:
    port: int
    process: ManagedProcess

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def hits(self) -> dict[str, int]:
        with urllib.request.urlopen(f"http://{self.address}/hits", timeout=5) as resp:
            return dict(json.loads(resp.read()))


def registered(registry_url: str, name: str = SERVICE) -> list[dict[str, object]]:
    with urllib.request.urlopen(f"{registry_url}/services/{name}?status=UP", timeout=5) as resp:
        return list(json.loads(resp.read())["instances"])


def start_backend(tmp_path: Path, registry_url: str, port: int | None = None) -> Backend:
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE_REGISTRY_")}
    env.update({"PYTHONPATH": str(REPO), "SERVICE_REGISTRY_URL": registry_url, "HOST": "127.0.0.1",
                "PORT": str(port), "SERVICE_REGISTRY_HEARTBEAT_INTERVAL": str(int(HEARTBEAT_S * 1000)),
                "SERVICE_REGISTRY_RETRY_DELAY": "100", "BACKEND_NAME": SERVICE})
    process = ManagedProcess([sys.executable, "-m", "tests.support.client_backend"], env,
                             tmp_path / f"backend-{port}.log").start()
    return Backend(port, process)
