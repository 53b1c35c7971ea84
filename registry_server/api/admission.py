"""Admission: a request the registry cannot serve in time is refused at the door, before any work.

An overloaded registry that queues everything answers late, to callers that have already given up, and
its heartbeats arrive after the leases they should renew have run out. Instead a write (a heartbeat, a
registration, a removal) is answered at once with ``503`` and ``Retry-After``, at the cost of two
``send`` calls, when either

- ``max_in_flight`` writes are already being served (they wait on the store), or
- the event loop is behind: most of the queue of an overloaded registry is not in the application at
  all but in the server, in requests read and parsed and waiting for their turn. A timer measures how
  late the loop runs it; while it is later than :data:`TARGET_LAG_S`, the share of writes admitted is
  cut by a fifth every tick, and while it is not, raised by a twentieth: the registry admits as much as
  it answers in time, and refuses the rest at once.

Reads may use twice the in-flight limit and are never refused for lag; ``/healthz`` and ``/metrics`` are
always served, so operators see the overload. Each refusal tells the expiry protection, which renews the
live leases while the registry sheds (a refused heartbeat was a sign of life, not of death), and so does
every tick while the loop is behind (heartbeats may be waiting unread in the server).
"""

from __future__ import annotations

import asyncio
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
_BODY = b'{"error":{"code":"overloaded","message":"the registry is overloaded; retry after the time given"}}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode()),
            (b"retry-after", b"1")]


class Admission:
    """Counts the requests in flight and refuses writes beyond ``max_in_flight``: the first call the front
    layer makes on every request (see :class:`registry_server.api.middleware.FrontLayer`)."""

    def __init__(self, max_in_flight: int, *, shed: Callable[[], None], refused: Counter,
                 watch_lag: bool = True) -> None:
        """``watch_lag``: also shed while the event loop runs late (off, only the in-flight limit holds)."""
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self._shed = shed
        self._refused = refused
        self.share = 1.0
        """The share of writes admitted while the loop is behind (1.0: all of them)."""
        self._ticking = not watch_lag  # never started when the lag is not watched
        self._random = random.random

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
            # not a write was refused yet. Renew the leases as for a refusal.
            self._shed()
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
            self._shed()
            self._refused.inc()
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        """An admitted request is done."""
        self.in_flight -= 1

    @staticmethod
    async def refusal(send: Send) -> None:
        """The answer to a request not admitted: ``503`` and ``Retry-After``, before any work."""
        await send({"type": "http.response.start", "status": 503, "headers": _HEADERS})
        await send({"type": "http.response.body", "body": _BODY})

    def _refuse(self, scope: Scope) -> bool:
        if scope["method"] in _WRITES:
            return self.in_flight >= self.max_in_flight or (self.share < 1.0 and self._random() >= self.share)
        return self.in_flight >= 2 * self.max_in_flight and scope["path"] not in _ALWAYS
