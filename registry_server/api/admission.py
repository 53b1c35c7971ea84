"""Admission: a request the registry cannot serve in time is refused at the door, before any work.

An overloaded registry that queues everything answers late, to callers that have already given up, and
its heartbeats arrive after the leases they should renew have run out. Instead a write (a heartbeat, a
registration, a removal) is answered at once with ``503`` and ``Retry-After``, at the cost of two
``send`` calls, when either

- ``max_in_flight`` writes are already being served (they wait on the store), or
- (opt-in) the event loop is behind: part of the queue of an overloaded registry is not in the
  application at all but in the server, in requests read and parsed and waiting for their turn. A timer
  measures how late the loop runs it; while it is later than :data:`TARGET_LAG_S`, the share of writes
  admitted is cut by a fifth every tick, and while it is not, raised by a twentieth.

Refusing is not free: in a Python server, reading and answering a request costs most of what serving a
heartbeat does. So the registry also makes the load follow its capacity: ``Retry-After`` grows while more
than :data:`TARGET_REFUSED` of the writes are refused (doubling every quarter of a second) and shrinks
slowly while fewer are (at most
``max_retry_after_s``, jittered so that the refused do not come back together), and clients come back that
much later. A refused heartbeat is a sign of life: ``refused`` is told of it with the delay given, and
renews its lease to cover the delay (see :mod:`registry_server.api.refused_heartbeats`).

Reads may use twice the in-flight limit and are never refused for lag; ``/healthz`` and ``/metrics`` are
always served, so operators see the overload. While the loop is behind, every tick tells ``hold``, which
keeps every live lease from running out (heartbeats may be waiting unread in the server).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable

from prometheus_client import Counter
from starlette.types import Scope, Send

TARGET_LAG_S = 0.05
"""How late the loop may run before writes are shed: a heartbeat then waits about this long to start."""
TICK_S = 0.05
_MIN_SHARE = 0.02
_WRITES = frozenset({"PUT", "POST", "DELETE", "PATCH"})
_ALWAYS = frozenset({"/healthz", "/metrics"})
TARGET_REFUSED = 0.05
"""The share of writes refused that ``Retry-After`` aims at: above it the delay grows, below a third of it
the delay shrinks."""
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
    """Counts the requests in flight and refuses writes beyond ``max_in_flight``: the first call the front
    layer makes on every request (see :class:`registry_server.api.middleware.FrontLayer`)."""

    def __init__(self, max_in_flight: int, *, refused: Callable[[Scope, float], None],
                 hold: Callable[[], None], counter: Counter, max_retry_after_s: float,
                 watch_lag: bool = True, clock: Callable[[], float] | None = None) -> None:
        """``refused(scope, retry_after_s)``: a write was refused and told to come back that much later.
        ``hold()``: the loop runs late (with ``watch_lag``), keep the live leases. ``watch_lag``: also shed
        while the event loop runs late (off: only the in-flight limit holds)."""
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self._refused_hook = refused
        self._hold = hold
        self._counter = counter
        self.share = 1.0
        """The share of writes admitted while the loop is behind (1.0: all of them)."""
        self._ticking = not watch_lag  # never started when the lag is not watched
        self._random = random.random
        self._clock = clock
        self.max_retry_after_s = max(1.0, max_retry_after_s)
        self.retry_after_s = 1.0
        """The mean delay refusals give now (each one jittered between half and one and a half of it)."""
        self._window_start: float | None = None
        self._admitted = 0
        self._refused = 0

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
        # queue to protect, and shedding would refuse the first requests after it.
        self.adjust(now - due if self.in_flight else 0.0)
        if self.share < 1.0:
            # Behind: heartbeats may be waiting in the server, unread, past their leases' end, whether or
            # not a write was refused yet.
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
        if self._refuse(scope):
            return False
        if scope["method"] in _WRITES:
            self._admitted += 1
        self.in_flight += 1
        return True

    def release(self) -> None:
        """An admitted request is done."""
        self.in_flight -= 1

    async def refusal(self, scope: Scope, send: Send) -> None:
        """The answer to a request not admitted: ``503`` and ``Retry-After``, before any work; the refused
        are told (``refused``) with the delay given."""
        delay = self.refusal_delay_s()
        self._refused_hook(scope, delay)
        self._counter.inc()
        await send({"type": "http.response.start", "status": 503,
                    "headers": [*_HEADERS, (b"retry-after", str(math.ceil(delay)).encode())]})
        await send({"type": "http.response.body", "body": _BODY})

    def _refuse(self, scope: Scope) -> bool:
        if scope["method"] in _WRITES:
            return self.in_flight >= self.max_in_flight or (self.share < 1.0 and self._random() >= self.share)
        return self.in_flight >= 2 * self.max_in_flight and scope["path"] not in _ALWAYS

    def refusal_delay_s(self) -> float:
        """The delay for one more refusal: the current mean, adjusted once per window, jittered."""
        now = self._clock() if self._clock is not None else asyncio.get_running_loop().time()
        start = self._window_start
        if start is None:
            self._window_start = now
        elif now - start >= WINDOW_S:
            self._adjust_delay(int((now - start) / WINDOW_S))
            self._window_start = now
        self._refused += 1
        return min(self.max_retry_after_s, self.retry_after_s * (0.5 + self._random()))

    def _adjust_delay(self, windows: int) -> None:
        """After ``windows`` windows: grow the delay while too many writes are refused, shrink it while few
        are (and by one step per window that passed without a refusal)."""
        total = self._admitted + self._refused
        refused = self._refused / total if total else 0.0
        self._admitted = self._refused = 0
        if windows == 1 and refused > TARGET_REFUSED:
            self.retry_after_s = min(self.max_retry_after_s, self.retry_after_s * _GROW + 1.0)
        elif refused < TARGET_REFUSED / 3 or windows > 1:
            self.retry_after_s = max(1.0, self.retry_after_s / _DECAY ** windows)
