import inspect
import pathlib
import subprocess
import sys

import pytest

import resilient_client
from resilient_client import errors, hooks, sync

PUBLIC_API = [
    "AttemptTimeoutError",
    "BackoffConfig",
    "BreakerConfig",
    "BreakerRejectedError",
    "CircuitOpenError",
    "ClientConfig",
    "ConnectError",
    "ConnectionLostError",
    "ManagerConfig",
    "Picker",
    "RandomPicker",
    "RegistryRequestError",
    "RegistryUnavailableError",
    "ResilientClient",
    "ResilientClientError",
    "Response",
    "RoundRobinPicker",
    "ServiceInstance",
    "ServiceRegistryManager",
    "ServiceUnavailableError",
    "Status",
    "TransportError",
    "WatchConfig",
    "aiohttp_metrics_handler",
    "attach_to_aiohttp",
    "client_metrics",
    "install_signal_handlers",
    "registry_lifespan",
    "shut_down",
]


def test_the_public_api_is_these_names_sorted_and_every_one_is_importable() -> None:
    assert resilient_client.__all__ == PUBLIC_API
    assert sorted(PUBLIC_API) == PUBLIC_API
    for name in resilient_client.__all__:
        assert hasattr(resilient_client, name), name


def test_spec_names_are_exported() -> None:
    for name in ("ServiceRegistryManager", "ResilientClient", "ServiceInstance", "ServiceUnavailableError",
                 "RegistryUnavailableError"):
        assert name in resilient_client.__all__


def test_every_exception_has_the_package_root_and_is_in_the_documented_tree() -> None:
    exceptions = [name for name in resilient_client.__all__
                  if isinstance(getattr(resilient_client, name), type)
                  and issubclass(getattr(resilient_client, name), BaseException)]
    assert exceptions
    for name in exceptions:
        assert issubclass(getattr(resilient_client, name), resilient_client.ResilientClientError), name
        assert name in (errors.__doc__ or ""), name


def test_the_hook_events_are_frozen_and_named_in_the_event_union() -> None:
    union = set(hooks.Event.__args__)
    assert {cls.__name__ for cls in union} == {
        "RequestFinished", "FailedOver", "Retried", "RetryBudgetExhausted", "BreakerStateChanged", "BreakerRejected",
        "BreakerRemoved", "DiscoveryLookedUp", "DiscoveryProtected", "WatchStateChanged", "RegistrationAttempted",
        "RegistrationStateChanged", "HeartbeatSent"}
    for cls in union:
        assert cls.__dataclass_params__.frozen, cls.__name__


def test_modules_behind_the_api_are_private() -> None:
    package = pathlib.Path(resilient_client.__file__).parent
    public = sorted(path.stem for path in package.glob("*.py") if not path.stem.startswith("_"))
    assert public == ["client", "config", "errors", "hooks", "lifecycle", "manager", "metrics", "model", "picker",
                      "response", "sync"]


@pytest.mark.integration
def test_importing_creates_no_metrics_and_reads_no_environment() -> None:
    code = ("import os, prometheus_client as p; os.environ['SERVICE_REGISTRY_HEARTBEAT_INTERVAL']='oops';"
            "import resilient_client;"
            "assert not [m for m in p.REGISTRY.collect() if m.name.startswith('resilient_client')]")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_synchronous_manager_takes_the_arguments_of_the_asynchronous_one() -> None:
    for name in ("__init__", "register", "register_in_background", "set_status", "deregister",
                 "discover_services", "close"):
        ours = inspect.signature(getattr(sync.ServiceRegistryManager, name))
        theirs = inspect.signature(getattr(resilient_client.ServiceRegistryManager, name))
        assert list(ours.parameters.values()) == list(theirs.parameters.values()), name
    for name in ("request", "get", "head", "post", "put", "patch", "delete", "close"):
        assert callable(getattr(sync.ResilientClient, name)), name
