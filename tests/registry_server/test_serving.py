"""How the app is served: the event hypercorn's connections wait on, the listening socket's accept queue."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import warnings
from types import SimpleNamespace
from typing import cast

import pytest
from hypercorn.asyncio import serve
from hypercorn.asyncio.task_group import TaskGroup
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.asyncio.worker_context import WorkerContext
from starlette.types import Receive, Scope, Send

from registry_server.serving import (
    IDLE_S,
    AcceptQueue,
    HypercornEvent,
    KeepAliveTimer,
    hypercorn_config,
    listening_socket,
    tune_hypercorn,
)
from registry_server.settings import Settings


async def test_set_wakes_every_waiter_and_a_cancelled_wait_leaves_no_waiter_behind() -> None:
    event = HypercornEvent()
    waiting = [asyncio.create_task(event.wait()) for _ in range(50)]
    cancelled = [asyncio.create_task(event.wait()) for _ in range(1000)]
    await asyncio.sleep(0)  # every wait has begun
    for task in cancelled:
        task.cancel()
    await asyncio.gather(*cancelled, return_exceptions=True)
    assert repr(event) == "HypercornEvent(set=False, waiters=50)"
    assert not any(task.done() for task in waiting)

    await event.set()
    await asyncio.wait_for(asyncio.gather(*waiting), timeout=5)
    assert event.is_set()
    assert repr(event) == "HypercornEvent(set=True, waiters=0)"
    await asyncio.wait_for(event.wait(), timeout=5)  # already set: returns at once

    await event.clear()
    late = asyncio.create_task(event.wait())
    await asyncio.sleep(0)
    assert not late.done() and not event.is_set()
    await event.set()
    await asyncio.wait_for(late, timeout=5)


async def _hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            kind = (await receive())["type"]
            await send({"type": f"{kind}.complete"})
            if kind == "lifespan.shutdown":
                return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def _connect_when_listening(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the server starting on ``port``, once it listens (within 10 s)."""
    async with asyncio.timeout(10):
        while True:
            try:
                return await asyncio.open_connection("127.0.0.1", port)
            except ConnectionRefusedError:
                await asyncio.sleep(0.05)


async def test_hypercorn_keeps_connections_alive_and_shuts_down_with_its_events_replaced(
        monkeypatch: pytest.MonkeyPatch, unused_tcp_port: int) -> None:
    monkeypatch.setattr(WorkerContext, "event_class", WorkerContext.event_class)  # restored after the test
    monkeypatch.setattr(TCPServer, "run", TCPServer.run)
    tune_hypercorn()
    assert isinstance(WorkerContext(None).terminated, HypercornEvent)
    stop = asyncio.Event()
    server = asyncio.create_task(serve(_hello, hypercorn_config(Settings(host="127.0.0.1", port=unused_tcp_port)),  # type: ignore[arg-type]
                                       shutdown_trigger=stop.wait))
    connections = [await _connect_when_listening(unused_tcp_port)]
    connections += [await asyncio.open_connection("127.0.0.1", unused_tcp_port) for _ in range(99)]
    for _ in range(2):  # two requests on every connection: each restarts the connection's idle timer
        for _, writer in connections:
            writer.write(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        for reader, _ in connections:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            assert head.startswith(b"HTTP/1.1 200")
            assert await reader.readexactly(2) == b"ok"
    stop.set()  # a hundred idle connections wait on the shutdown event: it must release them all
    await asyncio.wait_for(server, timeout=10)
    for reader, writer in connections:
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""  # closed by the server
        writer.close()


async def test_an_idle_connection_waits_on_a_timer_not_on_tasks_and_its_timer_closes_it(
        monkeypatch: pytest.MonkeyPatch, unused_tcp_port: int) -> None:
    """hypercorn's own keep-alive timer is a task (and a second one inside it) for each idle period, which
    every request cancels: a dozen objects a request that, at a heartbeat every few seconds on each of
    thousands of connections, the garbage collector keeps scanning."""
    monkeypatch.setattr(WorkerContext, "event_class", WorkerContext.event_class)  # restored after the test
    monkeypatch.setattr(TCPServer, "run", TCPServer.run)
    tune_hypercorn()
    config = hypercorn_config(Settings(host="127.0.0.1", port=unused_tcp_port))
    stop = asyncio.Event()
    server = asyncio.create_task(serve(_hello, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    try:
        connections = [await _connect_when_listening(unused_tcp_port)]
        tasks_before = len(asyncio.all_tasks())
        connections += [await asyncio.open_connection("127.0.0.1", unused_tcp_port) for _ in range(49)]
        for _ in range(3):
            for reader, writer in connections:
                writer.write(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
                assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)).startswith(b"HTTP/1.1 200")
                assert await reader.readexactly(2) == b"ok"
        assert len(asyncio.all_tasks()) - tasks_before <= 49 + 5, \
            "each of the 49 idle connections opened is one task (its own), none more for its timer"
        config.keep_alive_timeout = 0.1  # (short, for the test) read as a connection falls idle
        reader, writer = connections[0]
        writer.write(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)).startswith(b"HTTP/1.1 200")
        assert await reader.readexactly(2) == b"ok"
        assert await asyncio.wait_for(reader.read(), timeout=5) == b"", "closed by its idle timer"
        writer.close()
    finally:
        stop.set()
        await asyncio.wait_for(server, timeout=10)
    for reader, writer in connections[1:]:  # the others, idle for 5 s more, were closed by the shutdown
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""
        writer.close()


async def test_a_connection_that_ended_is_freed_at_once_not_left_to_the_garbage_collector(
        monkeypatch: pytest.MonkeyPatch, unused_tcp_port: int) -> None:
    """A connection's objects refer to one another; left so, each closed connection would wait for a full
    collection, which in a busy replica scans every open connection. With the collector off, none of the
    fifty connections a client closed may remain."""
    monkeypatch.setattr(WorkerContext, "event_class", WorkerContext.event_class)  # restored after the test
    monkeypatch.setattr(TCPServer, "run", TCPServer.run)
    tune_hypercorn()
    config = hypercorn_config(Settings(host="127.0.0.1", port=unused_tcp_port))
    config.keep_alive_timeout = 0.1  # a connection ends once its idle timer has run (short, for the test)
    stop = asyncio.Event()
    server = asyncio.create_task(serve(_hello, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    gc.disable()
    try:
        connections = [await _connect_when_listening(unused_tcp_port)]
        connections += [await asyncio.open_connection("127.0.0.1", unused_tcp_port) for _ in range(49)]
        for reader, writer in connections:
            writer.write(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)).startswith(b"HTTP/1.1 200")
            assert await reader.readexactly(2) == b"ok"
        assert _connections_alive() == 50
        for _, writer in connections:
            writer.close()  # the client goes: the server's side of each connection ends
        deadline = asyncio.get_running_loop().time() + 10
        while _connections_alive():
            assert asyncio.get_running_loop().time() < deadline, f"{_connections_alive()} connections left"
            await asyncio.sleep(0.01)
    finally:
        gc.enable()
        stop.set()
        await asyncio.wait_for(server, timeout=10)


async def test_a_keep_alive_timer_that_runs_out_as_its_connection_ends_does_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    """hypercorn disarms a connection's idle timer only once its socket has closed, after the connection's
    task group has finished. A timer running out in between has nothing left to close: it must neither
    raise in the event loop (an error logged, and a traceback holding the connection until a collection)
    nor leave a coroutine never awaited."""
    closes: list[str] = []

    async def initiate_server_close() -> None:
        closes.append("closed")

    loop = asyncio.get_running_loop()
    server = SimpleNamespace(context=SimpleNamespace(terminated=HypercornEvent()), loop=loop,
                             config=SimpleNamespace(keep_alive_timeout=0.0),
                             _initiate_server_close=initiate_server_close)
    timer = KeepAliveTimer(cast(TCPServer, server))
    group = TaskGroup(loop)
    async with group:
        await timer.restart(group, None)  # the connection falls idle as it ends
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.ERROR):
        warnings.simplefilter("always")
        for _ in range(3):  # the timer runs out
            await asyncio.sleep(0)
        gc.collect()
    assert closes == [], "nothing closed: the connection is closing on its own"
    assert [r.getMessage() for r in caplog.records] == [], "no error in the event loop"
    assert [str(w.message) for w in caught] == [], "no coroutine left never awaited"

    async with TaskGroup(loop) as open_group:  # while the connection is open, it closes it
        await timer.restart(open_group, None)
        for _ in range(3):
            await asyncio.sleep(0)
    assert closes == ["closed"]


def _connections_alive() -> int:
    """hypercorn's connections still in memory, reachable or not (the collector lists both)."""
    return sum(isinstance(thing, TCPServer) for thing in gc.get_objects())


async def test_an_idle_connection_stays_open_past_the_delay_a_paced_heartbeat_is_given(
        unused_tcp_port: int) -> None:
    """A paced instance comes back on its connection: a new one would cost the replica nearly twice as
    much. Once nothing is paced, idle connections close after the usual idle timer."""
    paced_for_s = 0
    config = hypercorn_config(Settings(host="127.0.0.1", port=unused_tcp_port), paced_for_s=lambda: paced_for_s)
    assert config.keep_alive_timeout == IDLE_S
    paced_for_s = 20
    assert config.keep_alive_timeout == IDLE_S + 20, "the idle timer outlasts the longest delay given"
    config.keep_alive_timeout = 0.1  # (short, for the test)
    stop = asyncio.Event()
    server = asyncio.create_task(serve(_hello, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    try:
        reader, writer = await _connect_when_listening(unused_tcp_port)

        async def hello() -> None:
            writer.write(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)).startswith(b"HTTP/1.1 200")
            assert await reader.readexactly(2) == b"ok"

        paced_for_s = 1
        await hello()  # idle now, for up to 1.1 s
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), timeout=0.5)  # still open well past the bare idle timer
        await hello()
        paced_for_s = 0
        await hello()  # idle now, for 0.1 s: the server closes it
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""
        writer.close()
    finally:
        stop.set()
        await asyncio.wait_for(server, timeout=10)


def test_the_accept_queue_tells_how_full_it_is_and_nothing_before_the_socket_listens() -> None:
    sock = listening_socket(Settings(host="127.0.0.1", port=0))
    queue = AcceptQueue(sock)
    waiting: list[socket.socket] = []
    try:
        assert queue.fill() is None, "not listening yet: no queue"
        sock.listen(10)
        assert queue.fill() == 0.0
        port = sock.getsockname()[1]
        waiting += [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(6)]
        assert queue.fill() == 0.6, "six connections the kernel completed and nobody accepted, of ten"
        sock.accept()[0].close()
        assert queue.fill() == 0.5
    finally:
        for client in waiting:
            client.close()
        queue.close()
        sock.close()
