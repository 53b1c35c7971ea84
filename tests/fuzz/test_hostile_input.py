"""Hand-written hostile input: every case gets a 4xx with the SPEC error body, never a 5xx."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from registry_server.app import create_app
from registry_server.settings import Settings
from registry_server.store.memory import MemoryStore

JSON = {"content-type": "application/json"}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(instance_ttl_s=30), store=MemoryStore())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as client:
        yield client


def assert_refused(resp: httpx.Response, *statuses: int) -> None:
    assert resp.status_code in statuses, (resp.status_code, resp.text[:300])
    body = resp.json()["error"]
    assert isinstance(body["code"], str)
    assert isinstance(body["message"], str)


def nested(depth: int) -> bytes:
    return b'{"name": "A", "port": 1, "metadata": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"


CASES = {
    "deep arrays over the size limit": b"[" * 100_000 + b"]" * 100_000,
    "deep arrays under the size limit": b"[" * 30_000 + b"]" * 30_000,
    "deep objects inside a field": nested(5_000),
    "invalid UTF-8": b"\xff\xfe\xfa",
    "invalid UTF-8 inside a string": b'{"name": "A\xc3\x28", "port": 1}',
    "truncated": b'{"name": "A", "port": 1',
    "NaN": b'{"name": "A", "port": NaN}',
    "Infinity": b'{"name": "A", "port": Infinity}',
    "NUL bytes": b"\x00" * 100,
    "empty": b"",
}


@pytest.mark.parametrize("raw", list(CASES.values()), ids=list(CASES))
async def test_malformed_or_pathological_json_is_refused(http: httpx.AsyncClient, raw: bytes) -> None:
    assert_refused(await http.post("/instances", content=raw, headers=JSON), 400, 413, 422)


@pytest.mark.parametrize("raw", [
    b'{"name": "A", "port": 1}' + b" " * 70_000,
])
async def test_bodies_over_64_kib_are_refused_with_413(http: httpx.AsyncClient, raw: bytes) -> None:
    assert_refused(await http.post("/instances", content=raw, headers=JSON), 413)


@pytest.mark.parametrize("port", [10**30, -(10**30), 2**63, 1e308, "1" * 5000])
async def test_huge_numbers_are_refused_naming_the_port(http: httpx.AsyncClient, port: object) -> None:
    resp = await http.post("/instances", json={"name": "A", "port": port})
    assert_refused(resp, 422)
    assert [d["field"] for d in resp.json()["error"]["details"]] == ["port"]


async def test_ten_thousand_metadata_keys_are_refused(http: httpx.AsyncClient) -> None:
    compact = json.dumps({"name": "A", "port": 1, "metadata": {str(n): "" for n in range(10_000)}},
                         separators=(",", ":"))
    assert len(compact) > 64 * 1024
    assert_refused(await http.post("/instances", content=compact, headers=JSON), 413, 422)
    small_keys = json.dumps({"name": "A", "port": 1, "metadata": {f"k{n}": "" for n in range(65)}})
    resp = await http.post("/instances", content=small_keys, headers=JSON)
    assert_refused(resp, 422)
    assert resp.json()["error"]["details"][0]["field"] == "metadata"


@pytest.mark.parametrize("name", ["a/b", "../etc", "a\\b", "a\x00b", "a\nb", "a\tb", "a\x7fb", "a b", "é", "",
                                  ".hidden", "a" * 129, "a%2Fb", "a?b", "a#b"])
async def test_control_characters_and_path_separators_in_names_are_refused(http: httpx.AsyncClient,
                                                                           name: str) -> None:
    for field in ("name", "id"):
        body = {"name": "A", "port": 1, field: name}
        resp = await http.post("/instances", json=body)
        assert_refused(resp, 422)
        assert field in [d["field"] for d in resp.json()["error"]["details"]]


@pytest.mark.parametrize("path", ["/instances/..%2F..%2Fetc", "/instances/a%00b", "/instances/%0A",
                                  "/instances/" + "x" * 5000, "/services/..%2Fx", "/services/a%00b",
                                  "/instances/a%2Fb/heartbeat"])
async def test_hostile_ids_in_paths_answer_json_4xx(http: httpx.AsyncClient, path: str) -> None:
    for method in ("GET", "PUT", "DELETE"):
        resp = await http.request(method, path)
        assert 400 <= resp.status_code < 500, (method, path, resp.status_code)
        assert resp.headers["content-type"].startswith("application/json")


async def test_duplicate_json_keys_take_the_last_value_like_most_parsers(http: httpx.AsyncClient) -> None:
    raw = b'{"name": "A", "port": 1, "port": 2, "id": "dup", "id": "dup-2"}'
    resp = await http.post("/instances", content=raw, headers=JSON)
    assert resp.status_code == 201
    assert (resp.json()["port"], resp.json()["id"]) == (2, "dup-2")
    bad_last = b'{"name": "A", "port": 1, "port": "x"}'
    assert_refused(await http.post("/instances", content=bad_last, headers=JSON), 422)


async def test_wrong_types_everywhere_are_refused(http: httpx.AsyncClient) -> None:
    for body in ({"name": 5, "port": 1}, {"name": ["A"], "port": 1}, {"name": "A", "port": None},
                 {"name": "A", "port": 1, "metadata": "x"}, {"name": "A", "port": 1, "status": 1},
                 {"name": None, "port": 1}, {"name": {"$ne": ""}, "port": 1}):
        assert_refused(await http.post("/instances", json=body), 422)
    assert_refused(await http.put("/instances/x/heartbeat", json={"status": ["UP"]}), 404, 422)
