"""The client for synchronous code (Flask, Django, scripts, worker threads): the same classes, without ``await``.

::

    from resilient_client.sync import ResilientClient, ServiceRegistryManager

    with ServiceRegistryManager() as manager, ResilientClient(manager) as client:
        manager.register_in_background("Orders", 8000)
        user = client.get("User", "/users/42").json()

Each class takes the arguments of its asynchronous twin (:class:`resilient_client.ServiceRegistryManager`,
:class:`resilient_client.ResilientClient`) and offers the same methods, which block until done. They run on
one background event loop per process, in a daemon thread started on first use (and again in a child
after ``fork``, as under a pre-forking server), so they are safe to share between threads: the calls of
every thread run concurrently on that loop, with the same caches, circuit breakers and metrics as the
asynchronous client. Do not call them from a hook: hooks run on that loop, which would wait for itself.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
from prometheus_client import CollectorRegistry

from resilient_client import client as _client
from resilient_client import manager as _manager
from resilient_client._clock import Clock
from resilient_client.config import ManagerConfig
from resilient_client.hooks import Hook, RegistrationState
from resilient_client.model import ServiceInstance, Status
from resilient_client.response import Response

__all__ = ["ResilientClient", "ServiceRegistryManager"]

T = TypeVar("T")


class _BackgroundLoop:
    """An event loop running forever in a daemon thread of its own."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="resilient-client-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result; the caller's interruption cancels it."""
        if os.getpid() != self.pid:
            coro.close()
            raise RuntimeError("this resilient_client.sync object was made before the process forked; make it "
                               "in the child (under a pre-forking server: after the fork)")
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("resilient_client.sync called from its own event loop (from a hook?): "
                               "it would wait for itself")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise


_lock = threading.Lock()
_shared: _BackgroundLoop | None = None


def _background_loop() -> _BackgroundLoop:
    """The process's loop; a forked child starts its own (the parent's thread did not follow it)."""
    global _shared
    with _lock:
        if _shared is None or _shared.pid != os.getpid():
            _shared = _BackgroundLoop()
        return _shared


async def _built(factory: Any, *args: Any, **kwargs: Any) -> Any:
    """Build an asynchronous object on the loop that will use it."""
    return factory(*args, **kwargs)


class ServiceRegistryManager:
    """:class:`resilient_client.ServiceRegistryManager` for synchronous code; see :mod:`resilient_client.sync`."""

    def __init__(self, registry_url: str | Sequence[str] | None = None, heartbeat_interval: float | None = None,
                 retry_delay: float | None = None, max_retries: int | None = None,
                 cache_ttl: float | None = None, auth_token: str | None = None, host: str | None = None,
                 port: int | None = None, *, watch: bool | None = None, config: ManagerConfig | None = None,
                 metrics_registry: CollectorRegistry | None = None, metrics: bool = True,
                 hooks: Iterable[Hook] = (), clock: Clock | None = None,
                 rng: random.Random | None = None, session: aiohttp.ClientSession | None = None,
                 health_check_interval: float | None = None) -> None:
        self._loop = _background_loop()
        self.aio: _manager.ServiceRegistryManager = self._loop.run(_built(
            _manager.ServiceRegistryManager, registry_url, heartbeat_interval, retry_delay, max_retries,
            cache_ttl, auth_token, host, port, watch=watch, config=config, metrics_registry=metrics_registry,
            metrics=metrics, hooks=hooks, clock=clock, rng=rng, session=session,
            health_check_interval=health_check_interval))
        """The asynchronous manager this one drives, on the background loop."""

    @property
    def config(self) -> ManagerConfig:
        return self.aio.config

    @property
    def instance_id(self) -> str | None:
        return self.aio.instance_id

    @property
    def registered(self) -> bool:
        return self.aio.registered

    @property
    def registration_state(self) -> RegistrationState:
        return self.aio.registration_state

    @property
    def status(self) -> Status:
        return self.aio.status

    @property
    def lease_token(self) -> str | None:
        return self.aio.lease_token

    def register(self, name: str, port: int | None = None, *, host: str | None = None, version: str = "",
                 description: str = "", health_endpoint: str = "/health", scheme: str = "http",
                 metadata: Mapping[str, str] | None = None, status: Status | str = Status.UP,
                 instance_id: str | None = None) -> str | None:
        """See :meth:`resilient_client.ServiceRegistryManager.register` (blocks through the retries)."""
        return self._loop.run(self.aio.register(
            name, port, host=host, version=version, description=description, health_endpoint=health_endpoint,
            scheme=scheme, metadata=metadata, status=status, instance_id=instance_id))

    def register_in_background(self, name: str, port: int | None = None, *, host: str | None = None,
                               version: str = "", description: str = "", health_endpoint: str = "/health",
                               scheme: str = "http", metadata: Mapping[str, str] | None = None,
                               status: Status | str = Status.UP, instance_id: str | None = None) -> str:
        """See :meth:`resilient_client.ServiceRegistryManager.register_in_background` (returns at once)."""
        return self._loop.run(self.aio.register_in_background(
            name, port, host=host, version=version, description=description, health_endpoint=health_endpoint,
            scheme=scheme, metadata=metadata, status=status, instance_id=instance_id))

    def set_status(self, status: Status | str) -> bool:
        return self._loop.run(self.aio.set_status(status))

    def deregister(self) -> None:
        self._loop.run(self.aio.deregister())

    def discover_services(self, name: str | None = None,
                          status: Status | str | None = Status.UP) -> list[ServiceInstance]:
        return self._loop.run(self.aio.discover_services(name, status))

    def close(self) -> None:
        self._loop.run(self.aio.close())

    def __enter__(self) -> ServiceRegistryManager:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._loop.run(self.aio.__aexit__(exc_type, exc, tb))

    def __repr__(self) -> str:
        return f"sync.{self.aio!r}"


class ResilientClient:
    """:class:`resilient_client.ResilientClient` for synchronous code; see :mod:`resilient_client.sync`.

    ``manager`` is a synchronous :class:`ServiceRegistryManager` (or ``None``: the client makes and owns
    one); every keyword argument is the asynchronous client's.
    """

    def __init__(self, manager: ServiceRegistryManager | None = None, **options: Any) -> None:
        self._loop = _background_loop()
        self.aio: _client.ResilientClient = self._loop.run(
            _built(_client.ResilientClient, None if manager is None else manager.aio, **options))
        """The asynchronous client this one drives, on the background loop."""

    def request(self, method: str, service: str, path: str, **kwargs: Any) -> Response:
        """See :meth:`resilient_client.ResilientClient.request`: the same keyword arguments."""
        return self._loop.run(self.aio.request(method, service, path, **kwargs))

    def get(self, service: str, path: str, **kwargs: Any) -> Response:
        return self.request("GET", service, path, **kwargs)

    def head(self, service: str, path: str, **kwargs: Any) -> Response:
        return self.request("HEAD", service, path, **kwargs)

    def post(self, service: str, path: str, **kwargs: Any) -> Response:
        return self.request("POST", service, path, **kwargs)

    def put(self, service: str, path: str, **kwargs: Any) -> Response:
        return self.request("PUT", service, path, **kwargs)

    def patch(self, service: str, path: str, **kwargs: Any) -> Response:
        return self.request("PATCH", service, path, **kwargs)

    def delete(self, service: str, path: str, **kwargs: Any) -> Response:
        return self.request("DELETE", service, path, **kwargs)

    def close(self) -> None:
        self._loop.run(self.aio.close())

    def __enter__(self) -> ResilientClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"sync.{self.aio!r}"
