"""The synchronous client against a real registry process and real backend processes: the same calls
without ``await``, from many threads at once, on one background loop, with the same metrics."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client import CollectorRegistry

from resilient_client import ClientConfig, RegistryRequestError, Status
from resilient_client.hooks import RegistrationState
from resilient_client.sync import ResilientClient, ServiceRegistryManager
from tests.support.e2e_backends import SERVICE, Backend, registered
from tests.support.polling import wait_until
from tests.support.processes import RegistryProcess

pytestmark = pytest.mark.integration


def loop_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "resilient-client-loop"]


def test_calls_from_many_threads_spread_over_the_instances_and_count_in_the_same_metrics(
        steady_backends: tuple[RegistryProcess, list[Backend]]) -> None:
    registry, backends = steady_backends
    metrics = CollectorRegistry()
    with ServiceRegistryManager(registry.url, metrics_registry=metrics) as manager, \
            ResilientClient(manager, config=ClientConfig(total_timeout_s=10), metrics_registry=metrics) as client:
        with ThreadPoolExecutor(max_workers=12) as pool:
            ports = list(pool.map(lambda _: client.get(SERVICE, "/whoami").json()["port"], range(120)))
        assert len(loop_threads()) == 1
    assert Counter(ports) == {backend.port: 40 for backend in backends}
    assert metrics.get_sample_value("resilient_client_requests_total",
                                    {"service": SERVICE, "outcome": "success"}) == 120


def test_register_discover_set_status_and_deregister_without_await(
        steady_backends: tuple[RegistryProcess, list[Backend]]) -> None:
    registry, backends = steady_backends
    with ServiceRegistryManager(registry.url, metrics_registry=CollectorRegistry()) as manager:
        instance_id = manager.register("Scripted", 4200, metadata={"kind": "script"})
        assert instance_id is not None and manager.registration_state is RegistrationState.REGISTERED
        assert [item["id"] for item in registered(registry.url, "Scripted")] == [instance_id]
        assert {item.port for item in manager.discover_services(SERVICE)} == {b.port for b in backends}
        assert manager.set_status(Status.DOWN)
        assert registered(registry.url, "Scripted") == []  # (UP only)
        with pytest.raises(RegistryRequestError) as refused:
            manager.register("Scripted", 4200, host="0.0.0.0")
        assert [detail["field"] for detail in refused.value.details] == ["host"]
        manager.register("Scripted", 4200)
        wait_until(lambda: registered(registry.url, "Scripted"), message="registered again")
    wait_until(lambda: registered(registry.url, "Scripted") == [], message="deregistered on leaving with")


def _call_in_child(registry_url: str, answers: multiprocessing.Queue[object]) -> None:
    with ResilientClient(registry_url=registry_url, metrics_registry=CollectorRegistry()) as client:
        answers.put(client.get(SERVICE, "/whoami").status)


def test_a_forked_child_gets_a_loop_of_its_own(steady_backends: tuple[RegistryProcess, list[Backend]]) -> None:
    registry, _backends = steady_backends
    with ResilientClient(registry_url=registry.url, metrics_registry=CollectorRegistry()) as client:
        assert client.get(SERVICE, "/whoami").status == 200  # the parent's loop is running before the fork
        context = multiprocessing.get_context("fork")
        answers: multiprocessing.Queue[object] = context.Queue()
        child = context.Process(target=_call_in_child, args=(registry.url, answers))
        child.start()
        try:
            assert answers.get(timeout=30) == 200
        finally:
            child.join(timeout=30)
        assert child.exitcode == 0
