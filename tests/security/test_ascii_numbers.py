"""Finding: numbers parsed with ``str.isdigit``, which accepts ``²``, answered 500. Every number in a request
or a setting is ASCII digits: anything else is refused as bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import RegistryProcess
from tests.support.raw_http import send

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("path", "status"), [("/services/Auth?index=%C2%B2", 422),
                                              ("/services/Auth?index=%D9%A3", 422),
                                              ("/services/Auth?wait=%D9%A3s", 422),
                                              ("/v1/health/service/Auth?index=%C2%B2", 400),
                                              ("/v1/catalog/service/Auth?wait=%D9%A3s", 400)])
def test_non_ascii_digits_in_a_query_are_bad_input(registry: RegistryProcess, path: str, status: int) -> None:
    answer = send(registry.url, "GET", path)
    assert answer.status == status, answer.text


def test_a_eureka_port_in_superscript_digits_is_refused(registry: RegistryProcess) -> None:
    body = b'{"instance": {"instanceId": "e-1", "hostName": "h", "app": "E", "port": {"$": "\\u00b2"}}}'
    answer = send(registry.url, "POST", "/eureka/apps/E", body, {"Content-Type": "application/json"})
    assert answer.status == 400, answer.text


@pytest.mark.parametrize(("name", "value"), [("REGISTRY_PORT", "\u00b2"), ("REGISTRY_MAX_WATCHERS", "\u0663"),
                                             ("REDIS_URL", "redis://localhost:\u00b2/0")])
def test_a_setting_in_non_ascii_digits_exits_2_with_one_line(tmp_path: Path, name: str, value: str) -> None:
    done = subprocess.run([sys.executable, "-m", "registry_server"], env={"PATH": "/usr/bin:/bin", name: value},
                          capture_output=True, text=True, timeout=30, check=False, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
