"""How the app is served: hypercorn's settings, the event loop, and three changes to the costs that grow
with the number of connections (hypercorn's shutdown event, its keep-alive timer, and what a closed
connection leaves behind; the garbage collector is :mod:`registry_server.collector`)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import socket
import struct
from collections.abc import Callable, Coroutine
from functools import wraps
from typing import Any

from hypercorn.asyncio.task_group import TaskGroup
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config

from registry_server.settings import Settings


class HypercornEvent:
    """The events hypercorn waits on (``hypercorn.typing.Event``: its shutdown, each connection's read gate),
    left by a waiter in constant time; setting the shutdown event runs out every connection's
    :class:`KeepAliveTimer`.

    ``asyncio.Event`` keeps its waiters in a deque, which a cancelled wait leaves by a scan: with one wait
    per open connection on the shutdown event, cancelled on every request (as hypercorn's own keep-alive
    timers do), each request costs time in proportion to the connections open; with 6,000 of them a
    quarter of the replica's time went there (sampled with a profiler, see docs/benchmarks.md)."""

    def __init__(self) -> None:
        self._set = False
        self._waiters: set[asyncio.Future[None]] = set()
        self.timers: set[KeepAliveTimer] = set()
        """Keep-alive timers armed, which run out when the event is set (the server's shutdown)."""

    def __repr__(self) -> str:
        return f"HypercornEvent(set={self._set}, waiters={len(self._waiters) + len(self.timers)})"

    async def clear(self) -> None:
        self._set = False

    async def set(self) -> None:
        self._set = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        for timer in list(self.timers):
            timer.expire()

    async def wait(self) -> None:
        if self._set:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            await waiter
        finally:
            self._waiters.discard(waiter)

    def is_set(self) -> bool:
        return self._set


_NO_CONTEXT = contextvars.Context()
"""The context a keep-alive timer runs in: an empty one, shared, rather than a copy of the current one made
for every timer armed."""


class KeepAliveTimer:
    """A connection's idle (keep-alive) timer, in place of hypercorn's (its ``idle_task``): one timer handle,
    armed when the connection falls idle and cancelled when a request comes; when it runs out, or the server
    shuts down, the connection is closed, as hypercorn's would.

    hypercorn runs a task for each idle period, which waits on the server's shutdown with a timeout (a second
    task, futures, a timer, a context for each task), and every request cancels it, the cancellation unwound
    through each. Besides that work on every request, a fleet heartbeating every few seconds, each instance
    on its own connection, keeps those dozen objects alive for seconds at a time: they outlive the garbage
    collector's young collections, which then scan them, and are freed a heartbeat later, which
    (CPython counting freed objects against new ones) lets the young generation grow several times past its
    threshold: collections of 100-400 ms under half a core, measured with 4,000-6,000 connections."""

    __slots__ = ("_group", "_server", "_shutdown", "_timer")

    def __init__(self, server: TCPServer) -> None:
        self._server = server
        shutdown = server.context.terminated
        assert isinstance(shutdown, HypercornEvent)  # (tune_hypercorn installs both)
        self._shutdown = shutdown
        self._timer: asyncio.TimerHandle | None = None
        self._group: TaskGroup | None = None

    async def restart(self, task_group: TaskGroup, action: object) -> None:
        """The connection fell idle: close it after the keep-alive timeout (read now, see
        :class:`ServerConfig`), or when the server shuts down (``action``, hypercorn's idle task, is not
        run)."""
        self.cancel()
        server = self._server
        self._group = task_group
        # (The function and the timer, not a bound method: nothing more made on each request, no reference
        # cycle left for the collector when the connection ends.)
        self._timer = server.loop.call_later(server.config.keep_alive_timeout, KeepAliveTimer.expire, self,
                                             context=_NO_CONTEXT)
        self._shutdown.timers.add(self)
        if self._shutdown.is_set():
            self.expire()

    async def stop(self) -> None:
        """A request came, or the connection closes."""
        self.cancel()

    def expire(self) -> None:
        """The timer ran out, or the server shuts down: close the connection, if it is still idle and still
        open. hypercorn disarms the timer only once the connection's socket has closed, after its task group
        has finished: a timer running out in between finds nothing left to close."""
        if self._timer is not None and self._group is not None:
            self.cancel()
            closing = self._server._initiate_server_close()
            try:
                self._group.spawn(_given, closing)
            except RuntimeError:  # the task group has finished: the connection is closing on its own
                closing.close()

    def cancel(self) -> None:
        """Disarm the timer (the shutdown event no longer refers to it)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._shutdown.timers.discard(self)


def _given(coroutine: Coroutine[Any, Any, None]) -> Coroutine[Any, Any, None]:
    """A coroutine made already, for hypercorn's ``spawn`` (which takes a function and its arguments)."""
    return coroutine


def tune_hypercorn() -> None:
    """Make hypercorn wait on :class:`HypercornEvent` (for every server in this process: the event class is
    hypercorn's own extension point, a class attribute of its worker context), give each connection a
    :class:`KeepAliveTimer`, and free what a connection holds as soon as it ends (:func:`_freed_when_done`)."""
    WorkerContext.event_class = HypercornEvent
    TCPServer.run = _freed_when_done(_HYPERCORN_RUN)  # type: ignore[method-assign,assignment]


_HYPERCORN_RUN = TCPServer.run


def _freed_when_done(run: Callable[[TCPServer], Coroutine[Any, Any, None]]
                     ) -> Callable[[TCPServer], Coroutine[Any, Any, None]]:
    """hypercorn's connection (``run``: its whole life), with a :class:`KeepAliveTimer`, which lets go of
    everything it holds when it ends.

    A connection's server object, its protocol (which sends through the server) and its task group refer
    to one another: about thirty objects in reference cycles, which outlive the connection until a full
    collection of the garbage collector finds them. By then they have been promoted, so every closed
    connection (a client that gave up, an idle timer) adds to the objects a full collection scans, and the
    replica stalls the longer. Nothing uses the server once ``run`` returns (its task group has waited for
    every request's task), so dropping its attributes then breaks every cycle, and reference counting frees
    the connection at once."""
    @wraps(run)
    async def run_and_let_go(server: TCPServer) -> None:
        server.idle_task = timer = KeepAliveTimer(server)  # type: ignore[assignment]
        try:
            await run(server)
        finally:
            timer.cancel()
            server.__dict__.clear()

    return run_and_let_go


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop (a libuv event loop, markedly faster for many small requests) when it is
    installed, else on the standard asyncio loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def listening_socket(settings: Settings) -> socket.socket:
    """The socket the server will listen on, bound to the host and port (hypercorn makes it listen): made
    here, so that the replica can watch its accept queue (:class:`AcceptQueue`)."""
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted connections inherit it
        sock.bind((settings.host, settings.port))
    except OSError:
        sock.close()
        raise
    return sock


class AcceptQueue:
    """How full the accept queue of the listening socket is: connections the kernel completed and the
    replica has not accepted yet.

    When it is full the kernel drops new connection attempts, which their clients send again one and then
    three seconds later: heartbeats lost where the replica cannot see them, while it may still answer
    every request it does accept in time. Read with ``TCP_INFO`` (Linux; as ``ss -lnt`` shows it), on a
    duplicate of the socket's descriptor."""

    def __init__(self, sock: socket.socket) -> None:
        self._probe = socket.socket(fileno=os.dup(sock.fileno()))

    def __repr__(self) -> str:
        return f"AcceptQueue(fill={self.fill()})"

    def fill(self) -> float | None:
        """The share of the queue in use (``None`` where ``TCP_INFO`` does not tell it, or before listening)."""
        try:
            info = self._probe.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 32)
        except (AttributeError, OSError):
            return None
        queued, backlog = struct.unpack_from("II", info, 24)  # tcpi_unacked, tcpi_sacked of a listening socket
        return queued / backlog if backlog else None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._probe.close()


IDLE_S = 5.0
"""How long a keep-alive connection may stay idle, and a request head take to arrive (hypercorn's idle
timer bounds both)."""


class ServerConfig(Config):
    """hypercorn's settings, with an idle timer that outlasts the ``Retry-After`` a paced heartbeat is
    given. A paced instance then comes back on its open connection: a new one costs the replica nearly
    twice what the heartbeat does (accepting it, setting it up, closing the old one), which is the last
    thing a saturated replica can afford. hypercorn reads the timer each time a connection falls idle."""

    def __init__(self, paced_for_s: Callable[[], int] = lambda: 0) -> None:
        """``paced_for_s()``: the longest ``Retry-After`` the replica gives now (0: none)."""
        self._paced_for_s = paced_for_s
        self._idle_s: float = IDLE_S

    @property
    def keep_alive_timeout(self) -> float:
        return self._idle_s + self._paced_for_s()

    @keep_alive_timeout.setter
    def keep_alive_timeout(self, idle_s: float) -> None:
        self._idle_s = idle_s


def hypercorn_config(settings: Settings, sock: socket.socket | None = None, *,
                     paced_for_s: Callable[[], int] = lambda: 0) -> ServerConfig:
    """Every server timeout set on purpose, none left at a default that waits forever. ``sock``: listen on
    this socket (from :func:`listening_socket`; hypercorn then owns it) rather than bind one.
    ``paced_for_s``: see :class:`ServerConfig`."""
    config = ServerConfig(paced_for_s)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    if sock is None:
        config.bind = [f"{host}:{settings.port}"]
    else:
        config.bind = [f"fd://{sock.detach()}"]
    # No per-read timeout: hypercorn applies it while a response streams too, which would cut every long
    # poll and change stream whose client (rightly) sends nothing. A client stalling before its request
    # head is complete is closed by the idle (keep-alive) timer (IDLE_S, longer only while heartbeats are
    # paced); one trickling its body gets 408 from the body deadline (REGISTRY_READ_TIMEOUT,
    # registry_server/api/body.py).
    config.read_timeout = None
    config.keep_alive_timeout = IDLE_S
    config.graceful_timeout = 10  # SIGTERM: in-flight requests get this long to finish
    config.h11_max_incomplete_size = 16 * 1024
    config.startup_timeout = 10
    config.shutdown_timeout = 15
    if settings.certfile and settings.keyfile:
        config.certfile = settings.certfile
        config.keyfile = settings.keyfile
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    return config
