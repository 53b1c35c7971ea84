"""Our adapter around ``pybreaker.CircuitBreaker``: one breaker per instance, asyncio-correct.

pybreaker knows nothing of asyncio, so the adapter

* wraps the awaited call in ``with breaker.calling():`` (``breaker.call(coroutine_fn)`` would count the
  coroutine object as a success),
* lets a ``CancelledError`` (or any error that is not about the instance) pass through unchanged and
  uncounted: neither a failure nor a success, in any state,
* re-raises the original error when a failure trips the breaker (never a ``CircuitBreakerError``),
* admits at most ``half_open_max_probes`` calls at once while half-open (pybreaker admits everyone),
* counts the calls an open breaker turns away (pybreaker's listeners never see them), and
* reports state changes through a pybreaker listener as :class:`~resilient_client.events.BreakerStateChanged`.
"""

from __future__ import annotations

import operator
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar, TypeVarTuple, cast

import pybreaker

from resilient_client.config import BreakerConfig
from resilient_client.errors import BreakerRejectedError, TransportError
from resilient_client.events import BreakerRejected, BreakerRemoved, BreakerState, BreakerStateChanged, EventBus

if TYPE_CHECKING:
    from resilient_client.model import ServiceInstance

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

_STATES = {
    pybreaker.STATE_CLOSED: BreakerState.CLOSED,
    pybreaker.STATE_HALF_OPEN: BreakerState.HALF_OPEN,
    pybreaker.STATE_OPEN: BreakerState.OPEN,
}


class _CountedFailureError(Exception, Generic[T]):
    """Carries a result that counts as a failure (a 503, say) through pybreaker and back out."""

    def __init__(self, result: T) -> None:
        super().__init__("result counted as a failure")
        self.result = result


def _counts(exc: BaseException) -> bool:
    """Errors that say something about the instance; everything else leaves the breaker untouched."""
    return isinstance(exc, TransportError | _CountedFailureError)


class _NeutralStorage(pybreaker.CircuitMemoryStorage):
    """Memory storage whose counters can be frozen while pybreaker handles an uncounted exit."""

    def __init__(self) -> None:
        super().__init__(pybreaker.STATE_CLOSED)
        self.frozen = False

    def increment_counter(self) -> None:
        if not self.frozen:
            super().increment_counter()

    def reset_counter(self) -> None:
        if not self.frozen:
            super().reset_counter()

    def increment_success_counter(self) -> None:
        if not self.frozen:
            super().increment_success_counter()

    def reset_success_counter(self) -> None:
        if not self.frozen:
            super().reset_success_counter()


class _StateListener(pybreaker.CircuitBreakerListener):
    def __init__(self, emit: Callable[[BreakerState], None]) -> None:
        self._emit = emit

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        self._emit(_STATES[new_state.name])


class InstanceBreaker:
    """The breaker of one instance of one service."""

    def __init__(self, service: str, instance: str, config: BreakerConfig, events: EventBus) -> None:
        self.service = service
        self.instance = instance
        self.rejections = 0
        """Calls turned away without I/O (open, or every half-open probe slot taken)."""
        self._config = config
        self._events = events
        self._probes = 0
        self._retired = False
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
        events.emit(BreakerStateChanged(service, instance, BreakerState.CLOSED, transition=False))

    @property
    def state(self) -> BreakerState:
        return _STATES[self._breaker.current_state]

    @property
    def fail_counter(self) -> int:
        return int(self._breaker.fail_counter)

    @property
    def pybreaker(self) -> pybreaker.CircuitBreaker:
        """The wrapped breaker (read it; drive it only through :meth:`call`)."""
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

        The hot path, while closed: a closed breaker admits everyone, so the outcome goes to pybreaker
        afterwards. While closed, a success through ``calling()`` only resets the failure count, so a
        success with nothing to reset is not handed to pybreaker at all (``calling()`` cost more than
        the rest of the client's work on a call); failures, and a success that ends a run of failures,
        are recorded through ``calling()`` as before. An outcome that comes back after the breaker left
        the closed state (another call tripped it meanwhile) is dropped: the breaker has moved on, and
        its probes decide from there.
        """
        storage = self._storage
        if storage.state == pybreaker.STATE_CLOSED:
            try:
                result = await send(*args)
            except BaseException as exc:
                if _counts(exc):
                    self._record(failed=True)
                raise
            if is_failure(result):
                self._record(failed=True)
            elif storage.counter:
                self._record(failed=False)
            return result
        probe = self._admit()
        try:
            with self._breaker.calling():
                try:
                    result = await send(*args)
                except BaseException as exc:
                    if not _counts(exc):
                        storage.frozen = True  # pybreaker's verdict on this exit is dropped
                    raise
                if is_failure(result):
                    raise _CountedFailureError(result)
                return result
        except _CountedFailureError as failed:
            return cast(T, failed.result)
        except pybreaker.CircuitBreakerError as exc:  # pybreaker found it open on entry
            self._reject()
            raise BreakerRejectedError(f"circuit breaker of {self.instance} is open", sent=False) from exc
        finally:
            storage.frozen = False
            if probe:
                self._probes -= 1

    def _record(self, *, failed: bool) -> None:
        """Hand a closed-state outcome to pybreaker (see :meth:`call`)."""
        if self._storage.state != pybreaker.STATE_CLOSED:
            return
        try:
            with self._breaker.calling():
                if failed:
                    raise _CountedFailureError(None)
        except _CountedFailureError:
            pass

    def _admit(self) -> bool:
        """Reserve a half-open probe slot if needed; ``True`` when one was taken."""
        state = self._breaker.current_state
        if state == pybreaker.STATE_CLOSED:
            return False
        if state == pybreaker.STATE_OPEN and not self._reset_elapsed():
            self._reject()
            raise BreakerRejectedError(f"circuit breaker of {self.instance} is open", sent=False)
        if self._probes >= self._config.half_open_max_probes:
            self._reject()
            raise BreakerRejectedError(f"circuit breaker of {self.instance} is half-open and probing",
                                       sent=False)
        self._probes += 1
        return True

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
            self._events.emit(BreakerRejected(self.service, self.instance))

    def _state_changed(self, state: BreakerState) -> None:
        if not self._retired:
            self._events.emit(BreakerStateChanged(self.service, self.instance, state))

    @property
    def retired(self) -> bool:
        """Dropped from its board (the instance left discovery): it reports nothing any more."""
        return self._retired

    def retire(self) -> None:
        """Report this breaker gone (:class:`BreakerRemoved`); calls still holding it report nothing."""
        if not self._retired:
            self._retired = True
            self._events.emit(BreakerRemoved(self.service, self.instance))

    def __repr__(self) -> str:
        return f"InstanceBreaker({self.service!r}, {self.instance!r}, state={self.state.label})"


class BreakerBoard:
    """Every instance breaker of one client, kept per ``(service, host:port)`` while discovery lists it.

    :meth:`lineup` gives a call the breakers of the instances it was handed, and drops (retires) the
    breaker of every instance of that service that discovery no longer lists, so a deregistered or
    expired instance leaves no breaker and no state gauge series behind.
    """

    def __init__(self, config: BreakerConfig, events: EventBus) -> None:
        self._config = config
        self._events = events
        self._breakers: dict[tuple[str, str], InstanceBreaker] = {}
        self._lineups: dict[str, tuple[tuple[ServiceInstance, ...], dict[int, InstanceBreaker]]] = {}

    def get(self, service: str, instance: str) -> InstanceBreaker:
        key = (service, instance)
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = self._breakers[key] = InstanceBreaker(service, instance, self._config, self._events)
        return breaker

    def lineup(self, service: str, instances: Sequence[ServiceInstance]) -> dict[int, InstanceBreaker]:
        """The breaker of each of ``instances`` (discovery's current answer), by ``id(instance)``.

        Instances of ``service`` that the answer no longer lists lose their breaker. The answer is
        compared with the previous one first (the same tuple, or the same objects, while the cache serves
        the same answer, kept alive by the lineup), so a call pays for this only when a new answer arrived.
        """
        known = self._lineups.get(service)
        if known is not None and (known[0] is instances or (  # (the manager's cached tuple itself)
                len(known[0]) == len(instances) and all(map(operator.is_, known[0], instances)))):
            return known[1]
        listed = {inst.address for inst in instances}
        for key, breaker in tuple(self._breakers.items()):
            if key[0] == service and key[1] not in listed:
                del self._breakers[key]
                breaker.retire()
        gates = {id(inst): self.get(service, inst.address) for inst in instances}
        self._lineups[service] = (tuple(instances), gates)  # (a tuple is kept as it is)
        return gates

    def __len__(self) -> int:
        return len(self._breakers)

    def __iter__(self) -> Iterator[InstanceBreaker]:
        return iter(tuple(self._breakers.values()))

    def __repr__(self) -> str:
        return f"BreakerBoard(breakers={len(self._breakers)})"
