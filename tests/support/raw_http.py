"""Plain HTTP/1.1 requests to a real process, any method, any bytes: what an attacker can send."""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def send(base_url: str, method: str, path: str, body: bytes | None = None,
         headers: Mapping[str, str] | None = None, timeout: float = 10.0) -> Answer:
    """One request on a connection of its own; the answer read whole."""
    target = urlsplit(base_url)
    conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()
