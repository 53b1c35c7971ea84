"""Admission: a request the registry cannot serve in time is refused at the door, and a fleet that sends
more heartbeats than the replica serves is told how far apart to send them.

An overloaded registry that queues everything answers late, to callers that have already given up, and
its heartbeats arrive after the leases they should renew have run out. Two rules keep the load within
what the replica can serve:

- **The in-flight limit.** While ``max_in_flight`` writes are being served (they wait on the store), a
  write (a heartbeat, a registration, a removal) is answered at once with ``503`` and ``Retry-After``. It
  bounds what writes waiting on a slow store hold; it does not relieve a replica short of CPU: the server
  has read and parsed a request before it gets here, so refusing it costs nearly what serving a heartbeat
  does, and a low limit turns a burst the replica would have served into refusals that come back. Reads
  may use twice the limit; watches (blocking queries, change streams) count in neither once they wait,
  since ``REGISTRY_MAX_WATCHERS`` bounds them.
- **Spacing** (``REGISTRY_PACE_HEARTBEATS``, on by default). The replica knows two figures: the instances
  whose heartbeats it served lately, and the requests a second it serves while it is saturated (the loop
  running late for half of a second, or writes refused): what most of the last eight seconds say, a
  saturated one what it served and any other the estimate it kept up under (a long garbage collection
  says nothing of the throughput, and counts as the latter). From its first saturated second
  on, every heartbeat it answers carries ``Retry-After``: the spacing, instances ÷ 95 % of that
  throughput. Were every instance to come back exactly then, the heartbeats would arrive a little slower
  than the replica serves them, whatever the fleet's own interval (an instance whose interval is
  longer waits the longer of the two, and is not slowed). It is what Consul does when it scales its
  agents' sync interval with the cluster's size, decided here by the replica that bears the load, from
  what it measures. A paced heartbeat is served all the same (refusing it would free little: in a Python
  server, reading and answering a request costs most of what serving a heartbeat does), and its lease
  covers the spacing plus a TTL. In a second in which the loop never ran late the estimate grows by a
  twentieth (the replica could have served more than it was sent), if the fleet sent most of what the
  spacing aims at. The spacing ends when it falls under a second, or after a minute without saturation
  with the load under half the throughput. While it spaces heartbeats, the garbage collector works as an
  overload needs (:func:`registry_server.collector.replica_overloaded`).

Each instance is told to come back at *its own* point of the spacing: the replica counts the spacings that
have passed since it began spacing (a count that runs slower or faster as the spacing changes, never
jumps), and an instance's point in each is fixed by its id. The delay given brings the instance to its
next point at least half a spacing away, so it lies between half a spacing and one and a half, and is
one spacing for an instance that comes back when told. Whatever burst a set of instances was answered in,
they come back spread over a whole spacing, and stay so: a random delay around the spacing would scatter a
burst over a fraction of it, and the fleet would come back in waves. A refused write is told the same (a
write that is not a heartbeat, at a random point; a one-second spacing when there is none).

A heartbeat told to come back later is a sign of life, and its lease covers the delay: a paced one's
through its own renewal, a refused one's later, in bulk (``refused``, see
:mod:`registry_server.api.refused_heartbeats`).

Reads are never refused for lag; ``/healthz`` and ``/metrics`` are always served, so operators see the
overload. While the loop runs late, or the listening socket's accept queue is half full, every check tells
``hold``, which keeps every live lease from running out: heartbeats may be waiting unread in the server,
or be dropped by the kernel as connection attempts, where nothing tells their instances from dead ones.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable

from prometheus_client import Counter
from starlette.types import Scope, Send

from registry_server.collector import collecting_s, replica_overloaded

log = logging.getLogger("registry_server.overload")

TARGET_LAG_S = 0.05
"""How late the loop may run before it counts as behind: a request then waits about this long to start."""
TICK_S = 0.05
SECOND_S = 1.0
"""How often the spacing is worked out again."""
LATE_TICKS = 10
"""Late checks in a second (of twenty) that make it a saturated one: the loop was behind for half of it. A
stall (a collection) and the backlog it leaves are not a saturated replica."""
UTILISATION = 0.95
"""The share of the measured throughput the spacing aims the heartbeats at: a margin for the requests
that are not heartbeats, and for the estimate's error."""
GROWTH = 1.05
"""How much the throughput estimate grows in a second in which the loop never ran late: what the replica
served then is what it was sent, not all it could serve."""
GROWS_FROM = 0.8
"""The share of what the spacing aims at that a second must have served for the estimate to grow: a
second the fleet sent less in (it answers a shorter spacing only a spacing later) proves nothing more,
and growing on it would run ahead of the fleet, then space it for more than the replica serves."""
QUIET_S = 60.0
"""Seconds without saturation, the load under half the throughput, after which the spacing is lifted."""
RECENT = 8
"""The last seconds whose votes make the estimate, their median (of an even number, the lower one): a
saturated second votes for what it served, any other for the estimate it kept up under. What a saturated
second serves varies by a third either way (the machine, the mix of requests, the collector, a wave of the
fleet, the backlog a stall left): the best of several, or a lone lucky one, would space the fleet for more
than the replica serves, so that it stays saturated and its backlog grows into timeouts; a lone unlucky
one would space it for far less, and the replica would serve a fraction of what it can until the estimate
grew back; and a second from long ago (before the fleet grew, or while it registered) would space it for
what the replica served then. Half of the last eight saturated move the estimate."""
COLLECTING_STALL_S = 0.1
"""Seconds of garbage collection that make a second a stall: what it served says nothing of the
throughput, and it votes for the estimate as it is."""
_WRITES = frozenset({"PUT", "POST", "DELETE", "PATCH"})
_ALWAYS = frozenset({"/healthz", "/metrics"})
MAX_RETRY_AFTER_TTLS = 2
"""The longest ``Retry-After``, in TTLs: a death right after a paced or refused heartbeat is seen at most
this plus one TTL later."""
_SPREAD = 0.5
"""How far from one spacing a delay given may be, in spacings either way: an instance is brought to its own
point of the spacing, at least this much of a spacing away."""
_POINTS = 2**32
_BODY = b'{"error":{"code":"overloaded","message":"the registry is overloaded; retry after the time given"}}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())]


class Admission:
    """Counts the requests in flight, refuses writes beyond ``max_in_flight`` and, once the replica has been
    saturated, spaces heartbeats: the first call the front layer makes on every request (see
    :class:`registry_server.api.middleware.FrontLayer`)."""

    def __init__(self, max_in_flight: int, *, heartbeat_of: Callable[[Scope], str | None],
                 refused: Callable[[str | None, Scope, float], None], shed: Callable[[], None],
                 hold: Callable[[], None], refusals: Counter, paced: Counter, max_retry_after_s: float,
                 pace: bool = True, accept_queue: Callable[[], float | None] | None = None) -> None:
        """``heartbeat_of(scope)``: the instance a request heartbeats (``None``: not a heartbeat).
        ``refused(instance_id, scope, retry_after_s)``: a write was refused and told to come back that much
        later (``instance_id``: the instance it heartbeats, if it is a heartbeat).
        ``shed()``: likewise, said once per refusal. ``hold()``: the loop runs behind, keep the live leases.
        ``refusals`` and ``paced`` count the two answers. ``pace``: watch the loop and space heartbeats
        (off: only the in-flight limit holds). ``accept_queue``: how full the listening socket's accept
        queue is; at half full, a check counts as late too (connection attempts may be dropped unseen)."""
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        """Requests admitted and not yet answered, watches apart (``REGISTRY_MAX_WATCHERS`` bounds those)."""
        self.writes_in_flight = 0
        self._heartbeat_of = heartbeat_of
        self._refused_hook = refused
        self._shed = shed
        self._hold = hold
        self._refusals = refusals
        self._paced = paced
        self.max_retry_after_s = max(1.0, max_retry_after_s)
        self.spacing_s: float | None = None
        """While the replica paces heartbeats, how far apart each instance should send them; ``None``: they
        are answered plainly."""
        self.capacity_per_s: float | None = None
        """Requests a second the replica serves when saturated (``None``: it never was)."""
        self._pace = pace
        self._ticking = not pace  # never started when the loop is not watched
        self._accept_queue = accept_queue
        self._random = random.random
        self._clock = time.monotonic
        self._cycles = 0.0
        self._cycles_at = 0.0
        """Spacings passed since the replica began spacing (``_cycles``), as of ``_cycles_at``: the count by
        which each instance is brought back at its own point of the spacing."""
        self._cpu_s = time.process_time
        """The process's CPU time so far, for the debug line: whether the replica used all it has."""
        self._cpu_at = self._cpu_s()
        self._collecting_s = collecting_s
        """The process's time in garbage collections so far, for the debug line: a second's stall told apart
        from a saturated second."""
        self._collecting_at = self._collecting_s()
        self._overloaded = replica_overloaded
        """Told when the spacing starts and ends: the garbage collector changes its ways for an overload."""
        self._heard: set[str] = set()
        self._heard_before: set[str] = set()
        """The instances whose heartbeats were served in this window and the one before: a window is the
        longest ``Retry-After``, so that every live instance is heard in each."""
        self._completed = 0
        self._late_ticks = 0
        self._refused = 0
        self._recent: deque[float | None] = deque(maxlen=RECENT)
        self._quiet_s = 0.0
        self._logged_spacing_s = 0.0

    def __repr__(self) -> str:
        return (f"Admission(max_in_flight={self.max_in_flight}, in_flight={self.in_flight}, "
                f"spacing_s={self.spacing_s})")

    @property
    def instances(self) -> int:
        """The instances heard lately (their heartbeats served)."""
        return max(len(self._heard), len(self._heard_before))

    def _start_ticking(self) -> None:
        self._ticking = True
        self._cpu_at = self._cpu_s()
        self._collecting_at = self._collecting_s()
        loop = asyncio.get_running_loop()
        now = loop.time()
        loop.call_later(TICK_S, self._tick, loop, now + TICK_S, now, now)

    def _tick(self, loop: asyncio.AbstractEventLoop, due: float, second: float, window: float) -> None:
        now = loop.time()
        # A late tick counts only while requests are being served: a loop that ran late with none in
        # flight (a paused process, an in-process client that runs the loop only while it calls) had no
        # queue to protect.
        queue = self._accept_queue
        if (self.in_flight and now - due > TARGET_LAG_S) or (queue is not None and (queue() or 0.0) >= 0.5):
            self._late_ticks += 1
            self._hold()  # heartbeats may be waiting in the server, unread, past their leases' end
        if now - second >= SECOND_S:
            self.second(now - second)
            second = now
        if now - window >= self.max_retry_after_s:
            self._heard_before, self._heard = self._heard, set()
            window = now
        if not loop.is_closed():
            loop.call_later(TICK_S, self._tick, loop, now + TICK_S, second, window)

    def second(self, elapsed_s: float) -> None:
        """The control, once a second (``elapsed_s``: since the last). A saturated second (unless a long
        collection stalled it) measures the throughput: the requests it served; the estimate is what most of
        the recent seconds vote for (:data:`RECENT`). Refusals are not counted: each costs a fraction of a served
        request, and a replica refusing half of what it answers would take itself for one serving all of
        it, space the fleet for that, and go on refusing. A second in which the loop never ran
        late tells only that the replica could serve more than it was sent: the estimate grows a little.
        From the estimate, the spacing."""
        completed_per_s = self._completed / elapsed_s
        cpu_s, cpu_at = self._cpu_s(), self._cpu_at
        self._cpu_at = cpu_s
        collecting_s, collecting_at = self._collecting_s(), self._collecting_at
        self._collecting_at = collecting_s
        late_ticks, refused = self._late_ticks, self._refused
        saturated = late_ticks >= LATE_TICKS or refused > 0
        idle = late_ticks == 0 and refused == 0
        self._completed = self._late_ticks = self._refused = 0
        stalled = collecting_s - collecting_at > COLLECTING_STALL_S
        self._recent.append(completed_per_s if saturated and not stalled and completed_per_s > 0 else None)
        if saturated:
            # (see RECENT: a lone saturated second moves nothing, most of the recent seconds saturated do)
            votes = [served for served in self._recent if served is not None]
            if self.capacity_per_s is not None:
                votes += [self.capacity_per_s] * (len(self._recent) - len(votes))
            votes.sort()
            if votes:
                self.capacity_per_s = votes[(len(votes) - 1) // 2]  # (of an even number, the lower)
        elif idle and self.capacity_per_s is not None \
                and completed_per_s >= GROWS_FROM * UTILISATION * self.capacity_per_s:
            self.capacity_per_s *= GROWTH
        self._quiet_s = 0.0 if saturated else self._quiet_s + elapsed_s
        capacity_per_s = self.capacity_per_s
        if capacity_per_s is None:
            return
        spacing_s = min(self.max_retry_after_s, self.instances / (UTILISATION * capacity_per_s))
        lifted = self._quiet_s >= QUIET_S and completed_per_s < capacity_per_s / 2
        if spacing_s > 1.0 and (saturated or self.spacing_s is not None) and not lifted:
            if self.spacing_s is None:
                log.warning("saturated: heartbeats spaced %.1f s apart (%d instances, about %.0f requests/s "
                            "served); each lease covers the spacing", spacing_s, self.instances, capacity_per_s)
                self._logged_spacing_s = spacing_s
            elif abs(spacing_s - self._logged_spacing_s) > 0.25 * self._logged_spacing_s:
                log.info("heartbeats spaced %.1f s apart (%d instances, about %.0f requests/s served)",
                         spacing_s, self.instances, capacity_per_s)
                self._logged_spacing_s = spacing_s
            self._space(spacing_s)
        elif self.spacing_s is not None:
            log.warning("heartbeats no longer spaced: the replica serves what its %d instances send",
                        self.instances)
            self._space(None)
        # What the control saw and decided, each second once it has an estimate: what an operator (or a
        # benchmark) needs to tell an overload that the spacing absorbs from one it oscillates around, and,
        # by the cores used, a replica sent less than it could serve from one with no more CPU to give (a
        # check finds the loop late only behind a backlog, which a replica under a CPU limit may not have).
        log.debug("control: %.0f requests/s served, %d writes refused, loop late at %d of %d checks, %.2f cores "
                  "used, %.2f s collecting garbage; estimate %.0f requests/s, %d instances, spacing %s",
                  completed_per_s, refused, late_ticks, round(SECOND_S / TICK_S), (cpu_s - cpu_at) / elapsed_s,
                  collecting_s - collecting_at, capacity_per_s, self.instances,
                  "none" if self.spacing_s is None else f"{self.spacing_s:.2f} s")

    def _space(self, spacing_s: float | None) -> None:
        """Heartbeats are spaced ``spacing_s`` apart from now on (``None``: not spaced). The count of
        spacings passed goes on from where it is, only faster or slower: every instance keeps its point."""
        now = self._clock()
        if self.spacing_s is not None:
            self._cycles += (now - self._cycles_at) / self.spacing_s
        if (self.spacing_s is None) != (spacing_s is None):  # an overload begins or ends
            self._overloaded(spacing_s is not None)
        self._cycles_at = now
        self.spacing_s = spacing_s

    def admit(self, scope: Scope) -> bool:
        """Whether to serve the request: if so, it is in flight until :meth:`release`; if not, answer it
        with :meth:`refusal`."""
        if not self._ticking:
            self._start_ticking()
        if scope["method"] in _WRITES:
            if self.writes_in_flight >= self.max_in_flight:
                return False
            self.writes_in_flight += 1
        elif self.in_flight >= 2 * self.max_in_flight and scope["path"] not in _ALWAYS:
            return False
        self.in_flight += 1
        return True

    def heard(self, instance_id: str) -> None:
        """A heartbeat of ``instance_id`` was served (it renewed a lease)."""
        if self._pace:  # (the ticks forget the instances no longer heard: without them, keep none)
            self._heard.add(instance_id)

    def pace(self, instance_id: str) -> int | None:
        """For a heartbeat of ``instance_id`` being served: while the replica spaces heartbeats, the seconds
        the instance should wait before the next one, which it is told with ``Retry-After`` and its lease
        covers; ``None``: answer it plainly."""
        if self.spacing_s is None:
            return None
        self._paced.inc()
        return self._delay_s(instance_id)

    def longest_delay_s(self) -> int:
        """The longest ``Retry-After`` the replica gives now (0: it spaces nothing)."""
        if self.spacing_s is None:
            return 0
        return min(int(self.max_retry_after_s), math.ceil((1.0 + _SPREAD) * self.spacing_s))

    def release(self, scope: Scope) -> None:
        """An admitted request is done, or became a watch (which waits on changes, not on this replica)."""
        self.in_flight -= 1
        self._completed += 1
        if scope["method"] in _WRITES:
            self.writes_in_flight -= 1

    async def refusal(self, scope: Scope, send: Send) -> None:
        """The answer to a request not admitted: ``503`` and ``Retry-After``, before any work; the refused
        are told (``refused``) with the delay given."""
        instance_id = self._heartbeat_of(scope)
        delay = self._delay_s(instance_id)
        self._refused += 1
        self._shed()
        self._refused_hook(instance_id, scope, delay)
        self._refusals.inc()
        await send({"type": "http.response.start", "status": 503,
                    "headers": [*_HEADERS, (b"retry-after", str(delay).encode())]})
        await send({"type": "http.response.body", "body": _BODY})

    def _delay_s(self, instance_id: str | None) -> int:
        """Whole seconds (as ``Retry-After`` gives them) to come back after: to the instance's next point of
        the spacing (a second when there is none) at least half a spacing away, the point fixed by its id
        (at random for a request that is no heartbeat); rounded up or down at random so that the mean is
        kept."""
        spacing = self.spacing_s if self.spacing_s is not None else 1.0
        point = self._random() if instance_id is None else (hash(instance_id) % _POINTS) / _POINTS
        cycles = self._cycles + (self._clock() - self._cycles_at) / spacing
        delay = ((point - cycles - _SPREAD) % 1.0 + _SPREAD) * spacing
        whole = math.floor(delay)
        return max(1, min(int(self.max_retry_after_s), whole + (self._random() < delay - whole)))
