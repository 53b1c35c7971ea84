"""The registry's REST API as seen by a client, failing over between registry replicas."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp

from resilient_client._backoff import parse_retry_after
from resilient_client.errors import RegistryRequestError, RegistryUnavailableError
from resilient_client.model import ServiceAnswer, ServiceInstance

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RegistryAnswer:
    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


class RegistryHttp:
    """HTTP calls to the registry. Replicas are tried in order, starting with the last one that answered;
    a connection error, a timeout, a 5xx or an answer the client will not read (larger than
    ``max_answer_bytes``, or JSON nested too deep) moves on to the next. When none answers:
    :class:`RegistryUnavailableError`.

    Redirects are never followed: the bearer token, the lease token and the registration body (which
    holds the lease token) go to the configured registry URLs only. A redirect is an error
    (:class:`RegistryRequestError` with the code ``redirect_not_followed``).
    """

    def __init__(self, urls: Sequence[str], *, auth_token: str | None = None, timeout_s: float = 5.0,
                 max_answer_bytes: int = 32 * 1024 * 1024,
                 session: aiohttp.ClientSession | None = None) -> None:
        if not urls:
            raise ValueError("at least one registry URL is needed")
        self.urls = tuple(url.rstrip("/") for url in urls)
        self._headers = {"Authorization": f"Bearer {auth_token}"} if auth_token else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_answer_bytes = max_answer_bytes
        self._session = session
        self._owns_session = session is None
        self._preferred = 0

    async def request(self, method: str, path: str, *, body: Any = None,
                      params: Mapping[str, str] | None = None,
                      headers: Mapping[str, str] | None = None,
                      timeout_s: float | None = None) -> RegistryAnswer:
        """One call, failing over between replicas; any answer below 500 is returned.

        ``timeout_s`` bounds the call on each replica (default: the client's request timeout).
        """
        session = self._get_session()
        merged = {**self._headers, **(headers or {})}
        timeout = self._timeout if timeout_s is None else aiohttp.ClientTimeout(total=timeout_s)
        last_error: BaseException | None = None
        retry_after: float | None = None
        count = len(self.urls)
        for step in range(count):
            index = (self._preferred + step) % count
            url = self.urls[index] + path
            try:
                async with session.request(method, url, json=body, params=params, headers=merged,
                                           timeout=timeout, allow_redirects=False) as resp:
                    answer_body = await _read_body(resp, self._max_answer_bytes)
                    if resp.status >= 500:
                        code = _code(answer_body)
                        # Only a registry too busy to serve us sets the pace; one whose store is away
                        # answers as soon as the store is back, and its instances must re-register then.
                        hint = parse_retry_after(resp.headers.get("Retry-After")) if code in _BUSY else None
                        if hint is not None:
                            retry_after = hint if retry_after is None else max(retry_after, hint)
                        last_error = RegistryUnavailableError(f"{method} {url} answered {resp.status} {code}".rstrip())
                        continue
                    self._preferred = index
                    return RegistryAnswer(resp.status, answer_body, resp.headers.copy())
            except (TimeoutError, aiohttp.ClientError) as exc:
                log.debug("registry %s unreachable: %r", self.urls[index], exc)
                last_error = exc
            except _UnreadableAnswerError as exc:
                log.debug("registry %s: %s", self.urls[index], exc)
                last_error = RegistryUnavailableError(f"{method} {url}: {exc}")
        reason = f"{type(last_error).__name__}: {last_error}" if last_error is not None else "no answer"
        raise RegistryUnavailableError(
            f"no registry answered {method} {path} (tried {', '.join(self.urls)}): {reason}",
            retry_after_s=retry_after) from last_error

    async def register(self, body: Mapping[str, Any], lease_token: str | None) -> dict[str, Any]:
        answer = await self.request("POST", "/instances", body=body, headers=_lease(lease_token))
        if answer.status in (200, 201):
            return _object(answer)
        raise _refused(answer)

    async def heartbeat(self, instance_id: str, status: str, lease_token: str | None) -> float | None:
        """Seconds before the next heartbeat may go (0: at the usual interval; more: the registry is pacing its
        heartbeats and gave ``Retry-After``), or ``None`` when the registry does not know the instance (404)."""
        answer = await self.request("PUT", f"/instances/{quote(instance_id, safe='')}/heartbeat",
                                    body={"status": status}, headers=_lease(lease_token))
        if answer.status == 200:
            _object(answer)
            return parse_retry_after(answer.headers.get("Retry-After")) or 0.0
        if answer.status == 404:
            return None
        raise _refused(answer)

    async def deregister(self, instance_id: str, lease_token: str | None) -> bool:
        """``True`` if it was removed now, ``False`` if the registry did not know it."""
        answer = await self.request("DELETE", f"/instances/{quote(instance_id, safe='')}",
                                    headers=_lease(lease_token))
        if answer.status in (200, 204):
            return True
        if answer.status == 404:
            return False
        raise _refused(answer)

    async def service(self, name: str, status: str | None, *, index: int | None = None,
                      wait_s: float | None = None, timeout_s: float | None = None) -> ServiceAnswer:
        """Discovery of one service with its revision. With ``index`` it is a blocking query: the registry
        answers when the revision differs from ``index`` or after ``wait_s`` (plus its jitter), so
        ``timeout_s`` must exceed that."""
        params = {"status": status} if status else {}
        if index is not None:
            params["index"] = str(index)
            if wait_s is not None:
                params["wait"] = f"{max(1, round(wait_s * 1000))}ms"
        answer = await self.request("GET", f"/services/{quote(name, safe='')}", params=params or None,
                                    timeout_s=timeout_s)
        if answer.status != 200:
            raise _refused(answer)
        return ServiceAnswer(_instances(answer), _revision(answer.headers))

    async def all_instances(self, status: str | None) -> tuple[ServiceInstance, ...]:
        params = {"status": status} if status else None
        answer = await self.request("GET", "/instances", params=params)
        if answer.status != 200:
            raise _refused(answer)
        return _instances(answer)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(raise_for_status=False)
            self._owns_session = True
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and self._owns_session and not self._session.closed:
            await self._session.close()

    def __repr__(self) -> str:
        return f"RegistryHttp(urls={self.urls!r})"


def _lease(token: str | None) -> dict[str, str]:
    return {"X-Lease-Token": token} if token else {}


class _UnreadableAnswerError(Exception):
    """A replica's answer the client will not read: larger than the cap, or JSON nested too deep."""


async def _read_body(resp: aiohttp.ClientResponse, max_bytes: int) -> Any:
    if resp.content_length is not None and resp.content_length > max_bytes:
        raise _UnreadableAnswerError(f"answer of {resp.content_length} bytes, over the cap of {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise _UnreadableAnswerError(f"answer of more than {max_bytes} bytes, over the cap")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except RecursionError:
        raise _UnreadableAnswerError("answer nested too deep to read") from None
    except ValueError:
        return raw.decode(errors="replace")


def _object(answer: RegistryAnswer) -> dict[str, Any]:
    if not isinstance(answer.body, dict):
        raise RegistryUnavailableError(f"the registry answered {answer.status} without a JSON object")
    return answer.body


def _instances(answer: RegistryAnswer) -> tuple[ServiceInstance, ...]:
    """The instances of a listing; an answer that does not describe instances is the registry's failure."""
    items = _object(answer).get("instances", [])
    try:
        return tuple(ServiceInstance.from_json(item) for item in items)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise RegistryUnavailableError(
            f"the registry answered an instance the client cannot read: {type(exc).__name__}: {exc}") from None


_BUSY = frozenset({"overloaded", "too_many_watchers"})
"""The codes of a registry asking callers to come back later (with ``Retry-After``)."""


def _code(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("code", "")) if isinstance(error, dict) else ""


def _revision(headers: Mapping[str, str]) -> int | None:
    raw = headers.get("X-Registry-Index")
    value = None if raw is None else raw.strip()
    return int(value) if value and value.isascii() and value.isdigit() else None


def _refused(answer: RegistryAnswer) -> RegistryRequestError:
    if 300 <= answer.status < 400:
        return RegistryRequestError(answer.status, "redirect_not_followed",
                                    f"the registry redirected to {answer.headers.get('Location', '?')!r}; "
                                    "registry calls are not redirected (configure the registry's own URL)")
    error = answer.body.get("error", {}) if isinstance(answer.body, dict) else {}
    if not isinstance(error, dict):
        error = {}
    details = error.get("details")
    return RegistryRequestError(
        answer.status, str(error.get("code", "unexpected_status")), str(error.get("message", answer.body)),
        tuple({str(k): str(v) for k, v in item.items()} for item in details if isinstance(item, dict))
        if isinstance(details, list) else ())
