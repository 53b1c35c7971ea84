"""A clock the test moves by hand."""

from __future__ import annotations


class FakeClock:
    def __init__(self, start_ms: int = 1_795_000_000_000) -> None:
        self.ms = start_ms

    def now_ms(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += round(seconds * 1000)
