import importlib
import subprocess
import sys

import pytest

import resilient_client


def test_all_is_sorted_and_every_name_is_importable() -> None:
    assert resilient_client.__all__ == sorted(resilient_client.__all__)
    for name in resilient_client.__all__:
        assert hasattr(resilient_client, name), name


def test_spec_names_are_exported() -> None:
    for name in ("ServiceRegistryManager", "ResilientClient", "ServiceInstance", "ServiceUnavailableError",
                 "RegistryUnavailableError"):
        assert name in resilient_client.__all__


def test_every_exception_has_the_package_root() -> None:
    for name in resilient_client.__all__:
        value = getattr(resilient_client, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert issubclass(value, resilient_client.ResilientClientError), name


@pytest.mark.integration
def test_importing_creates_no_metrics_and_reads_no_environment() -> None:
    code = ("import os, prometheus_client as p; os.environ['SERVICE_REGISTRY_HEARTBEAT_INTERVAL']='oops';"
            "import resilient_client;"
            "assert not [m for m in p.REGISTRY.collect() if m.name.startswith('resilient_client')]")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_modules_stay_small() -> None:
    import pathlib

    for path in pathlib.Path(resilient_client.__file__).parent.glob("*.py"):
        module = importlib.import_module(f"resilient_client.{path.stem}") if path.stem != "__init__" else None
        assert module is None or len(path.read_text().splitlines()) < 320, path.name
