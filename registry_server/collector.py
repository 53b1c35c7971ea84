"""The server process's garbage collector: rarer collections than CPython's defaults, and objects that
live long (start-up's, and every open connection's once a full collection has seen it alive) never
scanned again while they live.

A busy replica holds thousands of connections, a few dozen objects each, and they live for minutes: a
full collection scans every one of them, finds them alive, and stops the event loop meanwhile (about a
second for 7,000 connections under half a core; heartbeats pile up behind it, time out, and come back on
new connections that cost more than the heartbeats they carry). So the survivors of each full
collection are frozen (:func:`gc.freeze`): later collections skip them. They are still freed as soon as
nothing refers to them (reference counting does not depend on the collector), and a connection that
ends leaves no reference cycle (see :func:`registry_server.serving.tune_hypercorn`). A cycle among frozen
objects would never be found, so the collector looks at everything again, once, when the frozen objects
have doubled since it last did: what could be held that way never exceeds the live objects of then.

An overload (:func:`replica_overloaded`: the replica spaces heartbeats) changes three things until it ends.
What the process holds is frozen at once, without a scan: the fleet's connections, opened just before, would
otherwise be scanned by the next full collection (half a second for 6,000 of them). Young collections are
rarer (:data:`OVERLOAD_YOUNG_COLLECTION_THRESHOLD`): each scans the objects of the requests waiting in the
backlog, alive, and fewer of them scan the backlog less often; not much rarer, since each stops the event
loop for as long as it scans. And the complete look waits for the overload's end: it scans every open
connection (more than a second for 6,000 under half a core), and a fleet that grows into an overload doubles
the frozen objects just then. What an overload could leave frozen in cycles is what it made meanwhile and
what was waiting for a collection as it began; the first complete look after it finds it.

The collector is tuned only in a process that calls :func:`tune_garbage_collector` (the server's command
line): an application that embeds the registry keeps its own collector, and these calls do nothing there.
"""

from __future__ import annotations

import gc
import time
from typing import Any

YOUNG_COLLECTION_THRESHOLD = 20_000
"""Allocations between two collections of the youngest generation (CPython's default: 700): more of a
request's objects are freed by reference counting before a collection sees them."""
MIDDLE_COLLECTION_THRESHOLD = 4
"""Young collections between two of the middle generation (CPython's default: 10)."""
FULL_COLLECTION_THRESHOLD = 2
"""Middle collections between two full ones (CPython's default: 10). Full collections are what find the
cycles promoted before they became garbage, and each scans only what is not frozen: rarer ones would
each stall the replica longer and hold more dead objects meanwhile."""
OVERLOAD_YOUNG_COLLECTION_THRESHOLD = 50_000
"""Allocations between two young collections while the replica is overloaded: fewer collections than at
:data:`YOUNG_COLLECTION_THRESHOLD` (the requests waiting in the backlog, alive, are scanned less often),
and at most this many objects of new reference cycles held a little longer. Each collection stops the
event loop for as long as it scans what was made since the last: 0.08 to 0.24 s under half a core at
50,000, 0.4 to 0.5 s at 200,000, after which an overloaded replica's backlog ran into refused writes and,
in two runs of six, tens of thousands of timeouts."""
LOOK_AGAIN_AT = 2.0
"""How many times more frozen objects than after the last complete look make the next full collection
a complete one (everything unfrozen first)."""


_FULL = 2
"""The oldest generation's number: a collection of it is a full one."""


class _Collections:
    """What the collector did in this process: its time, and the frozen objects after its last complete
    look."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.started_at = 0.0
        self.looked_at = 0
        self.complete = False
        self.overloaded = False


_done = _Collections()


def collecting_s() -> float:
    """Seconds this process has spent collecting garbage since :func:`tune_garbage_collector` (wall clock:
    a collection stops the event loop); 0 when it was never called."""
    return _done.seconds


def replica_overloaded(overloaded: bool) -> None:
    """Whether the replica is overloaded (it spaces heartbeats; the admission control says so whenever that
    changes): on entering, what the process holds is frozen and young collections become rarer; until the
    end, no collection looks at everything again (see the module's description)."""
    if _collection not in gc.callbacks or overloaded == _done.overloaded:  # (not tuned: left alone)
        return
    _done.overloaded = overloaded
    if overloaded:
        gc.freeze()
    gc.set_threshold(OVERLOAD_YOUNG_COLLECTION_THRESHOLD if overloaded else YOUNG_COLLECTION_THRESHOLD,
                     MIDDLE_COLLECTION_THRESHOLD, FULL_COLLECTION_THRESHOLD)


def tune_garbage_collector() -> None:
    """Collect less often than CPython's defaults, freeze what start-up made and what each full
    collection finds alive, and keep the time spent collecting (:func:`collecting_s`)."""
    gc.collect()
    gc.freeze()
    _done.looked_at = gc.get_freeze_count()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, MIDDLE_COLLECTION_THRESHOLD, FULL_COLLECTION_THRESHOLD)
    if _collection not in gc.callbacks:
        gc.callbacks.append(_collection)


def _collection(phase: str, info: dict[str, Any]) -> None:
    """Called by CPython at the start and the end of every collection. It only moves objects between the
    collector's lists and adds up time: nothing here may log or wait."""
    full = info["generation"] == _FULL
    if phase == "start":
        _done.started_at = time.perf_counter()
        if full and not _done.overloaded and gc.get_freeze_count() >= LOOK_AGAIN_AT * _done.looked_at:
            gc.unfreeze()  # this collection scans everything the process holds
            _done.complete = True
        return
    _done.seconds += time.perf_counter() - _done.started_at
    if full:
        gc.freeze()
        if _done.complete:
            _done.looked_at = gc.get_freeze_count()
            _done.complete = False
