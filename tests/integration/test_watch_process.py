"""Blocking queries and the change stream across real registry replicas sharing one real Redis."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.polling import wait_until
from tests.support.processes import running_registry, start_registry
from tests.support.redis_server import RedisServer
from tests.support.sse import SseReader

pytestmark = pytest.mark.integration

TOKEN = "lease-token-of-the-test-0001"
LEASE = {"X-Lease-Token": TOKEN}


def register(url: str, iid: str, name: str = "Auth", **extra: object) -> None:
    resp = httpx.post(
        url + "/instances", json={"name": name, "port": 1, "host": "h", "lease_token": TOKEN, "id": iid, **extra}
    )
    assert resp.status_code in (200, 201), resp.text


def test_a_deregistration_through_one_replica_wakes_a_watcher_on_another(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with (
        running_registry(tmp_path, redis_url=redis_server.url, name="a") as a,
        running_registry(tmp_path, redis_url=redis_server.url, name="b") as b,
    ):
        a.wait_healthy()
        b.wait_healthy()
        register(a.url, "x")
        register(a.url, "y")
        index = httpx.get(b.url + "/services/Auth").headers["x-registry-index"]
        answer: dict[str, object] = {}

        def watch() -> None:
            resp = httpx.get(b.url + "/services/Auth", params={"index": index, "wait": "30s"}, timeout=40)
            answer["at"] = time.monotonic()
            answer["resp"] = resp

        watcher = threading.Thread(target=watch)
        watcher.start()
        wait_until(
            lambda: 'registry_watchers{kind="blocking"} 1.0' in httpx.get(b.url + "/metrics").text,
            timeout=10,
            message="the watcher to wait on replica b",
        )
        sent = time.monotonic()
        assert httpx.delete(a.url + "/instances/x", headers=LEASE).status_code == 204
        watcher.join(timeout=20)
        resp = answer["resp"]
        assert isinstance(resp, httpx.Response)
        assert [i["id"] for i in resp.json()["instances"]] == ["y"]
        assert int(resp.headers["x-registry-index"]) > int(index)
        latency = float(answer["at"]) - sent  # type: ignore[arg-type]
        assert latency < 2.0, f"the watcher on b learned of the change after {latency:.3f}s"


def test_the_change_stream_carries_every_kind_of_change_from_every_replica(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with (
        running_registry(tmp_path, redis_url=redis_server.url, ttl=1.0, sweep=0.1, name="a") as a,
        running_registry(tmp_path, redis_url=redis_server.url, ttl=1.0, sweep=0.1, name="b") as b,
    ):
        a.wait_healthy()
        b.wait_healthy()
        stream = SseReader(b.url + "/events?service=Auth").start()
        try:
            wait_until(lambda: stream.of_type("ready"), timeout=10, message="the stream to be ready")
            register(a.url, "s1")
            register(a.url, "other", name="User")  # filtered out
            httpx.put(a.url + "/instances/s1/heartbeat", json={"status": "DOWN"}, headers=LEASE)
            assert httpx.delete(a.url + "/instances/s1", headers=LEASE).status_code == 204
            register(a.url, "s2")
            last_heartbeat = time.monotonic()
            wait_until(lambda: stream.of_type("expired"), timeout=10, message="the expiry event")
            expired_after = time.monotonic() - last_heartbeat
            kinds = [e.event for e in stream.events if e.event not in ("ready",)]
            assert kinds == ["registered", "status_changed", "deregistered", "registered", "expired"]
            data = [e.json() for e in stream.events if e.event != "ready"]
            assert [d["instance"]["id"] for d in data] == ["s1", "s1", "s1", "s2", "s2"]
            assert all(d["service"] == "Auth" for d in data)
            revisions = [d["revision"] for d in data]
            assert revisions == sorted(revisions)
            assert data[1]["instance"]["status"] == "DOWN"
            assert expired_after <= 1.0 + 0.1 + 1.0, f"expiry reached the stream after {expired_after:.2f}s"
            assert 'registry_events_sent_total{type="expired"} 1.0' in httpx.get(b.url + "/metrics").text
        finally:
            stream.close()


def test_a_consumer_resumes_with_last_event_id_or_is_told_to_reset(tmp_path: Path, redis_server: RedisServer) -> None:
    with running_registry(tmp_path, redis_url=redis_server.url) as reg:
        reg.wait_healthy()
        register(reg.url, "r1")
        first = SseReader(reg.url + "/events").start()
        wait_until(lambda: first.of_type("ready"), timeout=10, message="ready")
        register(reg.url, "r2")
        wait_until(lambda: first.of_type("registered"), timeout=10, message="r2 registered")
        resume_from = first.of_type("registered")[-1].id
        first.close()
        register(reg.url, "r3")  # missed while disconnected
        assert httpx.delete(reg.url + "/instances/r1", headers=LEASE).status_code == 204
        resumed = SseReader(reg.url + "/events", headers={"Last-Event-ID": str(resume_from)}).start()
        try:
            wait_until(lambda: resumed.of_type("ready"), timeout=10, message="the replay")
            replayed = [(e.event, e.json()["instance"]["id"]) for e in resumed.events if e.event != "ready"]
            assert replayed == [("registered", "r3"), ("deregistered", "r1")]
        finally:
            resumed.close()
        stale = SseReader(reg.url + "/events", headers={"Last-Event-ID": "99999999999999-0"}).start()
        try:
            wait_until(lambda: stale.of_type("reset"), timeout=10, message="a reset for an unknown history")
        finally:
            stale.close()


def test_sigterm_releases_long_polls_at_once(tmp_path: Path, redis_server: RedisServer) -> None:
    reg = start_registry(tmp_path, redis_url=redis_server.url)
    try:
        reg.wait_healthy()
        answers: list[int] = []

        def watch() -> None:
            resp = httpx.get(reg.url + "/services/Auth", params={"index": "0", "wait": "300s"}, timeout=60)
            answers.append(resp.status_code)

        threads = [threading.Thread(target=watch) for _ in range(5)]
        for t in threads:
            t.start()
        wait_until(
            lambda: 'registry_watchers{kind="blocking"} 5.0' in httpx.get(reg.url + "/metrics").text,
            timeout=10,
            message="five long polls",
        )
        stream = SseReader(reg.url + "/events").start()
        wait_until(lambda: stream.of_type("ready"), timeout=10, message="a stream")
        reg.signal_group(signal.SIGTERM)
        assert reg.proc is not None
        assert reg.proc.wait(timeout=8) == 0, "shutdown did not wait for the 300 s long polls"
        for t in threads:
            t.join(timeout=5)
        assert answers == [200] * 5
        assert stream.ended.wait(5)
        assert "watchers released" in reg.log_text()
    finally:
        reg.stop()


def test_a_blocking_query_whose_client_left_frees_its_slot(tmp_path: Path) -> None:
    with running_registry(tmp_path, redis_url=None) as reg:
        reg.wait_healthy()
        with socket.create_connection(("127.0.0.1", reg.port), timeout=5) as sock:
            sock.sendall(b"GET /services/X?index=0&wait=60s HTTP/1.1\r\nHost: r\r\n\r\n")
            wait_until(
                lambda: 'registry_watchers{kind="blocking"} 1.0' in httpx.get(reg.url + "/metrics").text,
                timeout=10,
                message="the blocking query to hold its slot",
            )
        wait_until(
            lambda: 'registry_watchers{kind="blocking"} 0.0' in httpx.get(reg.url + "/metrics").text,
            timeout=3,
            message="the slot to be freed when the client left",
        )


def test_long_polls_and_change_streams_outlive_the_read_timeout(tmp_path: Path) -> None:
    """A watcher sends nothing while it waits: the server's read timeout must not cut it."""
    with running_registry(tmp_path, redis_url=None, extra_env={"REGISTRY_READ_TIMEOUT": "1"}) as reg:
        reg.wait_healthy()
        stream = SseReader(reg.url + "/events").start()
        try:
            wait_until(lambda: stream.of_type("ready"), timeout=10, message="the stream")
            started = time.monotonic()
            resp = httpx.get(reg.url + "/services/Auth", params={"index": "0", "wait": "3s"}, timeout=15)
            assert resp.status_code == 200
            assert time.monotonic() - started >= 2.9, "answered when its wait ran out, not cut at 1 s"
            assert not stream.ended.is_set(), "the idle change stream is still open after 3 s"
            register(reg.url, "late")
            wait_until(lambda: stream.of_type("registered"), timeout=5, message="an event on the old stream")
        finally:
            stream.close()
