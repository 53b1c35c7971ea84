"""A real Prometheus for the dashboard tests: on loopback, a temporary data dir, its own process group."""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.polling import wait_until
from tests.support.processes import ManagedProcess, free_port, http_status


def require_binary(name: str) -> str:
    """The path of an OS-packaged binary; under CI a missing one fails the test instead of skipping it."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} not found on PATH (apt-get install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {reason}")
        pytest.skip(reason)
    return path


class PromQLError(AssertionError):
    """Prometheus refused an expression (``bad_data``: it does not parse) or could not run it."""


@dataclass
class PrometheusServer:
    process: ManagedProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        wait_until(lambda: http_status(self.url + "/-/ready") == 200 or not self.process.alive(),
                   timeout=timeout, message="prometheus to be ready")
        if not self.process.alive():
            raise AssertionError(f"prometheus exited early:\n{self.process.log_text()}")

    def _get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body: dict[str, Any] = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
            raise PromQLError(f"{exc.code} {body.get('errorType')}: {body.get('error')}") from exc
        if body.get("status") != "success":
            raise PromQLError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]  # type: ignore[no-any-return]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result as a list of series (a scalar or string answers one "series")."""
        data = self._get("/api/v1/query", {"query": expr})
        result = data["result"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": result}]
        return result  # type: ignore[no-any-return]

    def rules(self) -> list[dict[str, Any]]:
        return [rule for group in self._get("/api/v1/rules")["groups"] for rule in group["rules"]]

    def stop(self) -> None:
        self.process.stop()


def start_prometheus(tmp_dir: Path, config: dict[str, Any]) -> PrometheusServer:
    """Start ``prometheus`` with ``config`` on 127.0.0.1 and a free port; call ``wait_ready`` next."""
    binary = require_binary("prometheus")
    port = free_port()
    config_path = tmp_dir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    args = [binary, f"--config.file={config_path}", f"--storage.tsdb.path={tmp_dir / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h",
            "--log.level=warn"]
    process = ManagedProcess(args=args, env=dict(os.environ), log_path=tmp_dir / "prometheus.log").start()
    return PrometheusServer(process=process, port=port)
