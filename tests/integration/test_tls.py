"""HTTPS for the registry, and rediss:// with a password for its Redis, with throw-away certificates."""

from __future__ import annotations

import shutil
import ssl
from pathlib import Path

import httpx
import pytest

from tests.support.polling import wait_until
from tests.support.processes import ManagedProcess, free_port, running_registry, start_registry
from tests.support.tls import make_certs

pytestmark = pytest.mark.integration


def test_the_registry_serves_https_with_its_certificate(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    env = {"REGISTRY_CERTFILE": str(certs.cert), "REGISTRY_KEYFILE": str(certs.key)}
    reg = start_registry(tmp_path, redis_url=None, extra_env=env)
    try:
        https = f"https://127.0.0.1:{reg.port}"
        with httpx.Client(base_url=https, verify=ssl.create_default_context(cafile=str(certs.ca))) as http:
            wait_until(lambda: http.get("/healthz").status_code == 200, timeout=15, message="https to answer")
            resp = http.post("/instances", json={"name": "Auth", "port": 1, "host": "h"})
            assert resp.status_code == 201
        with pytest.raises(httpx.ConnectError), httpx.Client(base_url=https) as untrusting:
            untrusting.get("/healthz")  # a client that does not trust the CA refuses the connection
        assert "listening on https://" in reg.log_text()
    finally:
        reg.stop()


def test_rediss_with_a_password_is_a_working_store(tmp_path: Path) -> None:
    redis_bin = shutil.which("redis-server")
    assert redis_bin is not None, "redis-server is needed (apt-get install redis-server)"
    certs = make_certs(tmp_path / "certs")
    port = free_port()
    redis = ManagedProcess(
        args=[redis_bin, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "",
              "--appendonly", "no", "--tls-cert-file", str(certs.cert), "--tls-key-file", str(certs.key),
              "--tls-ca-cert-file", str(certs.ca), "--tls-auth-clients", "no", "--requirepass", "s3cret-pw",
              "--dir", str(tmp_path)],
        env={}, log_path=tmp_path / "redis-tls.log").start()
    try:
        url = f"rediss://:s3cret-pw@127.0.0.1:{port}/0?ssl_ca_certs={certs.ca}"
        with running_registry(tmp_path, redis_url=url, name="tls") as reg, httpx.Client(base_url=reg.url) as http:
            wait_until(lambda: http.get("/healthz").status_code == 200, timeout=20, message="the TLS store")
            assert http.get("/healthz").json()["store"] == "redis"
            created = http.post("/instances", json={"name": "Auth", "port": 1, "host": "h", "id": "tls-1"})
            assert created.status_code == 201
            assert [i["id"] for i in http.get("/services/Auth").json()["instances"]] == ["tls-1"]
        bad = f"rediss://:wrong-pw@127.0.0.1:{port}/0?ssl_ca_certs={certs.ca}"
        with running_registry(tmp_path, redis_url=bad, name="badpw") as reg:
            wait_until(lambda: "not reachable yet" in reg.log_text(), timeout=10, message="the refusal logged")
            assert httpx.get(reg.url + "/healthz").status_code == 503, "a wrong password is an unavailable store"
    finally:
        redis.stop()
