"""Which instance a call tries first, and in which order it fails over: pure strategies."""

from __future__ import annotations

import random as _random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

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


class LeastOutstandingPicker:
    """Power of two choices on outstanding requests, as Envoy's least-request balancer: each call draws two
    distinct candidates at random and starts with the one that has fewer requests in flight (the first drawn
    on a tie). The others follow, fewest in flight first.

    Unlike "always the least loaded", two random choices never send every client's calls to the same idle
    instance at once, and the most loaded instance is never first while another is less loaded.
    ``outstanding(service, candidate)`` reads the requests in flight to a candidate.
    """

    __slots__ = ("_outstanding", "_rng")

    def __init__(self, outstanding: Callable[[str, Any], int], rng: _random.Random | None = None) -> None:
        self._outstanding = outstanding
        self._rng = rng or _random.Random()

    def order(self, service: str, candidates: Sequence[T]) -> Sequence[T]:
        count = len(candidates)
        if count < 2:
            return candidates
        randrange = self._rng.randrange
        first = randrange(count)
        second = randrange(count - 1)
        if second >= first:
            second += 1
        load = self._outstanding
        if load(service, candidates[second]) < load(service, candidates[first]):
            first = second
        rest = [*candidates[:first], *candidates[first + 1:]]
        if count > 2:
            rest.sort(key=lambda candidate: load(service, candidate))
        return [candidates[first], *rest]

    def __repr__(self) -> str:
        return "LeastOutstandingPicker()"


def metadata_zone(candidate: Any) -> str | None:
    """A candidate's zone: its ``metadata["zone"]`` (a :class:`~resilient_client.ServiceInstance`'s)."""
    metadata: Mapping[str, str] = candidate.metadata
    return metadata.get("zone")


class ZonePreference:
    """Keeps a call in ``zone`` while the zone has a candidate: its candidates come first, in ``inner``'s
    order, and the other zones' follow as the last failovers. With no candidate left in the zone (none
    ``UP``, or every breaker there open), the call spills over to all the others, in ``inner``'s order.
    """

    __slots__ = ("_inner", "_zone", "_zone_of")

    def __init__(self, inner: Picker, zone: str, zone_of: Callable[[Any], str | None] = metadata_zone) -> None:
        self._inner = inner
        self._zone = zone
        self._zone_of = zone_of

    def order(self, service: str, candidates: Sequence[T]) -> Sequence[T]:
        zone, zone_of = self._zone, self._zone_of
        local = [candidate for candidate in candidates if zone_of(candidate) == zone]
        if not local or len(local) == len(candidates):
            return self._inner.order(service, candidates)
        return [*self._inner.order(service, local),
                *(candidate for candidate in candidates if zone_of(candidate) != zone)]

    def __repr__(self) -> str:
        return f"ZonePreference({self._inner!r}, zone={self._zone!r})"
