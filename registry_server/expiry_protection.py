"""Expiry protection: no instance expires for heartbeats that nobody could hear.

Three causes, one remedy (every lease live when the trouble began gets a full TTL from now, so each owner
has a whole lease to heartbeat again):

- The store is unreachable. Nothing can be swept; when it answers again, and before any other operation
  of this replica touches it, the leases live at the last contact are extended. Idempotent: every replica
  that saw the outage may run it.
- No replica served at all (the whole fleet down or stalled). Replicas move a liveness mark in the store
  with every sweep; the first operation of a replica, and each sweep, moves it too, and the one replica
  that finds it older than the gap extends the leases live at that mark, before anything is read or swept.
- This replica is overloaded: it refuses writes (503 + ``Retry-After``), or (with pacing on) its event
  loop runs late or its accept queue is half full. Refused heartbeats renew their own leases, to cover the
  delay they were given (:mod:`registry_server.api.refused_heartbeats`), but others wait in the server
  until their callers give up, and a request whose caller left is never served: nothing tells a live
  instance among those from a dead one. So while it is held, and until a quiet period has passed, every
  sweep gives each lease that is live (or ran out since the last sweep) a full TTL from now, if its
  owner was heard (a heartbeat served or refused, or its registration) within :data:`HELD_UNHEARD_TTLS`
  TTLs. A death during an overload is therefore detected at most that, one TTL more and one sweep after
  the instance's last heartbeat, however long the overload lasts; sooner, one TTL, the quiet period and
  one sweep after the overload ends (or after the delay given to its last refused heartbeat, if that is
  later).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from registry_server.clock import WallClock
from registry_server.registry_observer import RegistryObserver
from registry_server.store.base import InstanceStore

log = logging.getLogger("registry_server.expiry_protection")

HELD_UNHEARD_TTLS = 6
"""How long (in TTLs) an overload holds the lease of an instance that nobody hears from. A live one is
told to come back at most two TTLs later (``MAX_RETRY_AFTER_TTLS``, registry_server/api/admission.py),
and then has four more for a heartbeat to get through: in an overload its attempts time out, and each
retry on a new connection waits behind the accept queue (in the overload benchmark, live instances went
unheard for 40 s at 3 x C with a 10 s TTL). A dead one stops being held after that, even if the replica
never stops being overloaded."""

OVERLOAD_LOG_QUIET_MS = 60_000
"""How long without a refusal ends an overload in the log. An overload comes in pulses, each refusing
for a second or two: logged once at its start and once at its end, not at every pulse."""


@dataclass(frozen=True, slots=True)
class FleetRevival:
    absent_since_ms: int
    """The fleet's liveness mark found stale: the last moment a replica served."""
    at_ms: int
    extended: int


class ExpiryProtection:
    def __init__(self, store: InstanceStore, clock: WallClock, ttl_ms: int, observer: RegistryObserver, *,
                 fleet_gap_ms: int | None = None, quiet_ms: int = 1000) -> None:
        """``fleet_gap_ms``: how old the fleet's liveness mark may be before this replica takes it as an
        absence of the whole fleet (``None``: no mark is kept). ``quiet_ms``: how long this replica must
        serve without shedding before its sweeps stop renewing every live lease."""
        self._store = store
        self._clock = clock
        self._ttl_ms = ttl_ms
        self._observer = observer
        self._fleet_gap_ms = fleet_gap_ms
        self._quiet_ms = quiet_ms
        self._attempt: asyncio.Task[None] | None = None
        self.active = False
        self.since_ms = 0
        self.last_ok_ms = clock.now_ms()
        self._marked_at: float | None = None
        self._unextended_ms: int | None = None
        """A stale mark this replica took over and has not yet extended the leases of (the store failed)."""
        """When this replica last moved the fleet's mark (monotonic seconds)."""
        self.revival: FleetRevival | None = None
        """The last time this replica found the fleet had been absent, and what it extended."""
        self.shedding_since_ms: int | None = None
        """Since the first refusal of an overload, until a quiet period without one."""
        self._last_shed_ms = 0
        self._overload_logged_ms: int | None = None
        """When the overload being logged began (``None``: none is)."""
        self._refusals = 0
        """Refusals since then."""
        self.holding_since_ms: int | None = None
        """While set (since the loop first ran late), every sweep renews the live leases of the instances
        heard lately."""
        self._last_hold_ms = 0
        self._held_from_ms = 0
        """Leases ending after this moment (the last renewing sweep) are renewed by the next one."""

    def __repr__(self) -> str:
        return (f"ExpiryProtection(active={self.active}, since_ms={self.since_ms}, "
                f"shedding_since_ms={self.shedding_since_ms})")

    @property
    def pending(self) -> bool:
        """Whether leases may need extending before the store is used (an outage, or the fleet check)."""
        return self.active or self._fleet_due()

    def _fleet_due(self) -> bool:
        """Whether the mark must be checked before the store is used: never yet, or this replica itself
        stalled for longer than the gap (a suspended process, or the memory store's only replica).

        The stall is timed by the process's monotonic clock: it is cheap enough for every request, and
        sweeps, which run at least once per interval, move the mark by the wall clock."""
        gap = self._fleet_gap_ms
        if gap is None:
            return False
        return self._marked_at is None or (time.monotonic() - self._marked_at) * 1000 > gap

    def shed(self) -> None:
        """A request was refused for overload (its sender was told when to come back): others may be
        waiting unheard, so the leases are held too."""
        now = self._clock.now_ms()
        self._last_shed_ms = now
        self._refusals += 1
        if self.shedding_since_ms is None:
            self.shedding_since_ms = now
        if self._overload_logged_ms is None:
            self._overload_logged_ms = now
            log.warning("overloaded: refusing writes with 503 and Retry-After; every live lease of an instance "
                        "heard lately is held until it is over")
        self.hold()

    def hold(self) -> None:
        """Heartbeats may go unheard (an overload): keep every live lease of an instance heard lately
        (:data:`HELD_UNHEARD_TTLS`) from running out until a quiet period has passed."""
        now = self._clock.now_ms()
        self._last_hold_ms = now
        if self.holding_since_ms is None:
            self.holding_since_ms = self._held_from_ms = now

    async def before_sweep(self) -> int:
        """Move the fleet's mark (extending if the fleet was absent); while held, give every lease that is
        live, or ran out since the last sweep, a full TTL if its owner was heard lately. The moment the
        sweep may expire leases up to."""
        await self._check_fleet()
        now = self._clock.now_ms()
        if self.shedding_since_ms is not None and now - self._last_shed_ms >= self._quiet_ms:
            self.shedding_since_ms = None  # (for /healthz: this pulse is over)
        started = self._overload_logged_ms
        if started is not None and now - self._last_shed_ms >= OVERLOAD_LOG_QUIET_MS:
            log.info("no longer overloaded: no write refused for %d s (%d refused in %.0f s); the leases held "
                     "run a full TTL from now", OVERLOAD_LOG_QUIET_MS // 1000, self._refusals,
                     (self._last_shed_ms - started) / 1000)
            self._overload_logged_ms = None
            self._refusals = 0
        if self.holding_since_ms is None:
            return now
        # A lease that ran out would answer its owner's next heartbeat 404 and force a re-registration: so
        # none may run out while heartbeats may be waiting unread, not even between two sweeps.
        extended = await self._store.extend_leases(self._held_from_ms, now + self._ttl_ms,
                                                   heard_since_ms=now - HELD_UNHEARD_TTLS * self._ttl_ms)
        self._held_from_ms = now
        self._observer.protection(self.active, extended)
        if now - self._last_hold_ms >= self._quiet_ms:
            self.holding_since_ms = None
        return now

    async def _check_fleet(self) -> None:
        gap = self._fleet_gap_ms
        if gap is None:
            return
        now = self._clock.now_ms()
        stale = self._unextended_ms
        if stale is None:
            stale = await self._store.mark_alive(now, gap)
        if stale is not None:
            # Kept until the extension succeeds: the mark has moved on, so no replica would find it again.
            self._unextended_ms = stale
            extended = await self._store.extend_leases(stale, now + self._ttl_ms)
            self._unextended_ms = None
            self.revival = FleetRevival(absent_since_ms=stale, at_ms=now, extended=extended)
            self._observer.protection(self.active, extended)
            log.warning("no registry replica served for %.1fs: extended %d leases live then by a full TTL",
                        (now - stale) / 1000, extended)
        # Only now: a request arriving while the leases are being extended waits for them (see pending).
        self._marked_at = time.monotonic()

    def reached(self) -> None:
        """The store answered."""
        self.last_ok_ms = self._clock.now_ms()

    def unreachable(self) -> None:
        """The store could not be reached: protect the leases it holds from this moment's view."""
        if self.active:
            return
        self.active = True
        self.since_ms = self.last_ok_ms
        self._observer.protection(True)
        log.warning("store unreachable: expiry protection on (sweeping paused; leases live at %d ms will be "
                    "extended when it is back)", self.since_ms)

    async def recover(self) -> None:
        """Extend the protected leases (after an outage, or of an absent fleet); raises the store's error
        while it is still unreachable.

        One attempt at a time, shared by every caller that arrives while it runs: concurrent requests
        all get its outcome within one store timeout instead of queueing behind each other's attempts.
        """
        if not self.pending:
            return
        attempt = self._attempt
        if attempt is None or attempt.done():
            attempt = self._attempt = asyncio.ensure_future(self._extend())
            attempt.add_done_callback(_retrieve)
        await asyncio.shield(attempt)

    async def _extend(self) -> None:
        if self._fleet_due():
            await self._check_fleet()
        if not self.active:
            return
        until = self._clock.now_ms() + self._ttl_ms
        extended = await self._store.extend_leases(self.since_ms, until)
        if not self.active:
            return
        self.active = False
        self.last_ok_ms = self._clock.now_ms()
        self._observer.protection(False, extended)
        log.info("store reachable again: extended %d leases by the outage; expiry protection off", extended)


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a failed attempt's error as seen: its callers got it (it is the store's usual outage error)."""
    if not task.cancelled():
        task.exception()
