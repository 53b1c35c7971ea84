"""JSON responses encoded by pydantic-core (Rust), the same encoder as the validation side."""

from __future__ import annotations

from typing import Any

import pydantic_core
from starlette.responses import JSONResponse as _StarletteJSONResponse


class JSONResponse(_StarletteJSONResponse):
    def render(self, content: Any) -> bytes:
        return pydantic_core.to_json(content)
