"""A real Prometheus (the OS package) discovers the registry's services through ``http_sd_configs``,
``eureka_sd_configs`` and ``consul_sd_configs`` pointed at the registry, scrapes them, and drops a
service once it deregisters. Under ``CI`` a missing ``prometheus`` binary fails the test.

Debian's ``prometheus`` package is built without Consul service discovery (``consul_sd_configs`` is an
unknown field there): the Consul job is then skipped with that reason, checked with ``promtool``."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.dashboards_prometheus import PrometheusServer, require_binary, start_prometheus
from tests.support.interop_peers import call, register, start_backend
from tests.support.polling import wait_until
from tests.support.processes import ManagedProcess, RegistryProcess, running_registry
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration
FAST = {"refresh_interval": "1s"}


def scrape_jobs(registry: RegistryProcess) -> dict[str, dict[str, Any]]:
    return {
        "http_sd": {"job_name": "http_sd", "http_sd_configs": [{"url": registry.url + "/prometheus/targets", **FAST}]},
        "eureka": {"job_name": "eureka", "eureka_sd_configs": [{"server": registry.url + "/eureka", **FAST}]},
        "consul": {"job_name": "consul", "consul_sd_configs": [{"server": f"127.0.0.1:{registry.port}", **FAST}]},
    }


def prometheus_config(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "scrape_configs": jobs}


def require_sd(tmp_path: Path, job: dict[str, Any]) -> None:
    """Skip unless this Prometheus build has the job's service discovery (``promtool check config``)."""
    path = tmp_path / f"check-{job['job_name']}.yml"
    path.write_text(yaml.safe_dump(prometheus_config([job])))
    checked = subprocess.run([require_binary("promtool"), "check", "config", str(path)], capture_output=True,
                             text=True, timeout=30, check=False)
    if checked.returncode != 0:
        pytest.skip(f"this prometheus build cannot load {job['job_name']} discovery: "
                    f"{(checked.stdout + checked.stderr).strip().splitlines()[-1]}")


@pytest.fixture
def registry(tmp_path: Path, redis_server: RedisServer) -> Iterator[RegistryProcess]:
    with running_registry(tmp_path, redis_url=redis_server.url, ttl=90, sweep=0.5) as proc:
        proc.wait_healthy()
        yield proc


@pytest.fixture
def backends(tmp_path: Path) -> Iterator[dict[str, int]]:
    started: list[ManagedProcess] = []
    ports = {}
    try:
        for name in ("Alpha", "Beta"):
            proc, ports[name] = start_backend(tmp_path, name)
            started.append(proc)
        yield ports
    finally:
        for proc in started:
            proc.stop()


def scraped_up(prom: PrometheusServer) -> set[tuple[str, str]]:
    """(job, backend) of every target whose last scrape succeeded, by what the backend itself reports."""
    pairs = {(s["metric"]["job"], s["metric"]["backend"]) for s in prom.query("interop_backend_info")}
    healthy_jobs_instances = {(s["metric"]["job"], s["metric"]["instance"]) for s in prom.query("up == 1")}
    scraped = {(s["metric"]["job"], s["metric"]["instance"]) for s in prom.query("interop_backend_info")}
    assert scraped <= healthy_jobs_instances
    return pairs


def discover_scrape_and_drop(tmp_path: Path, registry: RegistryProcess, backends: dict[str, int],
                             jobs: list[str]) -> None:
    register(registry.url, "Alpha", backends["Alpha"], "alpha-1", metadata={"team.name": "core"})
    register(registry.url, "Beta", backends["Beta"], "beta-1")
    every_job = scrape_jobs(registry)
    prom = start_prometheus(tmp_path, prometheus_config([every_job[job] for job in jobs]))
    try:
        prom.wait_ready()
        every = {(job, name) for job in jobs for name in ("Alpha", "Beta")}
        wait_until(lambda: scraped_up(prom) >= every, timeout=45, interval=0.5,
                   message=f"every backend scraped (up == 1) through {', '.join(jobs)} discovery")
        for job in jobs:
            ups = prom.query(f'up{{job="{job}"}}')
            assert len(ups) == 2 and all(s["value"][1] == "1" for s in ups), ups

        status, _ = call("DELETE", registry.url + "/instances/beta-1")
        assert status == 204
        wait_until(lambda: len(prom.query("up")) == len(jobs), timeout=45, interval=0.5,
                   message="Beta's targets gone from every job after its deregistration")
        assert {(job, "Alpha") for job in jobs} <= scraped_up(prom)
        assert not {pair for pair in scraped_up(prom) if pair[1] == "Beta"}
    finally:
        prom.stop()


def test_prometheus_http_sd_and_eureka_sd_discover_scrape_and_drop_registered_services(
        tmp_path: Path, registry: RegistryProcess, backends: dict[str, int]) -> None:
    require_binary("prometheus")
    discover_scrape_and_drop(tmp_path, registry, backends, ["http_sd", "eureka"])


def test_prometheus_consul_sd_discovers_scrapes_and_drops_the_same_services(
        tmp_path: Path, registry: RegistryProcess, backends: dict[str, int]) -> None:
    require_binary("prometheus")
    require_sd(tmp_path, scrape_jobs(registry)["consul"])
    discover_scrape_and_drop(tmp_path, registry, backends, ["consul"])


def test_http_sd_targets_carry_the_instance_labels_prometheus_relabels_from(
        tmp_path: Path, registry: RegistryProcess, backends: dict[str, int]) -> None:
    require_binary("prometheus")
    register(registry.url, "Alpha", backends["Alpha"], "alpha-1", metadata={"team.name": "core"})
    job = {**scrape_jobs(registry)["http_sd"], "relabel_configs": [
        {"source_labels": ["__meta_registry_service"], "target_label": "registry_service"},
        {"source_labels": ["__meta_registry_instance_id"], "target_label": "registry_instance_id"},
        {"source_labels": ["__meta_registry_metadata_team_name"], "target_label": "team"}]}
    prom = start_prometheus(tmp_path, prometheus_config([job]))
    try:
        prom.wait_ready()
        series = wait_until(lambda: prom.query("up == 1"), timeout=30, interval=0.5, message="Alpha scraped")
        assert series[0]["metric"] | {"registry_service": "Alpha", "registry_instance_id": "alpha-1",
                                      "team": "core"} == series[0]["metric"]
    finally:
        prom.stop()
