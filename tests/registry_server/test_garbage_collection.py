"""The server's garbage collector: start-up's objects and the survivors of each full collection are frozen
(never scanned again while they live, still freed when dropped), collections are rarer than CPython's
defaults, reference cycles are still collected on their own, and frozen ones once the frozen objects have
doubled and the replica is not overloaded; an overload freezes what the process holds at once and makes young
collections rarer until it ends. Run in child interpreters, so that this test process keeps its own
settings."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from registry_server.collector import (
    FULL_COLLECTION_THRESHOLD,
    MIDDLE_COLLECTION_THRESHOLD,
    OVERLOAD_YOUNG_COLLECTION_THRESHOLD,
    YOUNG_COLLECTION_THRESHOLD,
)

pytestmark = pytest.mark.integration  # a child interpreter

_CHILD = """
import gc, json, weakref
from registry_server.collector import replica_overloaded, tune_garbage_collector
import registry_server.app  # the server's modules, as the console script has them at start-up

replica_overloaded(True)  # in a process that embeds the registry, its collector is left alone
embedded = {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}
replica_overloaded(False)
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
                  "collected": len(collected), "embedded": embedded}))
"""


def test_start_up_objects_are_frozen_collections_are_rarer_and_cycles_still_collected() -> None:
    child = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=60, check=True)
    seen = json.loads(child.stdout)
    assert seen["threshold"] == [YOUNG_COLLECTION_THRESHOLD, MIDDLE_COLLECTION_THRESHOLD, FULL_COLLECTION_THRESHOLD]
    assert YOUNG_COLLECTION_THRESHOLD > 700, "rarer than CPython's default young collections"
    assert seen["frozen"] > 10_000, "the modules, classes and functions loaded at start-up"
    assert seen["collected"] >= 15, "cycles are still found and freed without an explicit collection"
    assert seen["embedded"] == {"threshold": [700, 10, 10], "frozen": 0}, \
        "before the server tunes it, the collector is CPython's own, overload or not"


_FREEZING = """
import gc, json, weakref
from registry_server.collector import LOOK_AGAIN_AT, collecting_s, replica_overloaded, tune_garbage_collector
import registry_server.app

tune_garbage_collector()
after_start = gc.get_freeze_count()

class Node:
    pass

live = [Node() for _ in range(50_000)]  # an open connection's objects: alive across a full collection
gc.collect()
frozen = gc.get_freeze_count() - after_start
scanned = sum(type(o) is Node for o in gc.get_objects())  # what later collections still look at
before_drop = gc.get_freeze_count()
del live
freed = before_drop - gc.get_freeze_count()

found = []
pairs = []
for n in range(1_000):  # cycles alive across a full collection, then dropped
    a, b = Node(), Node()
    a.other, b.other = b, a
    weakref.finalize(a, found.append, n)
    pairs.append(a)
del a, b
gc.collect()
del pairs
gc.collect()
found_while_frozen = len(found)
more = [Node() for _ in range(int(LOOK_AGAIN_AT * gc.get_freeze_count()))]
gc.collect()  # frozen: now twice as many as after the last complete look...
opened = [Node() for _ in range(30_000)]  # a fleet's connections, opened as it grew into an overload
before_overload = gc.get_freeze_count(), collecting_s()
replica_overloaded(True)
entered = gc.get_freeze_count() - before_overload[0], collecting_s() - before_overload[1], gc.get_threshold()
gc.collect()  # ...but the replica is overloaded: the look waits...
found_while_overloaded = len(found)
replica_overloaded(False)
left = gc.get_threshold()
gc.collect()  # ...for its end
print(json.dumps({"frozen": frozen, "scanned": scanned, "freed": freed, "found_while_frozen": found_while_frozen,
                  "found_while_overloaded": found_while_overloaded, "found_after": len(found),
                  "collecting_s": collecting_s(), "entered": entered, "left": left}))
"""


def test_what_outlives_a_full_collection_is_not_scanned_again_and_is_still_freed_and_its_cycles_found_later(
        ) -> None:
    child = subprocess.run([sys.executable, "-c", _FREEZING], capture_output=True, text=True, timeout=60, check=True)
    seen = json.loads(child.stdout)
    assert seen["frozen"] >= 50_000, "the survivors of a full collection are frozen"
    assert seen["scanned"] == 0, "no collection looks at them again"
    assert seen["freed"] >= 50_000, "dropped, they are freed at once, frozen or not"
    assert seen["found_while_frozen"] == 0, "a cycle among frozen objects waits for a complete look"
    assert seen["found_while_overloaded"] == 0, "that look, which scans every open connection, waits for the " \
        "overload's end"
    frozen_on_entering, collected_on_entering, threshold_while_overloaded = seen["entered"]
    assert frozen_on_entering >= 30_000, "an overload freezes the connections opened before it"
    assert collected_on_entering == 0, "without a collection: they are not scanned even once"
    assert threshold_while_overloaded[0] == OVERLOAD_YOUNG_COLLECTION_THRESHOLD > YOUNG_COLLECTION_THRESHOLD, \
        "young collections are rarer while it lasts"
    assert seen["left"] == [YOUNG_COLLECTION_THRESHOLD, MIDDLE_COLLECTION_THRESHOLD, FULL_COLLECTION_THRESHOLD]
    assert seen["found_after"] == 1_000, "once the frozen objects have doubled, a full collection finds it"
    assert seen["collecting_s"] > 0, "the time spent collecting is kept, for the control's debug line"
