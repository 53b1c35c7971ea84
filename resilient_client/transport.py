"""Sends one attempt to one instance over aiohttp and translates aiohttp's errors at the edge."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from resilient_client.errors import AttemptTimeoutError, ConnectError, ConnectionLostError, TransportError
from resilient_client.response import Response


@dataclass(frozen=True, slots=True)
class OutgoingRequest:
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

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=self._limit_per_host)
            self._session = aiohttp.ClientSession(connector=connector, raise_for_status=False)
            self._owns_session = True
        return self._session

    async def send(self, request: OutgoingRequest, timeout_s: float) -> Response:
        session = self._get_session()
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        kwargs: dict[str, Any] = {"params": request.params, "headers": request.headers, "timeout": timeout}
        if request.json is not None:
            kwargs["json"] = request.json
        elif request.data is not None:
            kwargs["data"] = request.data
        try:
            async with session.request(request.method, request.url, **kwargs) as resp:
                content = await resp.read()
                return Response(status=resp.status, headers=resp.headers, content=content,
                                url=request.url, instance_id=request.instance_id)
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
