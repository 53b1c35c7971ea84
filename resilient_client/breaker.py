"""Our adapter around ``pybreaker.CircuitBreaker``: one breaker per instance, asyncio-correct.

pybreaker knows nothing of asyncio, so the adapter

* hands outcomes to pybreaker through ``breaker.calling()`` (``breaker.call(coroutine_fn)`` would count
  the coroutine object as a success), entered and left synchronously around the caller's own ``await``
  (:meth:`InstanceBreaker.admit`, then the outcome), so no coroutine of ours stands between a call and
  its transport,
* lets a ``CancelledError`` (or any error that is not about the instance) pass through unchanged and
  uncounted: neither a failure nor a success, in any state,
* re-raises the original error when a failure trips the breaker (never a ``CircuitBreakerError``),
* admits at most ``half_open_max_probes`` calls at once while half-open (pybreaker admits everyone),
* counts the calls an open breaker turns away (pybreaker's listeners never see them), and
* reports state changes (seen through a pybreaker listener) to its :class:`Reporter`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar, TypeVarTuple, cast

import pybreaker

from resilient_client._report import Reporter
from resilient_client.config import BreakerConfig
from resilient_client.errors import BreakerRejectedError, TransportError
from resilient_client.hooks import BreakerState

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

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
"""A half-open probe in flight: the entered ``calling()`` of its breaker (see :meth:`InstanceBreaker.admit`)."""


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
    uncounted exit. Plain attributes (they replace the base class's abstract properties): the state and
    the failure count are read on every call."""

    state: str = pybreaker.STATE_CLOSED
    counter: int = 0
    success_counter: int = 0
    opened_at: datetime | None = None

    def __init__(self) -> None:
        super().__init__("memory")
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
    """The breaker of one instance of one service."""

    def __init__(self, service: str, instance: str, config: BreakerConfig, reporter: Reporter, *,
                 on_state: Callable[[InstanceBreaker, BreakerState], None] | None = None) -> None:
        """``on_state(breaker, state)`` is called on every change of state, until the breaker is retired."""
        self.service = service
        self.instance = instance
        self.rejections = 0
        """Calls turned away without I/O (open, or every half-open probe slot taken)."""
        self._config = config
        self._reporter = reporter
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
        """The wrapped breaker (read it; drive it only through :meth:`call` or :meth:`admit`)."""
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
        """Await ``send(*args)`` under the breaker; a result for which ``is_failure`` holds counts as a failure.

        Raises :class:`BreakerRejectedError` without calling ``send`` when the breaker turns the call away.
        The client does the same in its own coroutine (one coroutine level less at every resumption):
        :meth:`admit`, await, then :meth:`succeeded`, :meth:`failed` or :meth:`raised`.
        """
        probe = self.admit()
        try:
            result = await send(*args)
        except BaseException as exc:
            self.raised(probe, exc)
            raise
        if is_failure(result):
            self.failed(probe, result)
        else:
            self.succeeded(probe)
        return result

    # A call under the breaker, driven synchronously: ``probe = admit()``, the caller awaits its call, then
    # exactly one of ``succeeded(probe)``, ``failed(probe, result)`` or ``raised(probe, error)``.
    #
    # While closed (the hot path) a closed breaker admits everyone, so nothing is held across the await:
    # ``admit`` answers ``None`` and the outcome goes to pybreaker afterwards. While closed, a success through
    # ``calling()`` only resets the failure count, so a success with nothing to reset is not handed to
    # pybreaker at all (``calling()`` costs more than the rest of the client's work on a call); failures,
    # and a success that ends a run of failures, are recorded through ``calling()``. An outcome that comes
    # back after the breaker left the closed state (another call tripped it meanwhile) is dropped: the
    # breaker has moved on, and its probes decide from there.
    #
    # Otherwise ``admit`` enters pybreaker's ``calling()`` (open → half-open when the reset timeout has
    # passed, or ``CircuitBreakerError``) and answers it as the probe; the outcome exits it, so pybreaker
    # judges the probe exactly as if the await had run inside ``with breaker.calling():``.

    def admit(self) -> Probe | None:
        """Let one call through: ``None`` while closed, else the half-open probe to hand back with its outcome.

        Raises :class:`BreakerRejectedError` (counted as a rejection) when the breaker turns the call away.
        """
        if self._storage.state == pybreaker.STATE_CLOSED:
            return None
        if self._storage.state == pybreaker.STATE_OPEN and not self._reset_elapsed():
            raise self._rejected("open")
        if self._probes >= self._config.half_open_max_probes:
            raise self._rejected("half-open and probing")
        probe = self._breaker.calling()
        try:
            probe.__enter__()  # open → half-open (listeners told), or CircuitBreakerError
        except pybreaker.CircuitBreakerError as exc:  # (the reset timeout had not passed after all)
            raise self._rejected("open") from exc
        self._probes += 1
        return cast(Probe, probe)

    def succeeded(self, probe: Probe | None) -> None:
        """The admitted call succeeded."""
        if probe is None:
            if self._storage.counter:  # (the closed hot path: nothing to reset, nothing to do)
                self._record(None)
        else:
            self._finish(probe, None)

    def failed(self, probe: Probe | None, result: object = None) -> None:
        """The admitted call returned a result that counts as a failure of the instance (a 503, say)."""
        self.raised(probe, _CountedFailureError(result))

    def raised(self, probe: Probe | None, error: BaseException) -> None:
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
        opened_at = self._storage.opened_at
        if opened_at is None:
            return True
        return datetime.now(UTC) >= opened_at + timedelta(seconds=self._breaker.reset_timeout)

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
