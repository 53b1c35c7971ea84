"""The REST API page lists exactly the operations of the registry's own OpenAPI document."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from registry_server.app import create_app
from registry_server.settings import Settings

PAGE = Path(__file__).resolve().parents[2] / "docs" / "rest-api.md"
_ROW = re.compile(r"^\|\s*`(GET|POST|PUT|PATCH|DELETE) (/[^`\s]*)`\s*\|", re.MULTILINE)


def documented_operations() -> set[tuple[str, str]]:
    """``(method, path)`` of each row of the page's endpoint table."""
    section = PAGE.read_text(encoding="utf-8").split("\n## Endpoints\n", 1)[1].split("\n## ", 1)[0]
    return {(method, path) for method, path in _ROW.findall(section)}


async def served_operations() -> set[tuple[str, str]]:
    """``(method, path)`` of each operation in ``/openapi.json`` as a registry app serves it, in process."""
    app = create_app(Settings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://registry") as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    return {(method.upper(), path) for path, operations in document["paths"].items() for method in operations}


async def test_the_endpoint_table_is_the_openapi_document() -> None:
    documented = documented_operations()
    served = await served_operations()
    assert documented == served, (f"documented, not served: {sorted(documented - served)}; "
                                  f"served, not documented: {sorted(served - documented)}")


def test_the_table_is_read_from_the_page() -> None:
    assert ("PUT", "/instances/{id}/heartbeat") in documented_operations()
    assert len(documented_operations()) >= 10
