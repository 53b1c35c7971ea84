import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from resilient_client import AttemptTimeoutError, ConnectError, ConnectionLostError
from resilient_client._transport import AiohttpTransport, OutgoingRequest
from tests.support.processes import free_port


@pytest.fixture
async def backend() -> AsyncIterator[str]:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"echo": await request.json() if request.can_read_body else None})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response()

    async def hang_up(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.close()
        await asyncio.sleep(1)
        return web.Response()

    app = web.Application()
    app.router.add_route("*", "/ok", ok)
    app.router.add_get("/slow", slow)
    app.router.add_get("/hang-up", hang_up)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_response_comes_back_with_its_body_read(backend: str) -> None:
    transport = AiohttpTransport()
    try:
        resp = await transport.send(OutgoingRequest("POST", backend + "/ok", json={"a": 1}), 5)
        assert (resp.status, resp.json()) == (200, {"echo": {"a": 1}})
    finally:
        await transport.aclose()


async def test_a_refused_connection_is_a_connect_error_that_was_never_sent() -> None:
    transport = AiohttpTransport()
    try:
        with pytest.raises(ConnectError) as info:
            await transport.send(OutgoingRequest("POST", f"http://127.0.0.1:{free_port()}/x"), 5)
        assert info.value.sent is False
    finally:
        await transport.aclose()


async def test_a_slow_answer_is_an_attempt_timeout(backend: str) -> None:
    transport = AiohttpTransport()
    try:
        with pytest.raises(AttemptTimeoutError) as info:
            await transport.send(OutgoingRequest("GET", backend + "/slow"), 0.2)
        assert info.value.sent is True
    finally:
        await transport.aclose()


async def test_a_connection_closed_mid_request_is_a_lost_connection(backend: str) -> None:
    transport = AiohttpTransport()
    try:
        with pytest.raises(ConnectionLostError) as info:
            await transport.send(OutgoingRequest("GET", backend + "/hang-up"), 5)
        assert info.value.sent is True
    finally:
        await transport.aclose()
