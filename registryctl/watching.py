"""``watch``: follow one service with blocking queries (``index`` + ``wait``), reporting every change.

The first read fails fast (a wrong URL or name is an error); after that a lost connection or a
transient answer (5xx, 408, 499) is retried with capped backoff, so a watch survives a registry restart.
A query cut after it had been waiting a while (a proxy's or server's idle timeout) is simply re-sent.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from registryctl.client import RegistryClient
from registryctl.errors import RegistryApiError, RegistryctlError, RegistryUnreachableError

_TRANSIENT = {408, 429, 499}
_LONG_POLL_CUT_S = 2.0
"""A failed query that had been open this long was cut while waiting, not refused."""

OnChange = Callable[[int, list[dict[str, Any]]], None]


def _transient(exc: RegistryctlError) -> bool:
    if isinstance(exc, RegistryUnreachableError):
        return True
    return isinstance(exc, RegistryApiError) and (exc.status in _TRANSIENT or exc.status >= 500)


def watch(client: RegistryClient, name: str, on_change: OnChange, *, wait_s: float = 60.0,
          statuses: str | None = None, on_retry: Callable[[RegistryctlError, float], None] | None = None,
          sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
          keep_going: Callable[[], bool] = lambda: True) -> None:
    """Call ``on_change(index, instances)`` with the current view, then after each change, until
    ``keep_going()`` is false. Raises :class:`RegistryctlError` for a non-transient error."""
    path = f"/services/{urllib.parse.quote(name, safe='')}"
    base = {"status": statuses} if statuses else {}
    index: int | None = None
    failures = 0
    while keep_going():
        query = dict(base)
        if index is not None:
            query.update(index=str(index), wait=f"{wait_s:g}s")
        started = clock()
        try:
            answer = client.request("GET", path, query=query, timeout_s=client.timeout_s + wait_s * 1.1)
        except RegistryctlError as exc:
            if index is None or not _transient(exc):
                raise
            if clock() - started >= _LONG_POLL_CUT_S:
                failures = 0  # it was waiting fine until something cut it: ask again at once
                continue
            failures += 1
            delay = min(0.25 * 2 ** failures, 10.0)
            if on_retry is not None and failures > 1:  # a single cut connection is routine: retry quietly
                on_retry(exc, delay)
            sleep(delay if failures > 1 else 0.0)
            continue
        failures = 0
        new_index = int(answer.headers.get("x-registry-index", "0"))
        if index is None or new_index != index:
            on_change(new_index, list(answer.body["instances"]))
        index = new_index
