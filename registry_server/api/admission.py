"""Admission: a request the registry cannot serve in time is refused at the door, or told to slow down.

An overloaded registry that queues everything answers late, to callers that have already given up, and
its heartbeats arrive after the leases they should renew have run out. Two rules keep the load within
what the replica can serve:

- **The in-flight limit.** While ``max_in_flight`` writes are being served (they wait on the store), a
  write (a heartbeat, a registration, a removal) is answered at once with ``503`` and ``Retry-After``, at
  the cost of two ``send`` calls. Reads may use twice the limit; watches (blocking queries, change
  streams) count in neither once they wait, since ``REGISTRY_MAX_WATCHERS`` bounds them.
- **Pacing** (``watch_lag``, ``REGISTRY_PACE_HEARTBEATS``; the heartbeat endpoint asks :meth:`Admission.pace`). Part of
  the queue of an overloaded registry is not in the application at all but in the server, in requests
  read and parsed and waiting for their turn, where no limit sees them. A timer measures how late the
  loop runs it; while it is later than :data:`TARGET_LAG_S`, the share of heartbeats answered plainly is
  cut by a fifth every tick (and raised by a twentieth while it is not), and the others are served all
  the same, with ``Retry-After`` on their ``200``: come back that much later. Refusing them would not
  help: in a Python server, reading and answering a request costs most of what serving a heartbeat does,
  so a refusal frees little, while a paced heartbeat is useful and carries the same message. A false
  alarm (a host slow for other reasons) costs a few heartbeats a later turn, nothing more. Other writes
  are not paced.

Either way the load follows the capacity: ``Retry-After`` grows while more than :data:`TARGET_REFUSED` of
the writes are told to come back later (doubling every quarter of a second) and shrinks slowly while
fewer are (at most ``max_retry_after_s``, jittered so that they do not come back together). A heartbeat
told to come back later is a sign of life, and its lease covers the delay: a paced one's through its own
renewal, a refused one's later, in bulk (``refused``, see :mod:`registry_server.api.refused_heartbeats`).

Reads are never refused for lag; ``/healthz`` and ``/metrics`` are always served, so operators see the
overload. While the loop is behind, every tick tells ``hold``, which keeps every live lease from running
out (heartbeats may be waiting unread in the server).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable

from prometheus_client import Counter
from starlette.types import Scope, Send

TARGET_LAG_S = 0.05
"""How late the loop may run before heartbeats are paced: a heartbeat then waits about this long to start."""
TICK_S = 0.05
_MIN_SHARE = 0.02
_WRITES = frozenset({"PUT", "POST", "DELETE", "PATCH"})
_ALWAYS = frozenset({"/healthz", "/metrics"})
TARGET_REFUSED = 0.05
"""The share of writes told to come back later (refused or paced) that ``Retry-After`` aims at: above it
the delay grows, below a third of it the delay shrinks."""
MAX_RETRY_AFTER_TTLS = 2
"""The longest ``Retry-After``, in TTLs: a death right after a refused heartbeat is seen at most this plus
one TTL later, and a heartbeat interval of a third of the TTL can still stretch six-fold."""
WINDOW_S = 0.25
"""How often the delay is adjusted, from the writes admitted and refused since the last adjustment. Short,
and the growth steep: an overload must be spread before the queue it builds outlasts callers' timeouts
(then nobody hears a ``Retry-After`` and the load never falls); the decay is slow, since the delays
given out keep working for as long as they last."""
_GROW = 2.0
_DECAY = 1.1
_BODY = b'{"error":{"code":"overloaded","message":"the registry is overloaded; retry after the time given"}}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())]


class Admission:
    """Counts the requests in flight, refuses writes beyond ``max_in_flight`` and paces heartbeats while the
    loop runs late: the first call the front layer makes on every request (see
    :class:`registry_server.api.middleware.FrontLayer`)."""

    def __init__(self, max_in_flight: int, *, refused: Callable[[Scope, float], None], shed: Callable[[], None],
                 hold: Callable[[], None], refusals: Counter, paced: Counter, max_retry_after_s: float,
                 watch_lag: bool = True, clock: Callable[[], float] | None = None) -> None:
        """``refused(scope, retry_after_s)``: a write was refused and told to come back that much later.
        ``shed()``: likewise, said once per refusal. ``hold()``: the loop runs behind (with
        ``watch_lag``), keep the live leases. ``refusals`` and ``paced`` count the two answers.
        ``watch_lag``: pace heartbeats while the event loop runs late (off: only the in-flight limit
        holds)."""
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        """Requests admitted and not yet answered, watches apart (``REGISTRY_MAX_WATCHERS`` bounds those)."""
        self.writes_in_flight = 0
        self._refused_hook = refused
        self._shed = shed
        self._hold = hold
        self._refusals = refusals
        self._paced = paced
        self.share = 1.0
        """The share of heartbeats answered without ``Retry-After`` while the loop is behind (1.0: all)."""
        self._ticking = not watch_lag  # never started when the lag is not watched
        self._random = random.random
        self._clock = clock
        self.max_retry_after_s = max(1.0, max_retry_after_s)
        self.retry_after_s = 1.0
        """The mean delay given now (each one jittered between half and one and a half of it)."""
        self._window_start: float | None = None
        self._admitted = 0
        self._deferrals = 0

    def __repr__(self) -> str:
        return f"Admission(max_in_flight={self.max_in_flight}, in_flight={self.in_flight}, share={self.share:.2f})"

    def _start_ticking(self) -> None:
        self._ticking = True
        loop = asyncio.get_running_loop()
        loop.call_later(TICK_S, self._tick, loop, loop.time() + TICK_S)

    def _tick(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        now = loop.time()
        # A late tick counts only while requests are being served: a loop that ran late with none in
        # flight (a paused process, an in-process client that runs the loop only while it calls) had no
        # queue to protect, and pacing would slow (and holding keep) the first heartbeats after it.
        self.adjust(now - due if self.in_flight else 0.0)
        if self.share < 1.0:
            # Behind: heartbeats may be waiting in the server, unread, past their leases' end, however few
            # were paced or refused yet.
            self._hold()
        if not loop.is_closed():
            loop.call_later(TICK_S, self._tick, loop, now + TICK_S)

    def adjust(self, lag_s: float) -> None:
        """One tick of the control: the timer ran ``lag_s`` late."""
        if lag_s > TARGET_LAG_S:
            self.share = max(_MIN_SHARE, self.share * 0.8)
        else:
            self.share = min(1.0, self.share + 0.05)

    def admit(self, scope: Scope) -> bool:
        """Whether to serve the request: if so, it is in flight until :meth:`release`; if not, answer it
        with :meth:`refusal`."""
        if not self._ticking:
            self._start_ticking()
        if scope["method"] in _WRITES:
            if self.writes_in_flight >= self.max_in_flight:
                return False
            self.writes_in_flight += 1
            self._admitted += 1
        elif self.in_flight >= 2 * self.max_in_flight and scope["path"] not in _ALWAYS:
            return False
        self.in_flight += 1
        return True

    def pace(self) -> int | None:
        """For the heartbeat being served: while the loop is behind (``share`` below 1, so callers may skip
        the call otherwise), for a share of heartbeats, the seconds it should wait before the next one,
        which it is told with ``Retry-After`` and its lease covers; ``None``: answer it plainly."""
        if self.share >= 1.0 or self._random() < self.share:
            return None
        delay = math.ceil(self._delay_s())
        self._admitted -= 1  # counted as told to come back later, not as answered plainly
        self._deferrals += 1
        self._paced.inc()
        return delay

    def release(self, scope: Scope) -> None:
        """An admitted request is done, or became a watch (which waits on changes, not on this replica)."""
        self.in_flight -= 1
        if scope["method"] in _WRITES:
            self.writes_in_flight -= 1

    async def refusal(self, scope: Scope, send: Send) -> None:
        """The answer to a request not admitted: ``503`` and ``Retry-After``, before any work; the refused
        are told (``refused``) with the delay given."""
        delay = self._delay_s()
        self._deferrals += 1
        self._shed()
        self._refused_hook(scope, delay)
        self._refusals.inc()
        await send({"type": "http.response.start", "status": 503,
                    "headers": [*_HEADERS, (b"retry-after", str(math.ceil(delay)).encode())]})
        await send({"type": "http.response.body", "body": _BODY})

    def _delay_s(self) -> float:
        """The delay for one more write told to come back later: the current mean, adjusted once per window,
        jittered."""
        now = self._clock() if self._clock is not None else asyncio.get_running_loop().time()
        start = self._window_start
        if start is None:
            self._window_start = now
        elif now - start >= WINDOW_S:
            self._adjust_delay(int((now - start) / WINDOW_S))
            self._window_start = now
        return min(self.max_retry_after_s, self.retry_after_s * (0.5 + self._random()))

    def _adjust_delay(self, windows: int) -> None:
        """After ``windows`` windows: grow the delay while too many writes are told to come back later,
        shrink it while few are (and by one step per window that passed without one)."""
        total = self._admitted + self._deferrals
        deferred = self._deferrals / total if total else 0.0
        self._admitted = self._deferrals = 0
        if windows == 1 and deferred > TARGET_REFUSED:
            self.retry_after_s = min(self.max_retry_after_s, self.retry_after_s * _GROW + 1.0)
        elif deferred < TARGET_REFUSED / 3 or windows > 1:
            self.retry_after_s = max(1.0, self.retry_after_s / _DECAY ** windows)
