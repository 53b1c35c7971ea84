"""The distribution: what the plain install brings, and a wheel built as the Docker image builds it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

from registry_server.__main__ import INSTALL_HINT, SERVER_MODULES

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
DOCKERFILE = (REPO / "docker" / "Dockerfile").read_text()
CLIENT_DEPENDENCIES = {"aiohttp", "prometheus-client", "pybreaker"}


def _names(requirements: list[str]) -> set[str]:
    return {re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower() for requirement in requirements}  # type: ignore[union-attr]


def _run_without_server_modules(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where every module of the ``[server]`` extra fails to import."""
    block = f"import sys\nfor _m in {sorted(SERVER_MODULES)!r}:\n    sys.modules[_m] = None\n"
    return subprocess.run([sys.executable, "-c", block + code], capture_output=True, text=True, timeout=60,
                          cwd=REPO, check=False)


def test_the_plain_install_is_the_client_and_the_server_comes_with_an_extra() -> None:
    project = PYPROJECT["project"]
    assert _names(project["dependencies"]) == CLIENT_DEPENDENCIES
    server = _names(project["optional-dependencies"]["server"])
    assert {"starlette", "hypercorn", "redis", "pydantic", "sse-starlette", "defusedxml"} <= server
    assert not server & CLIENT_DEPENDENCIES
    assert "service-registry[server,test,docs]" in project["optional-dependencies"]["dev"]


@pytest.mark.integration
def test_client_and_registryctl_import_without_the_server_dependencies() -> None:
    result = _run_without_server_modules(
        "import resilient_client, registryctl.cli, registry_server\n"
        "from resilient_client import ResilientClient, ClientConfig\n"
        "assert not any(sys.modules.get(m) for m in " + repr(sorted(SERVER_MODULES)) + ")\n"
        "print('client ok')")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "client ok"


@pytest.mark.integration
def test_registry_server_without_its_dependencies_says_in_one_line_what_to_install() -> None:
    result = _run_without_server_modules("from registry_server.__main__ import main\nmain(['--help'])")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("registry-server: error: ") and lines[0].endswith(INSTALL_HINT)


def _dockerfile_build_copies() -> list[str]:
    build = DOCKERFILE.split("FROM ", 2)[1]  # the first stage: the one that builds the wheel
    return [path for line in re.findall(r"^COPY\s+(?!--from)(.+?)\s+\S+$", build, flags=re.MULTILINE)
            for path in line.split()]


@pytest.mark.integration
def test_the_wheel_built_as_the_dockerfile_does_runs_every_console_script(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for path in _dockerfile_build_copies():  # only what the image's build stage copies
        origin = REPO / path
        if origin.is_dir():
            shutil.copytree(origin, source / path, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, source / path)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    "--wheel-dir", str(wheels), str(source)], check=True, timeout=300, cwd=tmp_path)
    (wheel,) = wheels.glob("service_registry-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packages = {name.split("/", 1)[0] for name in archive.namelist() if "/" in name}
        metadata = next(archive.read(name).decode() for name in archive.namelist() if name.endswith("METADATA"))
    assert {"registry_server", "resilient_client", "registryctl"} <= packages
    required = [line.removeprefix("Requires-Dist: ") for line in metadata.splitlines()
                if line.startswith("Requires-Dist: ") and "extra ==" not in line]
    assert _names(required) == CLIENT_DEPENDENCIES

    # A fresh environment: the dependencies from the interpreter's own site-packages, the package from the wheel.
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    "--no-index", str(wheel)], check=True, timeout=300, cwd=tmp_path)
    located = subprocess.run([str(python), "-c", "import registryctl, registry_server, resilient_client as c; "
                              "print(registryctl.__file__, registry_server.__file__, c.__file__)"],
                             capture_output=True, text=True, check=True, timeout=60, cwd=tmp_path)
    assert all(path.startswith(str(env_dir)) for path in located.stdout.split()), located.stdout
    for script in PYPROJECT["project"]["scripts"]:
        result = subprocess.run([str(env_dir / "bin" / script), "--help"], capture_output=True, text=True,
                                timeout=60, cwd=tmp_path, check=False)
        assert result.returncode == 0, f"{script}: {result.stderr}"
        assert result.stdout.startswith(f"usage: {script}"), result.stdout
