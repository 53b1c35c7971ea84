"""The overload benchmark's HTTP client keeps a connection the way aiohttp (and so the client library) does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from benchmarks.bench_overload import RawHttp

_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nRetry-After: 3\r\n\r\n{}"


@pytest.fixture
async def closes_after_one_answer() -> AsyncIterator[str]:
    """A server that answers the first request on each connection, then closes the connection when the next
    request arrives, unanswered: as a keep-alive timer that ends just as a client sends."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(_ANSWER)
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}"


async def test_a_heartbeat_on_a_connection_closed_as_it_was_sent_goes_again_on_a_new_one(
        closes_after_one_answer: str) -> None:
    http = RawHttp(closes_after_one_answer)
    beat = b"PUT /instances/a/heartbeat HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    opened = RawHttp.opened
    assert await http.request(beat) == (200, 3.0)
    assert await http.request(beat) == (200, 3.0)
    assert RawHttp.opened - opened == 2, "the second heartbeat was answered on a new connection"
    http.close()


async def test_a_registration_on_a_connection_closed_as_it_was_sent_is_not_sent_again(
        closes_after_one_answer: str) -> None:
    http = RawHttp(closes_after_one_answer)
    opened = RawHttp.opened
    assert await http.request(b"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n") == (200, 3.0)
    with pytest.raises(IndexError):  # no status line: the benchmark counts it as an error
        await http.request(b"POST /instances HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert RawHttp.opened - opened == 1, "a POST is not idempotent: not sent twice"
    http.close()
