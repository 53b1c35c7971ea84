"""Which instance a call tries first, and in which order it fails over: pure strategies."""

from __future__ import annotations

import random as _random
from collections.abc import Sequence
from typing import Protocol, TypeVar

T = TypeVar("T")


class Picker(Protocol):
    """Orders the candidates of one call: the first is tried first, the rest are the failover order.

    The order may be ``candidates`` itself (when it is already the order): read it, do not change it."""

    def order(self, service: str, candidates: Sequence[T]) -> Sequence[T]: ...


class RoundRobinPicker:
    """Starts each call of a service one position after the previous call's start.

    The position is kept per service, so two services never disturb each other's rotation.
    """

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def order(self, service: str, candidates: Sequence[T]) -> Sequence[T]:
        """``candidates`` rotated to this call's start: ``candidates`` itself when it starts at the first."""
        if not candidates:
            return candidates
        position = self._next.get(service, 0)
        self._next[service] = position + 1
        start = position % len(candidates)
        return candidates if start == 0 else [*candidates[start:], *candidates[:start]]

    def __repr__(self) -> str:
        return "RoundRobinPicker()"


class RandomPicker:
    """A uniformly random order for every call (``rng`` injectable for tests)."""

    __slots__ = ("_rng",)

    def __init__(self, rng: _random.Random | None = None) -> None:
        self._rng = rng or _random.Random()

    def order(self, service: str, candidates: Sequence[T]) -> Sequence[T]:
        ordered = list(candidates)
        self._rng.shuffle(ordered)
        return ordered

    def __repr__(self) -> str:
        return "RandomPicker()"
