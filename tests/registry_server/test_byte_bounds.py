"""Caches and histories bounded in bytes: filled past their limit, they hold no more than it."""

from __future__ import annotations

import gc
import json
import sys
import tracemalloc
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from registry_server.api.rendered import RenderedAnswers
from registry_server.change_hub import ChangeHub
from registry_server.model import (
    ChangeEvent,
    ChangeNotice,
    EventType,
    Instance,
    InstanceRegistration,
    base_url,
    compact_document,
    format_timestamp,
)
from registry_server.store.documents import DocumentDecoder, UndecodableDocumentError, footprint
from registry_server.store.memory import MemoryStore
from registry_server.store.redis_store import RedisStore


def _doc(n: int, size: int) -> str:
    return compact_document({"name": "S", "host": "h", "port": 1, "metadata": {"k": f"{n}-" + "v" * size}})


def test_the_document_cache_holds_at_most_its_bytes_and_keeps_the_recent_ones() -> None:
    decoder = DocumentDecoder(cache_bytes=30_000)
    docs = [_doc(n, 900) for n in range(50)]
    for n, doc in enumerate(docs):
        assert decoder.decode(doc)["metadata"]["k"].startswith(f"{n}-")
    charge = footprint(docs[-1], decoder.decode(docs[-1]))
    assert 30_000 - charge < decoder.cached_bytes <= 30_000
    assert decoder.decode(docs[-1]) is decoder.decode(docs[-1])  # still cached: the same parsed dict


@pytest.mark.parametrize("metadata", [{}, {f"k{i}": f"v{i}" for i in range(64)},
                                      {f"k{i}": "v" * 1000 for i in range(15)}],
                         ids=["no metadata", "64 short entries", "15 KB"])
def test_a_cached_documents_charge_covers_the_memory_it_takes(metadata: dict[str, str]) -> None:
    docs = [compact_document({"name": "S", "host": f"10.0.{n // 256}.{n % 256}", "port": 1, "metadata": metadata})
            for n in range(300)]
    decoder = DocumentDecoder(cache_bytes=1 << 40)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for doc in docs:
            decoder.decode(doc)
        taken = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    taken += sum(len(doc.encode()) + 49 for doc in docs)  # the texts, the cache's keys, made before tracing
    # The charge must cover what the documents take (the bound that matters); above that, it may charge
    # small documents up to 1.6 times what they take (3.12 and 3.13 parse them into less than 3.11 does).
    assert taken <= decoder.cached_bytes <= 1.6 * taken


@pytest.mark.parametrize("doc", ['{"name":"S","host":"h","port":1,"metadata":{"k":"\\ud800"}}',
                                 '{"name":"S","host":"h\\u0000","port":1}', '{"name":"S"}', "[1]", "{",
                                 '{"name":"S","host":"h","port":"1"}'])
def test_a_document_that_breaks_the_rules_is_undecodable(doc: str) -> None:
    with pytest.raises(UndecodableDocumentError):
        DocumentDecoder().decode(doc)


def test_rendered_answers_hold_at_most_their_bytes() -> None:
    rendered = RenderedAnswers(max_bytes=10_000)
    for n in range(30):
        rendered.put(f"svc-{n}", "q", b"x" * 1_000, 1, "e", [], now_ms=0)
    held = [n for n in range(30) if rendered.get(f"svc-{n}", "q", now_ms=0) is not None]
    assert 0 < len(held) <= 10
    assert held[-1] == 29


async def test_the_memory_stores_history_holds_at_most_its_bytes() -> None:
    store = MemoryStore(event_bytes=100_000)
    for n in range(200):
        meta = {"k": f"{n}-" + "v" * 1000}
        await store.register(InstanceRegistration(id="i-1", name="S", host="h", port=1, metadata=meta), n, 60_000)
    events = await store.read_events("0-0", count=10_000)
    assert 50 <= len(events) <= 100
    assert events[-1].instance.metadata["k"].startswith("199-")
    assert not await store.history_complete("0-0")
    assert sum(len(json.dumps(e.instance.metadata)) for e in events) < 100_000


def _instance(n: int, metadata: dict[str, str], description: str = "") -> Instance:
    """An instance as a store builds it from its stored text: every string its own."""
    doc = json.loads(json.dumps({"name": f"svc-{n % 7}", "host": f"10.0.{n // 256}.{n % 256}", "port": 1,
                                 "scheme": "http", "health_endpoint": "/health", "version": "",
                                 "description": description, "health_check": None,
                                 "metadata": {k: f"{n}-{v}" for k, v in metadata.items()}}))
    return Instance.from_document(f"inst-{n:06d}", doc, "UP", 1, 2, 3)


@pytest.mark.parametrize(("metadata", "description"),
                         [({}, ""), ({f"k{i}": f"v{i}" for i in range(64)}, ""),
                          ({f"k{i}": "v" * 1000 for i in range(15)}, ""),
                          ({f"k{i}": "\U0001f600" * 1000 for i in range(4)}, "\u00e9" * 1000)],
                         ids=["no metadata", "64 short entries", "15 KB", "outside ASCII"])
async def test_a_watchers_buffer_is_charged_at_least_the_memory_it_holds(metadata: dict[str, str],
                                                                        description: str) -> None:
    hub = ChangeHub(MemoryStore(), max_watchers=100, watcher_bytes=1 << 40, watchers_bytes=1 << 40)
    watchers = [hub.subscribe(f"svc-{n}") for n in range(7)]  # none reads: each holds its own events
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(350):
            hub.dispatch(ChangeNotice.of(ChangeEvent(f"{n}-0", EventType.UPDATED, f"svc-{n % 7}", n,
                                                     _instance(n, metadata, description))))
        taken = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert hub.held_bytes == sum(w.held_bytes for w in watchers)
    assert sum(map(len, watchers)) == 350
    # The charge covers what the buffers hold in memory (the bound that matters), at most 1.6 times it.
    assert taken <= hub.held_bytes <= 1.6 * taken, (taken, hub.held_bytes)


@pytest.mark.parametrize(("make_id", "make_name"), [(lambda n: f"i{n}", lambda n: f"s{n % 10}"),
                                                    (lambda n: f"{n:06d}".ljust(128, "i"),
                                                     lambda n: f"svc-{n % 150}".ljust(128, "s"))],
                         ids=["short ids: the count bound", "128-character ids and names: the text bound"])
def test_the_id_cache_takes_at_most_its_stated_memory(make_id: Callable[[int], str],
                                                      make_name: Callable[[int], str]) -> None:
    """30 MiB, as docs/security.md states: the dictionary and every id and name it holds (each its own
    string, as read from Redis), just before it is emptied."""
    store = RedisStore(Redis())  # never connects: the cache is filled as lookups would fill it
    strings = peak = 0
    for n in range(210_000):
        instance_id, name = make_id(n), make_name(n)
        store._remember(instance_id, name)
        if len(store._names) == 1 and n > 0:  # emptied: it was at its fullest just before
            break
        strings += sys.getsizeof(instance_id) + sys.getsizeof(name)
        peak = max(peak, sys.getsizeof(store._names) + strings)
    else:
        raise AssertionError("never emptied")
    assert 10 * 2**20 < peak <= 30 * 2**20, peak


def _filled_bytes(fill: Callable[[int], object], entries: int) -> int:
    """What calling ``fill`` for ``entries`` distinct arguments leaves allocated (its cache, nothing else)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(entries):
            fill(n)
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_the_timestamp_cache_takes_at_most_its_stated_memory() -> None:
    """14 MiB, as docs/security.md states, filled past its 65,536 entries."""
    format_timestamp.cache_clear()
    try:
        taken = _filled_bytes(lambda n: format_timestamp(1_700_000_000_000 + 7 * n), 70_000)
        assert format_timestamp.cache_info().currsize == 65_536
    finally:
        format_timestamp.cache_clear()
    assert 5 * 2**20 < taken <= 14 * 2**20, taken


def test_the_base_url_cache_takes_at_most_its_stated_memory() -> None:
    """51 MiB, as docs/security.md states, filled past its 65,536 entries with the longest hosts (each its
    own string, as decoded from a document, kept alive by the cache alone)."""
    base_url.cache_clear()
    try:
        taken = _filled_bytes(lambda n: base_url("https", f"{n:07d}".ljust(253, "h"), 1 + n % 65535), 70_000)
        assert base_url.cache_info().currsize == 65_536
    finally:
        base_url.cache_clear()
    assert 20 * 2**20 < taken <= 51 * 2**20, taken


def test_the_heartbeat_keys_cache_takes_at_most_its_stated_memory() -> None:
    """6 MiB, as docs/security.md states: 4,096 services with names of 128 characters."""
    store = RedisStore(Redis())  # never connects: the cache is filled as heartbeats would fill it
    taken = _filled_bytes(lambda n: store._heartbeat_keys(f"{n:06d}".ljust(128, "s")), 5_000)
    assert store._heartbeat_keys.cache_info().currsize == 4_096
    assert 2**20 < taken <= 6 * 2**20, taken
