"""A real Prometheus, loaded with the project's rules and the compose stack's scrape jobs, scrapes a live
registry (two replicas on a real Redis) and live example services that call each other through the client.
The test scripts an incident — a replica lost, expiries, a deregistration, a failover, an open breaker, a
Redis outage, every backend gone — and meanwhile evaluates every dashboard query and every rule through
Prometheus's HTTP API: each must parse and return at least one series before the deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.dashboards_exprs import REPO, RULES, Expression, all_expressions, load_rules, substitute
from tests.support.dashboards_prometheus import PrometheusServer, PromQLError, require_binary, start_prometheus
from tests.support.polling import wait_until
from tests.support.processes import ManagedProcess, RegistryProcess, free_port, http_status, start_registry
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

# Grafana's variables, as a user picking "All" services sees them; 15 s spans 15 scrapes here.
NO_LIVE_DATA = "resilient_client_retry_budget_exhausted_total"
GRAFANA_VALUES = {"service": ".*", "__rate_interval": "15s"}
TTL_S = 2.0
SWEEP_S = 0.2


_LEASE_TOKEN = "dashboards-test-lease-token"


def _request(method: str, url: str, body: dict[str, Any] | None = None) -> int:
    """One registry call; registrations carry the test's lease token and every call presents it."""
    if body is not None and method == "POST":
        body = {"lease_token": _LEASE_TOKEN, **body}
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", "X-Lease-Token": _LEASE_TOKEN})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _instance_count(registry: RegistryProcess, service: str) -> int:
    with urllib.request.urlopen(f"{registry.url}/services/{service}", timeout=5) as resp:
        return len(json.loads(resp.read())["instances"])


def start_example(tmp_path: Path, script: str, port: int, registry_urls: list[str]) -> ManagedProcess:
    """An ``examples/`` service as a user runs it, with short intervals so the test sees changes in seconds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SERVICE_REGISTRY_", "REGISTRY_", "REDIS_URL"))}
    env.update({"SERVICE_REGISTRY_URL": ",".join(registry_urls), "SERVICE_REGISTRY_HEARTBEAT_INTERVAL": "500",
                "SERVICE_REGISTRY_RETRY_DELAY": "100", "SERVICE_REGISTRY_MAX_RETRIES": "2",
                "SERVICE_REGISTRY_CACHE_TTL": "1000", "HOST": "127.0.0.1", "BIND": "127.0.0.1", "PORT": str(port),
                "PYTHONUNBUFFERED": "1"})
    args = [sys.executable, str(REPO / "examples" / script)]
    return ManagedProcess(args=args, env=env, log_path=tmp_path / f"{Path(script).stem}-{port}.log").start()


def prometheus_config(targets: dict[str, list[str]]) -> dict[str, Any]:
    """docker/prometheus.yml with loopback targets, 1 s intervals and the rules file of the repository."""
    config: dict[str, Any] = yaml.safe_load((REPO / "docker" / "prometheus.yml").read_text())
    assert {job["job_name"] for job in config["scrape_configs"]} == set(targets)
    config["global"].update({"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"})
    config["rule_files"] = [str(RULES)]
    for job in config["scrape_configs"]:
        # The test's own processes, listed: the registry's HTTP SD would drop a service the moment it
        # expires, and this test needs each process's series whether or not it is registered.
        job.pop("http_sd_configs", None)
        job.pop("relabel_configs", None)
        job["static_configs"] = [{"targets": targets[job["job_name"]]}]
    return config


class Traffic:
    """Threads calling the Auth example's ``/login/42`` (Auth calls User through ResilientClient)."""

    def __init__(self, url: str, threads: int = 2) -> None:
        self.url = url
        self.statuses: dict[int, int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        while not self._stop.is_set():
            status = http_status(self.url, timeout=10)
            with self._lock:
                self.statuses[status] = self.statuses.get(status, 0) + 1
            self._stop.wait(0.01)

    def start(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)


class EventStream:
    """A change-stream consumer of one registry (``GET /events``), reconnecting until stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.lines = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=2) as resp:
                    for _line in resp:
                        self.lines += 1
                        if self._stop.is_set():
                            return
            except OSError:
                self._stop.wait(0.2)

    def start(self) -> EventStream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


class ExpressionWatch:
    """Evaluates expressions over and over in a thread; remembers which ever returned a series."""

    def __init__(self, prometheus: PrometheusServer, expressions: list[Expression]) -> None:
        self._prometheus = prometheus
        self._pending = {expr.where: expr for expr in expressions}
        self.answered: dict[str, dict[str, Any]] = {}
        self.refused: dict[str, str] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                pending = list(self._pending.values())
            for expr in pending:
                self._evaluate(expr)
            self._stop.wait(0.2)

    def _evaluate(self, expr: Expression) -> None:
        try:
            result = self._prometheus.query(substitute(expr.expr, GRAFANA_VALUES))
        except PromQLError as exc:
            with self._lock:
                if "bad_data" in str(exc):  # does not parse: no point in asking again
                    self.refused[expr.where] = str(exc)
                    self._pending.pop(expr.where, None)
                else:
                    self._errors[expr.where] = str(exc)
            return
        except OSError as exc:
            with self._lock:
                self._errors[expr.where] = repr(exc)
            return
        if result:
            with self._lock:
                self.answered[expr.where] = result[0]
                self._pending.pop(expr.where, None)

    def pending(self, which: Callable[[Expression], bool] = lambda _: True) -> list[Expression]:
        with self._lock:
            return [expr for expr in self._pending.values() if which(expr)]

    def wait_answered(self, which: Callable[[Expression], bool], timeout: float, message: str) -> None:
        wait_until(lambda: not self.pending(which) or self.refused, timeout=timeout, interval=0.1,
                   message=f"{message}: still without data: {[e.where for e in self.pending(which)]}")

    def report(self) -> str:
        with self._lock:
            lines = [f"{where}: {self._pending[where].expr}\n    last error: {self._errors.get(where, '-')}"
                     for where in self._pending]
        return "\n".join(lines)

    def __enter__(self) -> ExpressionWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


@contextlib.contextmanager
def stopping(process: ManagedProcess | PrometheusServer) -> Iterator[None]:
    try:
        yield
    finally:
        process.stop()


def test_every_dashboard_query_and_rule_returns_data_from_a_live_registry_and_client(
        tmp_path: Path, redis_server: RedisServer) -> None:
    require_binary("prometheus")
    started = time.monotonic()
    reg1_port, reg2_port, auth_port, user_a_port, user_b_port, user_c_port = (free_port() for _ in range(6))
    registries = [f"http://127.0.0.1:{reg1_port}", f"http://127.0.0.1:{reg2_port}"]
    config = prometheus_config({
        "registry": [f"127.0.0.1:{reg1_port}", f"127.0.0.1:{reg2_port}"],
        "services": [f"127.0.0.1:{port}" for port in (auth_port, user_a_port, user_b_port, user_c_port)],
    })
    # The retry budget's counter is born at the first call a budget refuses; the examples run without a
    # budget (breakers end the scripted incident's retries first), so its alert is tested by promtool only
    # (rules_test.yml) and checked here to parse and evaluate, not to return data.
    expressions = [expr for expr in all_expressions() if NO_LIVE_DATA not in expr.expr]
    with contextlib.ExitStack() as stack:
        prometheus = start_prometheus(tmp_path, config)
        stack.enter_context(stopping(prometheus))
        reg1 = start_registry(tmp_path, redis_url=redis_server.url, ttl=TTL_S, sweep=SWEEP_S, port=reg1_port,
                              name="registry-1")
        stack.enter_context(stopping(reg1))
        reg2 = start_registry(tmp_path, redis_url=redis_server.url, ttl=TTL_S, sweep=SWEEP_S, port=reg2_port,
                              name="registry-2")
        stack.enter_context(stopping(reg2))
        prometheus.wait_ready()
        reg1.wait_healthy()
        reg2.wait_healthy()

        user_a = start_example(tmp_path, "user_service.py", user_a_port, registries)
        stack.enter_context(stopping(user_a))
        user_b = start_example(tmp_path, "user_service.py", user_b_port, registries)
        stack.enter_context(stopping(user_b))
        auth = start_example(tmp_path, "auth_service.py", auth_port, registries)
        stack.enter_context(stopping(auth))
        wait_until(lambda: _instance_count(reg1, "User") == 2 and _instance_count(reg1, "Auth") == 1, timeout=20,
                   message="two User and one Auth instance registered")
        traffic = Traffic(f"http://127.0.0.1:{auth_port}/login/42").start()
        stack.callback(traffic.stop)
        stream = EventStream(f"{reg1.url}/events").start()  # change-stream events for the watch panels
        stack.callback(stream.stop)

        def seen(expr: str) -> bool:
            return bool(prometheus.query(expr))

        watch = stack.enter_context(ExpressionWatch(prometheus, expressions))
        wait_until(lambda: seen('sum(rate(resilient_client_requests_total{outcome="success"}[5s])) > 0'),
                   timeout=15, message="Prometheus to see successful calls from Auth to User")

        # A registry replica dies; expiries, a deregistration and an unknown heartbeat on the one left.
        reg2.kill()
        assert _request("POST", f"{reg1.url}/instances", {"name": "Batch", "port": 9, "id": "batch-0"}) == 201
        assert _request("POST", f"{reg1.url}/instances", {"name": "Batch", "port": 9, "id": "batch-gone"}) == 201
        assert _request("DELETE", f"{reg1.url}/instances/batch-gone") == 204
        assert _request("PUT", f"{reg1.url}/instances/nobody/heartbeat") == 404
        # Instances whose health endpoint nobody answers: failed checks, critical; one kept registered while
        # Prometheus scrapes its failures, one deregistered for being critical too long.
        sick_port, sick_kept = free_port(), [0.0]
        assert _request("POST", f"{reg1.url}/instances", {
            "name": "Sick", "port": sick_port, "host": "127.0.0.1", "id": "sick-gone",
            "health_check": {"interval": 0.2, "timeout": 0.2, "failures": 1, "deregister_after": 0.5}}) == 201

        def keep_sick() -> bool:
            """Register (and so renew) the sick instance again, at most twice a second."""
            if time.monotonic() - sick_kept[0] >= 0.5:
                sick_kept[0] = time.monotonic()
                _request("POST", f"{reg1.url}/instances", {
                    "name": "Sick", "port": sick_port, "host": "127.0.0.1", "id": "sick-0",
                    "health_check": {"interval": 0.2, "timeout": 0.2, "failures": 1}})
            return True
        # Prometheus only sees a counter's increase from its first scrape on: let it see Batch's first expiry.
        wait_until(lambda: seen('registry_expirations_total{service="Batch"}'), timeout=15,
                   message="Prometheus to see the first Batch expiry")
        for n in (1, 2, 3):
            assert _request("POST", f"{reg1.url}/instances", {"name": "Batch", "port": 9, "id": f"batch-{n}"}) == 201

        # A User backend is SIGKILLed while Auth keeps calling: failover, then its breaker opens; it expires.
        # (Once the killed backend expires, the client drops its breaker and the gauge series with it:
        # the open breaker is looked for before the expiry, not at the same time.)
        user_a.kill()
        wait_until(lambda: seen("resilient_client_circuit_breaker_state == 2"), timeout=20,
                   message="an open breaker")
        wait_until(lambda: keep_sick() and seen('sum(registry_expirations_total{service="Batch"}) >= 4')
                   and seen('registry_expirations_total{service="User"}')
                   and seen('sum(rate(registry_health_checks_total{result="failed"}[1m])) > 0'),
                   timeout=20, message="four Batch expiries and one User expiry")

        # Redis goes away: store errors, 503s, failed heartbeats, stale discovery; a new User cannot register.
        redis_server.kill()
        user_c = start_example(tmp_path, "user_service.py", user_c_port, registries)
        stack.enter_context(stopping(user_c))
        outage_signs = ("registry_store_errors_total", '"5.."', 'result="stale"', 'outcome="failed"')
        watch.wait_answered(lambda e: any(sign in e.expr for sign in outage_signs), timeout=25,
                            message="the queries about the Redis outage")
        redis_server.start()
        reg1.wait_healthy()

        # The store wiped under running callers: Auth refuses an empty answer for User (empty-set protection).
        def wiped_and_protected() -> bool:
            redis_server.flushall()
            return seen('resilient_client_discovery_protections_total{outcome="started"}')

        wait_until(wiped_and_protected, timeout=45, interval=0.3, message="Auth to protect User from a wiped store")

        # Every User backend gone: calls fail, retry, meet open breakers, then find no instance at all.
        user_b.kill()
        user_c.kill()
        watch.wait_answered(lambda _: True, timeout=25, message="every dashboard query and rule")

        assert not watch.refused, f"expressions Prometheus cannot parse: {watch.refused}"
        assert not watch.pending(), f"without data:\n{watch.report()}"
        rules = prometheus.rules()
        assert len(rules) == len(load_rules())
        broken = {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] == "err"}
        assert not broken, f"rules failing to evaluate: {broken}"
        assert traffic.statuses.get(200), f"no call ever succeeded: {traffic.statuses}"
    assert time.monotonic() - started < 90
