"""Where the registry's time comes from.

Every lease computation uses the registry process's wall clock, in integer milliseconds, passed into the
store (and into the Redis scripts as an argument). We chose this over Redis ``TIME`` so that one injected
clock drives the memory store, the Redis store and the tests alike; replicas are expected to run NTP, and
a skew of milliseconds is negligible against leases of seconds.
"""

from __future__ import annotations

import time
from typing import Protocol


class WallClock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        ...


class SystemWallClock:
    """The wall clock of this process."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def __repr__(self) -> str:
        return "SystemClock()"
