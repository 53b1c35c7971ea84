"""Sends one attempt to one instance over aiohttp and translates aiohttp's errors at the edge."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from resilient_client.errors import AttemptTimeoutError, ConnectError, ConnectionLostError, TransportError
from resilient_client.response import Response


@dataclass(slots=True)
class OutgoingRequest:
    """One attempt's request. Treat it as read-only: it is not ``frozen`` only because a frozen
    dataclass costs several times as much to build, and one is built for every attempt."""

    method: str
    url: str
    params: Mapping[str, str] | None = None
    headers: Mapping[str, str] | None = None
    json: Any = None
    data: bytes | str | None = None
    instance_id: str = ""


class Transport(Protocol):
    """One attempt: a :class:`Response` or a :class:`~resilient_client.errors.TransportError`."""

    async def send(self, request: OutgoingRequest, timeout_s: float) -> Response: ...

    async def aclose(self) -> None: ...


class AiohttpTransport:
    """One ``aiohttp.ClientSession`` (created on first use, inside the running loop)."""

    def __init__(self, session: aiohttp.ClientSession | None = None, *, limit_per_host: int = 100) -> None:
        self._session = session
        self._owns_session = session is None
        self._limit_per_host = limit_per_host
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=self._limit_per_host)
            self._session = aiohttp.ClientSession(connector=connector, raise_for_status=False)
            self._owns_session = True
        return self._session

    def _timeout(self, timeout_s: float) -> aiohttp.ClientTimeout:
        """``ClientTimeout(total=timeout_s)``, built once per value: nearly every attempt gets the
        configured attempt timeout (only attempts close to a call's deadline get less)."""
        timeout = self._timeouts.get(timeout_s)
        if timeout is None:
            if len(self._timeouts) >= 64:
                self._timeouts.clear()
            timeout = self._timeouts[timeout_s] = aiohttp.ClientTimeout(total=timeout_s)
        return timeout

    async def send(self, request: OutgoingRequest, timeout_s: float) -> Response:
        session = self._session
        if session is None or session.closed:
            session = self._get_session()
        json = request.json
        try:
            async with session.request(request.method, request.url, params=request.params,
                                       headers=request.headers, json=json,
                                       data=request.data if json is None else None,
                                       timeout=self._timeout(timeout_s)) as resp:
                content = await resp.read()
                return Response(resp.status, resp.headers, content, request.url, request.instance_id)
        except aiohttp.ConnectionTimeoutError as exc:
            raise AttemptTimeoutError(f"connect to {request.url} timed out", sent=False) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise AttemptTimeoutError(f"{request.method} {request.url} timed out after {timeout_s:.3g}s",
                                      sent=True) from exc
        except aiohttp.ClientConnectorError as exc:
            raise ConnectError(f"cannot connect to {request.url}: {exc.os_error}") from exc
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise ConnectionLostError(f"{request.method} {request.url}: {exc!r}") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(f"{request.method} {request.url}: {exc!r}") from exc

    async def aclose(self) -> None:
        if self._session is not None and self._owns_session and not self._session.closed:
            await self._session.close()

    def __repr__(self) -> str:
        return f"AiohttpTransport(open={self._session is not None and not self._session.closed})"
