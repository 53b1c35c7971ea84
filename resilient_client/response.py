"""The answer of a call, body already read and the connection back in the pool."""

from __future__ import annotations

import json as _json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDictProxy


@dataclass(slots=True)
class Response:
    """Treat it as read-only: it is not ``frozen`` only because a frozen dataclass costs several times as
    much to build, and one is built for every attempt."""

    status: int
    headers: CIMultiDictProxy[str] | Mapping[str, str]
    content: bytes
    url: str = ""
    instance_id: str = field(default="", compare=False)
    """The id of the instance that answered."""

    @property
    def ok(self) -> bool:
        return self.status < 400

    def text(self, encoding: str | None = None) -> str:
        return self.content.decode(encoding or self.charset or "utf-8", errors="replace")

    @property
    def charset(self) -> str | None:
        """The ``charset`` parameter of the ``Content-Type`` header, if any."""
        for param in self.headers.get("Content-Type", "").split(";")[1:]:
            key, _, value = param.strip().partition("=")
            if key.lower() == "charset" and value:
                return value.strip('"')
        return None

    def json(self) -> Any:
        return _json.loads(self.content)

    def __repr__(self) -> str:
        return f"<Response {self.status} from {self.url or '?'} ({len(self.content)} bytes)>"
