"""What a change stream's replays sent, so that the live events queued meanwhile are not sent twice.

A change stream subscribes to live changes before it replays what its consumer missed (and replays again
after the replica lost its live feed), so the live events queued during a replay may include some that the
replay sent. Events of one service are strictly ordered, and live ones arrive in the order the store took
them, so per service the newest event replayed tells them apart: a live event at or before it was sent; the
first one after it ends the need for the entry, since every later live event of that service is later
still. Live events are never recorded: a replay starts after everything sent, so only its own events can
arrive twice.

A stream that only follows holds no entry; right after a replay it holds one per service the replay
spanned that has not changed since. Entries are charged to a budget, :data:`STREAM_BYTES` per stream and
:data:`ALL_BYTES` across the streams of a replica: a replay that would pass either resets its stream
instead (its consumer re-reads the services, as after a gap too long to replay).
"""

from __future__ import annotations

import sys

from registry_server.model import ChangeEvent, event_id_order

ENTRY_BYTES = 160
"""What one entry takes beside its service's name: its slot in the table and the position (measured in
``tests/registry_server/test_replay_positions.py``)."""
STREAM_BYTES = 4 * 1024 * 1024
"""The most one change stream holds: about 20,000 services replayed and unchanged since."""
ALL_BYTES = 16 * 1024 * 1024
"""The most the change streams of a replica hold together."""


def entry_bytes(service: str) -> int:
    return sys.getsizeof(service) + ENTRY_BYTES


class PositionsBudget:
    """The bytes the replay positions of every change stream of a replica hold, within their bounds."""

    def __init__(self, stream_bytes: int = STREAM_BYTES, all_bytes: int = ALL_BYTES) -> None:
        self.stream_bytes = min(stream_bytes, all_bytes)
        self.all_bytes = all_bytes
        self.held = 0

    def __repr__(self) -> str:
        return f"PositionsBudget(held={self.held}, stream_bytes={self.stream_bytes}, all_bytes={self.all_bytes})"

    def take(self, stream_held: int, size: int) -> bool:
        """Charge ``size`` more bytes to a stream holding ``stream_held``; False (nothing charged) past a bound."""
        if stream_held + size > self.stream_bytes or self.held + size > self.all_bytes:
            return False
        self.held += size
        return True

    def give(self, size: int) -> None:
        self.held -= size


class ReplayPositions:
    """One change stream's entries: per service, the newest event its replays sent."""

    def __init__(self, budget: PositionsBudget) -> None:
        self._budget = budget
        self._newest: dict[str, tuple[int, int]] = {}
        self.held = 0

    def __len__(self) -> int:
        return len(self._newest)

    def record(self, event: ChangeEvent) -> bool:
        """A replayed event, about to be sent; False when recording it would pass the budget (then nothing
        is recorded, and the stream must not send it)."""
        if event.service not in self._newest:
            size = entry_bytes(event.service)
            if not self._budget.take(self.held, size):
                return False
            self.held += size
        self._newest[event.service] = event_id_order(event.id)[:2]
        return True

    def live(self, event: ChangeEvent) -> bool:
        """Whether a live event is new to the stream (not one a replay sent)."""
        newest = self._newest.get(event.service)
        if newest is None:
            return True
        if event_id_order(event.id)[:2] <= newest:
            return False
        del self._newest[event.service]  # every later live event of the service is later than this one
        self._release(event.service)
        return True

    def clear(self) -> None:
        """The stream ended: give back what it held."""
        self._budget.give(self.held)
        self.held = 0
        self._newest.clear()

    def _release(self, service: str) -> None:
        size = entry_bytes(service)
        self.held -= size
        self._budget.give(size)
