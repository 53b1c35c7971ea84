"""The backoff schedule: pure, with the random source injected."""

from __future__ import annotations

import random as _random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

from resilient_client.config import BackoffConfig


class RandomSource(Protocol):
    def random(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """``delay(n)`` for the ``n``-th retry (0-based): capped exponential with jitter."""

    config: BackoffConfig = field(default_factory=BackoffConfig)

    def ceiling(self, retry: int) -> float:
        """The delay before jitter: ``min(max_s, base_s * factor**retry)``."""
        if retry < 0:
            raise ValueError("retry must not be negative")
        cfg = self.config
        try:
            value = cfg.base_s * cfg.factor ** retry
        except OverflowError:
            return cfg.max_s
        return min(cfg.max_s, value)

    def delay(self, retry: int, rng: RandomSource | None = None) -> float:
        """Seconds to wait before retry ``retry``: in ``((1 - jitter) * ceiling, ceiling]``."""
        ceiling = self.ceiling(retry)
        jitter = self.config.jitter
        if jitter <= 0:
            return ceiling
        return ceiling * (1.0 - jitter * (rng or _random).random())


def come_back_after(retry_after_s: float, interval_s: float, rng: RandomSource | None = None) -> float:
    """When to come back after a ``Retry-After`` of ``retry_after_s``, which counts whole seconds: at a
    random point of the second after it (of ``interval_s``, if shorter: a paced lease covers the delay plus
    a TTL, and an interval is shorter than the TTL). The instances a registry answered together (a burst it
    served at once) would otherwise come back together, the same burst again, every time it paces them."""
    return retry_after_s + (rng or _random).random() * min(1.0, interval_s)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); ``None`` if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
