"""The server's garbage collector: start-up's objects are frozen (never scanned again), collections are
rarer than CPython's defaults, and reference cycles (every closed connection leaves some) are still
collected on their own. Run in a child interpreter, so that this test process keeps its own settings."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from registry_server.serving import FULL_COLLECTION_THRESHOLD, MIDDLE_COLLECTION_THRESHOLD, YOUNG_COLLECTION_THRESHOLD

pytestmark = pytest.mark.integration  # a child interpreter

_CHILD = """
import gc, json, weakref
from registry_server.serving import tune_garbage_collector
import registry_server.app  # the server's modules, as the console script has them at start-up

tune_garbage_collector()
collected = []

class Node:
    pass

for n in range(20_000):  # cycles, as closed connections leave them, and nobody calls gc.collect()
    a, b = Node(), Node()
    a.other, b.other = b, a
    if n % 1000 == 0:
        weakref.finalize(a, collected.append, n)
    del a, b
filler = [[n] for n in range(200_000)]  # allocations that trigger collections, as requests do
del filler
print(json.dumps({"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count(),
                  "collected": len(collected)}))
"""


def test_start_up_objects_are_frozen_collections_are_rarer_and_cycles_still_collected() -> None:
    child = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=60, check=True)
    seen = json.loads(child.stdout)
    assert seen["threshold"] == [YOUNG_COLLECTION_THRESHOLD, MIDDLE_COLLECTION_THRESHOLD, FULL_COLLECTION_THRESHOLD]
    assert YOUNG_COLLECTION_THRESHOLD > 700, "rarer than CPython's default young collections"
    assert seen["frozen"] > 10_000, "the modules, classes and functions loaded at start-up"
    assert seen["collected"] >= 15, "cycles are still found and freed without an explicit collection"
