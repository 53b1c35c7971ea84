"""Wiring a manager into a service's life: signals, a Starlette lifespan, an aiohttp application.

A service starts whatever the registry's state: the lifespan and the aiohttp helper start registration in
the background (:meth:`ServiceRegistryManager.register_in_background`) and return at once, and shutting
down waits for the registry at most ``shutdown_timeout_ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from aiohttp import web

from resilient_client.manager import ServiceRegistryManager
from resilient_client.model import Status

log = logging.getLogger(__name__)


class _Closable(Protocol):
    async def close(self) -> None: ...


async def _leave(manager: ServiceRegistryManager) -> None:
    """Report ``STOPPING`` and deregister, giving up after the shutdown timeout: a registry that cannot be
    reached must not hold a service's exit, and the lease then expires on its own."""
    timeout_s = manager.config.shutdown_timeout_s
    try:
        async with asyncio.timeout(timeout_s):
            await manager.set_status(Status.STOPPING)
            await manager.deregister()
    except TimeoutError:
        log.warning("the registry did not take the deregistration of %s within %.3gs; its lease will expire",
                    manager.instance_id, timeout_s)
        await manager.close()


async def shut_down(manager: ServiceRegistryManager, also_close: Iterable[_Closable] = ()) -> None:
    """Report ``STOPPING``, deregister (for at most ``shutdown_timeout_ms``), then close the clients and the
    manager."""
    await _leave(manager)
    for closable in also_close:
        await closable.close()
    await manager.close()


def install_signal_handlers(manager: ServiceRegistryManager, *,
                            signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
                            then: Callable[[signal.Signals], None] | None = None) -> Callable[[], None]:
    """Opt in: on SIGTERM/SIGINT report ``STOPPING``, deregister, then let the service exit.

    "Exit" means: our handlers are removed and the signal is delivered again, so the default action runs
    (SIGTERM ends the process, SIGINT raises ``KeyboardInterrupt``), unless ``then(sig)`` is given. A second
    signal during the shutdown acts at once. Returns a function that removes the handlers.
    """
    loop = asyncio.get_running_loop()
    watched = tuple(signals)
    pending: set[asyncio.Task[None]] = set()

    def uninstall() -> None:
        for sig in watched:
            loop.remove_signal_handler(sig)

    async def stop(sig: signal.Signals) -> None:
        try:
            await _leave(manager)
        except Exception:
            log.exception("deregistration on %s failed", sig.name)
        finally:
            (then or signal.raise_signal)(sig)

    def handle(sig: signal.Signals) -> None:
        log.info("%s received: reporting STOPPING and deregistering", sig.name)
        uninstall()
        task = loop.create_task(stop(sig))
        pending.add(task)
        task.add_done_callback(pending.discard)

    for sig in watched:
        loop.add_signal_handler(sig, handle, sig)
    return uninstall


def registry_lifespan(manager: ServiceRegistryManager, name: str, port: int | None = None, *,
                      also_close: Iterable[_Closable] = (),
                      **register_kwargs: Any) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """A Starlette ``lifespan=``: start registering at start-up, in the background (the service starts at once,
    whatever the registry's state); report STOPPING, deregister and close at shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        await manager.register_in_background(name, port, **register_kwargs)
        try:
            yield
        finally:
            await shut_down(manager, also_close)

    return lifespan


def attach_to_aiohttp(app: web.Application, manager: ServiceRegistryManager, name: str,
                      port: int | None = None, *, also_close: Iterable[_Closable] = (),
                      **register_kwargs: Any) -> None:
    """Start registering in the background on ``on_startup`` (the application starts at once, whatever the
    registry's state); report STOPPING and deregister on ``on_shutdown``; close on ``on_cleanup``."""
    closables = tuple(also_close)

    async def on_startup(_: web.Application) -> None:
        await manager.register_in_background(name, port, **register_kwargs)

    async def on_shutdown(_: web.Application) -> None:
        await _leave(manager)

    async def on_cleanup(_: web.Application) -> None:
        await _leave(manager)  # (nothing left to do after on_shutdown; it did not run if start-up failed)
        for closable in closables:
            await closable.close()
        await manager.close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
