"""``registry-server`` as a real process, against a real Redis that the tests kill and restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.polling import wait_until
from tests.support.processes import free_port, http_status, running_registry, start_registry
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

TOKEN = "lease-token-of-the-test-0001"
LEASE = {"X-Lease-Token": TOKEN}


def metric_sum(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_full_api_round_trip_against_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    with (
        running_registry(tmp_path, redis_url=redis_server.url) as reg,
        httpx.Client(base_url=reg.url, headers=LEASE) as http,
    ):
        reg.wait_healthy()
        assert http.get("/healthz").json() == {"status": "ok", "store": "redis", "expiry_protection": False,
                                             "shedding": False, "holding": False,
                                             "heartbeat_spacing_s": None, "fleet_revival": None}
        created = http.post(
            "/instances",
            json={
                "name": "Auth",
                "port": 3001,
                "host": "10.0.0.5",
                "lease_token": TOKEN,
                "version": "1.0.0",
                "metadata": {"zone": "eu-1"},
                "id": "auth-1",
            },
        )
        assert created.status_code == 201
        assert created.headers["location"] == "/instances/auth-1"
        again = http.post(
            "/instances",
            json={
                "name": "Auth",
                "port": 3001,
                "host": "10.0.0.5",
                "lease_token": TOKEN,
                "version": "1.0.1",
                "metadata": {"zone": "eu-1"},
                "id": "auth-1",
            },
        )
        assert again.status_code == 200
        assert again.json()["version"] == "1.0.1"
        assert http.post("/instances", json={"name": "User", "port": 1, "id": "auth-1"}).status_code == 409
        beat = http.put("/instances/auth-1/heartbeat", json={"status": "DOWN"})
        assert beat.status_code == 200
        assert beat.json()["status"] == "DOWN"
        assert http.get("/services/Auth?status=UP").json()["instances"] == []
        [inst] = http.get("/services/Auth").json()["instances"]
        assert (inst["id"], inst["status"], inst["metadata"]) == ("auth-1", "DOWN", {"zone": "eu-1"})
        assert http.get("/instances/auth-1").json() == inst
        assert http.delete("/instances/auth-1").status_code == 204
        assert http.get("/services").json() == {"services": []}


def test_discovery_returns_every_status_unless_filtered(tmp_path: Path, redis_server: RedisServer) -> None:
    with (
        running_registry(tmp_path, redis_url=redis_server.url) as reg,
        httpx.Client(base_url=reg.url, headers=LEASE) as http,
    ):
        reg.wait_healthy()
        http.post(
            "/instances",
            json={"name": "Auth", "port": 1, "host": "h", "lease_token": TOKEN, "id": "a", "status": "DOWN"},
        )
        http.post("/instances", json={"name": "Auth", "port": 2, "host": "h", "lease_token": TOKEN, "id": "b"})
        assert [i["id"] for i in http.get("/services/Auth").json()["instances"]] == ["a", "b"]
        assert [i["id"] for i in http.get("/services/Auth?status=UP").json()["instances"]] == ["b"]
        assert http.get("/services").json() == {
            "services": [{"name": "Auth", "instances": 2, "statuses": {"DOWN": 1, "UP": 1}}]
        }
        assert http.delete("/instances/a").status_code == 204
        assert http.delete("/instances/a").status_code == 404
        assert http.get("/instances/a").status_code == 404
        assert [i["id"] for i in http.get("/instances").json()["instances"]] == ["b"]
        metrics = http.get("/metrics").text
        assert 'registry_registrations_total{service="Auth"} 2.0' in metrics
        assert 'registry_deregistrations_total{service="Auth"} 1.0' in metrics
        assert http.get("/openapi.json").json()["paths"]["/instances"]["post"]["operationId"] == "register"


def test_instances_survive_a_registry_restart(tmp_path: Path, redis_server: RedisServer) -> None:
    with running_registry(tmp_path, redis_url=redis_server.url, name="first") as reg:
        reg.wait_healthy()
        port = reg.port
        assert (
            httpx.post(
                reg.url + "/instances",
                json={"name": "Auth", "port": 1, "host": "h", "lease_token": TOKEN, "id": "keep"},
            ).status_code
            == 201
        )
    with running_registry(tmp_path, redis_url=redis_server.url, port=port, name="second") as reg:
        reg.wait_healthy()
        got = httpx.get(reg.url + "/instances/keep")
        assert got.status_code == 200
        assert got.json()["name"] == "Auth"
        assert httpx.put(reg.url + "/instances/keep/heartbeat", headers=LEASE).status_code == 200


@pytest.mark.parametrize("sweep", [0.1, 30.0], ids=["sweep-0.1s", "sweep-30s"])
def test_an_instance_is_gone_within_1_5_s_of_its_last_heartbeat(tmp_path: Path, redis_server: RedisServer,
                                                                 sweep: float) -> None:
    """With a 30 s sweep interval too: the sweeper times its next sweep by the leases it knows."""
    with (
        running_registry(tmp_path, redis_url=redis_server.url, ttl=1.0, sweep=sweep) as reg,
        httpx.Client(base_url=reg.url, headers=LEASE) as http,
    ):
        reg.wait_healthy()
        http.post("/instances", json={"name": "Auth", "port": 1, "host": "h", "lease_token": TOKEN, "id": "short"})
        assert http.put("/instances/short/heartbeat").status_code == 200
        last_heartbeat = time.monotonic()
        wait_until(
            lambda: metric_sum(http.get("/metrics").text, "registry_expirations_total") == 1,
            timeout=5,
            interval=0.01,
            message="the sweeper to expire the instance",
        )
        swept_after = time.monotonic() - last_heartbeat
        assert http.get("/instances/short").status_code == 404
        assert swept_after <= 1.5, f"removed {swept_after:.2f}s after the last heartbeat (sweep every {sweep:g} s)"


def test_two_registries_on_one_redis_count_each_expiry_exactly_once(tmp_path: Path, redis_server: RedisServer) -> None:
    batch = 60
    with (
        running_registry(tmp_path, redis_url=redis_server.url, ttl=1.0, sweep=0.05, name="a") as a,
        running_registry(tmp_path, redis_url=redis_server.url, ttl=1.0, sweep=0.05, name="b") as b,
        httpx.Client(headers=LEASE) as http,
    ):
        a.wait_healthy()
        b.wait_healthy()
        for n in range(batch):
            target = a if n % 2 else b
            resp = http.post(
                target.url + "/instances",
                json={"name": f"svc{n % 3}", "port": 1000 + n, "host": "h", "lease_token": TOKEN, "id": f"i-{n}"},
            )
            assert resp.status_code == 201

        def expired_total() -> float:
            return sum(metric_sum(http.get(r.url + "/metrics").text, "registry_expirations_total") for r in (a, b))

        wait_until(lambda: expired_total() >= batch, timeout=15, message="every instance to expire")
        wait_until(
            lambda: http.get(a.url + "/instances").json()["instances"] == [], timeout=5, message="the store to be empty"
        )
        assert expired_total() == batch


def test_redis_killed_and_restarted_answers_503_then_recovers(tmp_path: Path, redis_server: RedisServer) -> None:
    with (
        running_registry(tmp_path, redis_url=redis_server.url) as reg,
        httpx.Client(base_url=reg.url, timeout=10, headers=LEASE) as http,
    ):
        reg.wait_healthy()
        assert (
            http.post(
                "/instances", json={"name": "Auth", "port": 1, "host": "h", "lease_token": TOKEN, "id": "x"}
            ).status_code
            == 201
        )
        redis_server.kill()
        for call in (
            lambda: http.get("/services/Auth"),
            lambda: http.put("/instances/x/heartbeat"),
            lambda: http.post(
                "/instances", json={"name": "Auth", "port": 1, "host": "h", "lease_token": TOKEN, "id": "x"}
            ),
            lambda: http.get("/healthz"),
        ):
            started = time.monotonic()
            resp = call()
            elapsed = time.monotonic() - started
            assert resp.status_code == 503, resp.text
            assert elapsed < 2.0, f"answered after {elapsed:.2f}s"
            if resp.request.url.path != "/healthz":
                assert resp.json()["error"]["code"] == "store_unavailable"
        health = http.get("/healthz").json()
        assert health["expiry_protection"] is True, "an unreachable store pauses expiry"
        assert "registry_expiry_protection_active 1.0" in http.get("/metrics").text
        redis_server.restart(empty=True)
        wait_until(lambda: http.get("/healthz").status_code == 200, timeout=10, message="recovery")
        assert http.get("/healthz").json()["expiry_protection"] is False
        assert http.get("/instances/x").status_code == 404, "the restarted Redis is empty"
        assert http.put("/instances/x/heartbeat").status_code == 404, "so the client learns to re-register"
        assert (
            http.post(
                "/instances", json={"name": "Auth", "port": 1, "host": "h", "lease_token": TOKEN, "id": "x"}
            ).status_code
            == 201
        )
        assert 'registry_store_errors_total{operation="service"}' in http.get("/metrics").text


def test_unreachable_redis_at_start_up_is_retried_until_it_answers(tmp_path: Path) -> None:
    server = RedisServer(data_dir=tmp_path / "late-redis")
    with running_registry(tmp_path, redis_url=server.url) as reg:
        assert http_status(reg.url + "/healthz") == 503
        wait_until(lambda: "not reachable yet" in reg.log_text(), timeout=5, message="the retry to be logged")
        server.start()
        try:
            wait_until(lambda: http_status(reg.url + "/healthz") == 200, timeout=15, message="the store to answer")
            wait_until(lambda: "store redis reachable" in reg.log_text(), timeout=10, message="recovery logged")
        finally:
            server.stop()


def test_sigterm_finishes_the_request_in_flight_then_exits(tmp_path: Path, redis_server: RedisServer) -> None:
    reg = start_registry(tmp_path, redis_url=redis_server.url)
    try:
        reg.wait_healthy()
        body = b'{"name": "Auth", "port": 1, "host": "h", "id": "late"}'
        with socket.create_connection(("127.0.0.1", reg.port), timeout=10) as sock:
            sock.sendall(
                b"POST /instances HTTP/1.1\r\nHost: r\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:10]
            )
            # One event loop serves both connections: once this answers, the POST above is being read.
            assert http_status(reg.url + "/healthz") == 200
            os.killpg(reg.pid, signal.SIGTERM)
            sock.sendall(body[10:])
            reply = sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 201"), reply[:200]
        assert reg.proc is not None
        assert reg.proc.wait(timeout=15) == 0
        assert "sweeper stopped, store closed" in reg.log_text()
    finally:
        reg.stop()


def test_a_bad_setting_exits_2_with_one_line_on_stderr() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    for args, extra in (
        (["--port", "70000"], {}),
        ([], {"REGISTRY_INSTANCE_TTL": "-1"}),
        ([], {"REDIS_URL": "localhost:6379"}),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "registry_server", *args],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("registry-server: error:")


def test_without_redis_url_the_embedded_store_serves_with_a_warning(tmp_path: Path) -> None:
    with running_registry(tmp_path, redis_url=None, port=free_port()) as reg:
        reg.wait_healthy()
        assert httpx.get(reg.url + "/healthz").json() == {"status": "ok", "store": "memory", "expiry_protection": False,
                                                            "shedding": False, "holding": False,
                                                            "heartbeat_spacing_s": None, "fleet_revival": None}
        assert "nothing persists" in reg.log_text()


def test_a_client_trickling_its_body_is_cut_off_with_408(tmp_path: Path) -> None:
    with running_registry(tmp_path, redis_url=None, extra_env={"REGISTRY_READ_TIMEOUT": "1"}) as reg:
        reg.wait_healthy()
        body = b'{"name": "Auth", "port": 1, "host": "h"}'
        with socket.create_connection(("127.0.0.1", reg.port), timeout=10) as sock:
            sock.sendall(
                b"POST /instances HTTP/1.1\r\nHost: r\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
            )
            reply = b""
            for byte in body:  # one byte every 0.3 s: each read is quick, the whole body is not
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    break
                try:
                    sock.settimeout(0.3)
                    reply += sock.recv(65536)
                except TimeoutError:
                    continue
                if reply:
                    break
            sock.settimeout(5)
            while chunk := sock.recv(65536):  # the rest of the answer, until the server closes
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
        assert b'"request_timeout"' in reply


def test_a_client_gone_silent_mid_request_is_disconnected(tmp_path: Path) -> None:
    with running_registry(tmp_path, redis_url=None, extra_env={"REGISTRY_READ_TIMEOUT": "1"}) as reg:
        reg.wait_healthy()
        with socket.create_connection(("127.0.0.1", reg.port), timeout=10) as sock:
            sock.sendall(b"POST /instances HTTP/1.1\r\nHost: r\r\n")  # headers never finished
            started = time.monotonic()
            data = sock.recv(65536)  # blocks until the server answers or closes
            assert time.monotonic() - started < 9, "closed by the read timeout, not the socket timeout"
        assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:200]
