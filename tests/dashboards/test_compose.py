"""docker/compose.yml, docker/Dockerfile and docker/prometheus.yml checked against the code.

No Docker engine runs in CI, so the stack is never started here: these tests parse the files and compare
them with what the code reads (settings, console script, example scripts) and with each other (ports,
Prometheus targets, mounted paths).
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from registry_server.settings import Settings, load_settings
from resilient_client import ManagerConfig
from tests.support.dashboards_exprs import REPO

DOCKER = REPO / "docker"
COMPOSE: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PROMETHEUS: dict[str, Any] = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
DOCKERFILE = (DOCKER / "Dockerfile").read_text()


def _stages(dockerfile: str) -> dict[str, str]:
    """``{stage name: its instructions}``."""
    parts = re.split(r"^FROM\s+", dockerfile, flags=re.MULTILINE)[1:]
    stages: dict[str, str] = {}
    for part in parts:
        header = part.splitlines()[0].split()
        name = header[2] if len(header) >= 3 and header[1].lower() == "as" else header[0]
        stages[name] = "FROM " + part
    return stages


STAGES = _stages(DOCKERFILE)


def _build_target(service: dict[str, Any]) -> str | None:
    build = service.get("build")
    return None if build is None else build.get("target", list(STAGES)[-1])


def _registry_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in SERVICES.items() if _build_target(svc) == "registry"}


def _example_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in SERVICES.items()
            if _build_target(svc) == "examples" and _example_script(svc) is not None}


def _example_script(service: dict[str, Any]) -> Path | None:
    command = service.get("command") or []
    command = shlex.split(command) if isinstance(command, str) else command
    scripts = [arg for arg in command if str(arg).startswith("examples/") and str(arg).endswith(".py")]
    return REPO / scripts[0] if scripts else None


def _container_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(mapping).split(":")[-1].split("/")[0]) for mapping in service.get("ports", [])}


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _registry_settings(service: dict[str, Any]) -> Settings:
    return load_settings([], _env(service))


def _names_read(source: Path) -> set[str]:
    """The environment variable names a module mentions: its quoted UPPER_CASE string literals."""
    return set(re.findall(r"""["']([A-Z][A-Z0-9_]{2,})["']""", source.read_text()))


def test_compose_starts_redis_two_registries_prometheus_grafana_and_example_services() -> None:
    assert "redis" in SERVICES and "prometheus" in SERVICES and "grafana" in SERVICES
    assert len(_registry_services()) == 2
    scripts = {_example_script(svc).name for svc in _example_services().values()}  # type: ignore[union-attr]
    assert scripts == {"auth_service.py", "user_service.py"}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_each_service_has_a_pinned_image_or_an_existing_build_context(name: str) -> None:
    service = SERVICES[name]
    if "build" in service:
        context = (DOCKER / service["build"]["context"]).resolve()
        assert context.is_dir()
        assert (context / service["build"]["dockerfile"]).is_file()
        assert service["build"].get("target", list(STAGES)[-1]) in STAGES
    else:
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag"


def test_dockerfile_copies_only_paths_that_exist() -> None:
    for source in re.findall(r"^COPY\s+(?!--from)(.+?)\s+\S+$", DOCKERFILE, flags=re.MULTILINE):
        for path in source.split():
            assert (REPO / path).exists(), path


def test_registry_image_is_slim_non_root_healthchecked_and_runs_the_console_script() -> None:
    assert list(STAGES)[-1] == "registry", "the registry image must be the default (last) stage"
    registry = STAGES["registry"]
    bases = re.findall(r"^FROM\s+(\S+)", DOCKERFILE, flags=re.MULTILINE)
    assert all(base in STAGES or re.fullmatch(r"python:3\.1[1-9]-slim", base) for base in bases), bases
    users = re.findall(r"^USER\s+(\S+)", registry, flags=re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    assert re.search(r"useradd\s.*--system", DOCKERFILE)
    healthcheck = re.search(r"^HEALTHCHECK\s.*?(?<!\\)$", registry, flags=re.MULTILINE | re.DOTALL)
    assert healthcheck and "/healthz" in healthcheck.group(0)
    assert re.search(r'^ENTRYPOINT \["registry-server"\]$', registry, flags=re.MULTILINE)
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["registry-server"] == "registry_server.__main__:main"
    exposed = {int(port) for port in re.findall(r"^EXPOSE\s+(\d+)", registry, flags=re.MULTILINE)}
    assert exposed == {Settings().port} == {3011}


@pytest.mark.parametrize("name", sorted(_registry_services()))
def test_registry_environment_is_read_and_accepted_by_the_registry_settings(name: str) -> None:
    service = SERVICES[name]
    known = _names_read(REPO / "registry_server" / "settings.py")
    assert set(_env(service)) <= known, f"unknown settings: {set(_env(service)) - known}"
    settings = _registry_settings(service)  # raises ConfigError on a bad value
    assert settings.host == "0.0.0.0"
    assert _container_ports(service) == {settings.port}
    assert settings.redis is not None, "the replicas must share Redis, not the embedded store"
    ((redis_host, redis_port),) = settings.redis.nodes
    assert redis_host in SERVICES and redis_port == 6379
    assert SERVICES[name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_the_host_ports_of_the_registry_replicas_differ() -> None:
    host_ports = [str(mapping).split(":")[0] for svc in _registry_services().values() for mapping in svc["ports"]]
    assert len(host_ports) == len(set(host_ports)) == 2


def test_redis_persists_to_a_volume() -> None:
    redis = SERVICES["redis"]
    command = " ".join(redis["command"]) if isinstance(redis["command"], list) else redis["command"]
    assert "--appendonly yes" in command
    volume = redis["volumes"][0].split(":")
    assert volume[1] == "/data" and volume[0] in COMPOSE["volumes"]


@pytest.mark.parametrize("name", sorted(_example_services()))
def test_example_services_register_under_their_compose_name_with_the_registry_replicas(name: str) -> None:
    service = SERVICES[name]
    script = _example_script(service)
    assert script is not None and script.is_file()
    env = _env(service)
    known = _names_read(REPO / "resilient_client" / "config.py") | _names_read(script)
    assert set(env) <= known, f"{name}: variables nobody reads: {set(env) - known}"
    config = ManagerConfig.from_env(env)  # raises ValueError on a bad value
    assert config.host == name, "other containers reach the instance at the address it registers"
    assert env.get("BIND") == "0.0.0.0"
    registries = {f"{name}:{_registry_settings(svc).port}" for name, svc in _registry_services().items()}
    assert {urlsplit(url).netloc for url in config.registry_urls} == registries


def _targets(job: str) -> set[str]:
    (config,) = [cfg for cfg in PROMETHEUS["scrape_configs"] if cfg["job_name"] == job]
    return {target for static in config["static_configs"] for target in static["targets"]}


def test_prometheus_scrapes_every_registry_replica_at_its_port() -> None:
    expected = {f"{name}:{_registry_settings(svc).port}" for name, svc in _registry_services().items()}
    assert _targets("registry") == expected


def test_prometheus_finds_the_example_services_through_every_registry_replicas_http_sd() -> None:
    (config,) = [cfg for cfg in PROMETHEUS["scrape_configs"] if cfg["job_name"] == "services"]
    assert "static_configs" not in config, "the services are found through the registry, not listed"
    replicas = {f"{name}:{_registry_settings(svc).port}" for name, svc in _registry_services().items()}
    assert {sd["url"] for sd in config["http_sd_configs"]} == {f"http://{r}/prometheus/targets" for r in replicas}
    # each example registers the host:port it listens on (see the test of the client environment above)
    listening = {name: ManagerConfig.from_env(_env(svc)) for name, svc in _example_services().items()}
    assert all(manager.host == name for name, manager in listening.items())


def test_prometheus_jobs_are_exactly_registry_and_services() -> None:
    assert [cfg["job_name"] for cfg in PROMETHEUS["scrape_configs"]] == ["registry", "services"]


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """``{container path: host path}`` of the bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            mounts[target] = (DOCKER / source).resolve()
    return mounts


def test_prometheus_mounts_its_config_and_the_rules_it_loads() -> None:
    mounts = _mounts(SERVICES["prometheus"])
    assert mounts["/etc/prometheus/prometheus.yml"] == (DOCKER / "prometheus.yml").resolve()
    for rule_file in PROMETHEUS["rule_files"]:
        assert mounts[rule_file] == (REPO / "dashboards" / "prometheus" / "rules.yml").resolve()
    assert f"--config.file={'/etc/prometheus/prometheus.yml'}" in SERVICES["prometheus"]["command"]


def test_grafana_mounts_provisioning_and_the_dashboards_where_the_provider_looks() -> None:
    grafana = SERVICES["grafana"]
    mounts = _mounts(grafana)
    provisioning = mounts["/etc/grafana/provisioning"]
    assert provisioning == (REPO / "dashboards" / "grafana" / "provisioning").resolve()
    assert (provisioning / "datasources").is_dir() and (provisioning / "dashboards").is_dir()
    (provider_file,) = (provisioning / "dashboards").glob("*.yml")
    (provider,) = yaml.safe_load(provider_file.read_text())["providers"]
    dashboards_dir = mounts[provider["options"]["path"]]
    assert sorted(path.name for path in dashboards_dir.glob("*.json")) == ["client.json", "registry.json"]
    home = _env(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (dashboards_dir / Path(home).relative_to(provider["options"]["path"])).is_file()


def test_grafana_datasource_points_at_the_compose_prometheus() -> None:
    (source,) = (REPO / "dashboards" / "grafana" / "provisioning" / "datasources").glob("*.yml")
    (datasource,) = yaml.safe_load(source.read_text())["datasources"]
    url = urlsplit(datasource["url"])
    assert url.hostname == "prometheus" and url.hostname in SERVICES and url.port == 9090
    assert "9090:9090" in SERVICES["prometheus"]["ports"]
    assert datasource["jsonData"]["timeInterval"] == PROMETHEUS["global"]["scrape_interval"]
