"""Our adapter around ``pybreaker.CircuitBreaker``: one breaker per instance, asyncio-correct.

pybreaker knows nothing of asyncio, so :meth:`InstanceBreaker.call`

* hands the outcome of the awaited call to pybreaker through ``breaker.calling()``
  (``breaker.call(coroutine_fn)`` would count the coroutine object as a success),
* lets a ``CancelledError`` (or any error that is not about the instance) pass through unchanged and
  uncounted: neither a failure nor a success, in any state,
* re-raises the original error when a failure trips the breaker (never a ``CircuitBreakerError``),
* admits at most ``half_open_max_probes`` calls at once while half-open (pybreaker admits everyone),
* times the reset timeout on the injected clock (pybreaker reads the wall clock), and moves the breaker
  to half-open through pybreaker itself when it has run out,
* counts the calls an open breaker turns away (pybreaker's listeners never see them), and those in flight,
* reports state changes (seen through a pybreaker listener) to its :class:`Reporter`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Generic, TypeVar, TypeVarTuple, cast

import pybreaker

from resilient_client._clock import Clock
from resilient_client._report import Reporter
from resilient_client.config import BreakerConfig
from resilient_client.errors import BreakerRejectedError, TransportError
from resilient_client.hooks import BreakerState

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

_CLOSED = pybreaker.STATE_CLOSED

_STATES = {
    pybreaker.STATE_CLOSED: BreakerState.CLOSED,
    pybreaker.STATE_HALF_OPEN: BreakerState.HALF_OPEN,
    pybreaker.STATE_OPEN: BreakerState.OPEN,
}


class _CountedFailureError(Exception, Generic[T]):
    """Stands for a result that counts as a failure (a 503, say) where pybreaker expects an error."""

    def __init__(self, result: T) -> None:
        super().__init__("result counted as a failure")
        self.result = result


def _counts(exc: BaseException) -> bool:
    """Errors that say something about the instance; everything else leaves the breaker untouched."""
    return isinstance(exc, TransportError | _CountedFailureError)


Probe = AbstractContextManager[Any]
"""A half-open probe in flight: the entered ``calling()`` of its breaker."""


def _exit(calling: Probe, error: BaseException | None) -> None:
    """Leave an entered ``calling()`` as the ``with`` block would have been left: by ``error``, or normally.

    pybreaker hands back the error it was given (also when this failure trips it: ``throw_new_error_on_trip``
    is off), which ``__exit__`` then does not suppress and does not raise: the caller re-raises it itself.
    """
    if error is None:
        calling.__exit__(None, None, None)
    else:
        calling.__exit__(type(error), error, error.__traceback__)


class _NeutralStorage(pybreaker.CircuitBreakerStorage):
    """pybreaker's state storage, in memory, whose counters can be frozen while pybreaker handles an
    uncounted exit. Plain attributes (the class's replace the base class's abstract properties; each
    instance sets its own in ``__init__``, since the state and the failure count are read on every call
    and an instance's attribute is read several times faster than a class default)."""

    state: str = pybreaker.STATE_CLOSED
    counter: int = 0
    success_counter: int = 0
    opened_at: datetime | None = None
    """Written by pybreaker when it opens; unread: the adapter times the reset timeout on its own clock."""

    def __init__(self) -> None:
        super().__init__("memory")
        self.state = pybreaker.STATE_CLOSED
        self.counter = 0
        self.success_counter = 0
        self.opened_at = None
        self.frozen = False

    def increment_counter(self) -> None:
        if not self.frozen:
            self.counter += 1

    def reset_counter(self) -> None:
        if not self.frozen:
            self.counter = 0

    def increment_success_counter(self) -> None:
        if not self.frozen:
            self.success_counter += 1

    def reset_success_counter(self) -> None:
        if not self.frozen:
            self.success_counter = 0


class _StateListener(pybreaker.CircuitBreakerListener):
    def __init__(self, emit: Callable[[BreakerState], None]) -> None:
        self._emit = emit

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        self._emit(_STATES[new_state.name])


class InstanceBreaker:
    """The breaker of one instance of one service; calls go through :meth:`call`."""

    def __init__(self, service: str, instance: str, config: BreakerConfig, reporter: Reporter, clock: Clock, *,
                 on_state: Callable[[InstanceBreaker, BreakerState], None] | None = None) -> None:
        """``on_state(breaker, state)`` is called on every change of state, until the breaker is retired."""
        self.service = service
        self.instance = instance
        self.rejections = 0
        """Calls turned away without I/O (open, or every half-open probe slot taken)."""
        self.outstanding = 0
        """Calls in flight through this breaker now (what the least-outstanding picker compares)."""
        self._config = config
        self._reporter = reporter
        self._clock = clock
        self._opened_at = 0.0
        """When it last opened, on ``clock``."""
        self._probes = 0
        self._retired = False
        self._on_state = on_state
        self._storage = _NeutralStorage()
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=config.fail_max,
            reset_timeout=config.reset_timeout_s,
            exclude=[lambda exc: not _counts(exc)],
            listeners=[_StateListener(self._state_changed)],
            state_storage=self._storage,
            name=f"{service}@{instance}",
            throw_new_error_on_trip=False,
        )
        reporter.breaker_created(service, instance)

    @property
    def state(self) -> BreakerState:
        return _STATES[self._breaker.current_state]

    @property
    def fail_counter(self) -> int:
        return int(self._breaker.fail_counter)

    @property
    def pybreaker(self) -> pybreaker.CircuitBreaker:
        """The wrapped breaker (read it, add listeners; drive it only through :meth:`call`)."""
        return self._breaker

    def available(self) -> bool:
        """Whether a call would be admitted now (no side effect)."""
        state = self._storage.state
        if state == pybreaker.STATE_CLOSED:
            return True
        if state == pybreaker.STATE_OPEN and not self._reset_elapsed():
            return False
        return self._probes < self._config.half_open_max_probes

    async def call(self, send: Callable[[*Ts], Awaitable[T]], is_failure: Callable[[T], bool], *args: *Ts) -> T:
        """Await ``send(*args)`` under the breaker; a result for which ``is_failure`` holds counts as a failure
        (and is still returned).

        Raises :class:`BreakerRejectedError` without calling ``send`` when the breaker turns the call away.
        """
        probe = None if self._storage.state == _CLOSED else self._admit()
        self.outstanding += 1
        try:
            result = await send(*args)
        except BaseException as exc:
            self.outstanding -= 1
            self._raised(probe, exc)
            raise
        self.outstanding -= 1
        if is_failure(result):
            self._raised(probe, _CountedFailureError(result))
        elif probe is not None:
            self._finish(probe, None)
        elif self._storage.counter:  # a success after failures while closed: resets the count
            self._record(None)
        return result

    # While closed (the hot path) a closed breaker admits everyone, so nothing is held across the await:
    # ``_admit`` answers ``None`` and the outcome goes to pybreaker afterwards. While closed, a success through
    # ``calling()`` only resets the failure count, so a success with nothing to reset is not handed to
    # pybreaker at all; failures, and a success that ends a run of failures, are recorded through
    # ``calling()``. An outcome that comes back after the breaker left the closed state (another call tripped
    # it meanwhile) is dropped: the breaker has moved on, and its probes decide from there.
    #
    # Otherwise ``_admit`` enters pybreaker's ``calling()`` (once the reset timeout has passed on our clock,
    # after moving pybreaker to half-open) and answers it as the probe; the outcome exits it, so pybreaker
    # judges the probe exactly as if the await had run inside ``with breaker.calling():``.

    def _admit(self) -> Probe | None:
        """Let one call through: ``None`` while closed, else the half-open probe to hand back with its outcome.

        Raises :class:`BreakerRejectedError` (counted as a rejection) when the breaker turns the call away.
        """
        state = self._storage.state
        if state == pybreaker.STATE_CLOSED:
            return None
        if state == pybreaker.STATE_OPEN:
            if not self._reset_elapsed():
                raise self._rejected("open")
            self._breaker.half_open()  # (listeners told)
        if self._probes >= self._config.half_open_max_probes:
            raise self._rejected("half-open and probing")
        probe = self._breaker.calling()
        probe.__enter__()  # half-open: admitted
        self._probes += 1
        return cast(Probe, probe)

    def _raised(self, probe: Probe | None, error: BaseException) -> None:
        """The admitted call raised ``error`` (the caller re-raises it, also when this failure tripped the
        breaker): a failure when it is about the instance; otherwise (``CancelledError``, a bug) neither
        a failure nor a success."""
        if probe is None:
            if _counts(error):
                self._record(error)
        elif _counts(error):
            self._finish(probe, error)
        else:
            self._storage.frozen = True  # pybreaker's verdict on this exit is dropped
            try:
                self._finish(probe, error)
            finally:
                self._storage.frozen = False

    def _finish(self, probe: Probe, error: BaseException | None) -> None:
        """Exit the probe's ``calling()`` with its outcome and free its slot."""
        try:
            _exit(probe, error)
        finally:
            self._probes -= 1

    def _record(self, error: BaseException | None) -> None:
        """Hand a closed-state outcome to pybreaker (see above)."""
        if self._storage.state == pybreaker.STATE_CLOSED:
            calling = self._breaker.calling()
            calling.__enter__()
            _exit(calling, error)

    def _reset_elapsed(self) -> bool:
        return self._clock.monotonic() >= self._opened_at + self._config.reset_timeout_s

    def turned_away(self) -> None:
        """Count a call turned away because this breaker was found open before any attempt."""
        self._reject()

    def _reject(self) -> None:
        self.rejections += 1
        if not self._retired:
            self._reporter.breaker_rejected(self.service, self.instance)

    def _rejected(self, why: str) -> BreakerRejectedError:
        self._reject()
        return BreakerRejectedError(f"circuit breaker of {self.instance} is {why}", sent=False)

    def _state_changed(self, state: BreakerState) -> None:
        if state is BreakerState.OPEN:
            self._opened_at = self._clock.monotonic()
        if not self._retired:
            if self._on_state is not None:
                self._on_state(self, state)
            self._reporter.breaker_changed(self.service, self.instance, state)

    @property
    def retired(self) -> bool:
        """Dropped from its board (the instance left discovery): it reports nothing any more."""
        return self._retired

    def retire(self) -> None:
        """Report this breaker gone; calls still holding it report nothing."""
        if not self._retired:
            self._retired = True
            self._reporter.breaker_removed(self.service, self.instance)

    def __repr__(self) -> str:
        return f"InstanceBreaker({self.service!r}, {self.instance!r}, state={self.state.label})"
