"""``ResilientClient``: service-to-service calls by service name.

The path of a call: discovery cache → picker → breaker gate → transport → classify outcome → next attempt
(within the retry budget) or result. This module only wires those stages together; each lives in its own module.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Awaitable, Coroutine, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from resilient_client._backoff import Backoff, parse_retry_after
from resilient_client._breaker import InstanceBreaker
from resilient_client._breaker_board import BreakerBoard
from resilient_client._clock import Clock, SystemClock
from resilient_client._report import Reporter
from resilient_client._retry import (
    FAILOVER,
    STOP,
    PassPlanner,
    classify_error,
    classify_status,
    counts_against_instance,
    is_idempotent,
)
from resilient_client._retry_budget import RetryBudget
from resilient_client._transport import AiohttpTransport, OutgoingRequest, Transport
from resilient_client.config import ClientConfig
from resilient_client.errors import (
    AttemptTimeoutError,
    CircuitOpenError,
    RegistryUnavailableError,
    ServiceUnavailableError,
    TransportError,
)
from resilient_client.hooks import Hook, RequestOutcome
from resilient_client.manager import ServiceRegistryManager
from resilient_client.metrics import client_metrics
from resilient_client.model import ServiceInstance
from resilient_client.picker import LeastOutstandingPicker, Picker, RandomPicker, RoundRobinPicker, ZonePreference
from resilient_client.response import Response

_SUCCESS, _FAILURE = RequestOutcome.SUCCESS, RequestOutcome.FAILURE
"""What every call reports, read as globals (see ``_retry.RETURN``: an enum member read costs more)."""


class _CallFailedError(Exception):
    """Internal: a call ended without a response; carries the outcome to report."""

    def __init__(self, outcome: RequestOutcome, error: ServiceUnavailableError) -> None:
        self.outcome = outcome
        self.error = error


class _Tried:
    """What the failed attempts of one call have left so far: the last 502/503/504, the last failure below
    HTTP, and the shortest ``Retry-After`` of this pass's 503s. (No ``__init__``: the class attributes are the
    defaults, so a call that succeeds at once pays for no more than the object.)"""

    response: Response | None = None
    error: TransportError | None = None
    retry_after_s: float | None = None

    def failed_over(self, response: Response) -> None:
        """``response`` (a 502/503/504) made the call go on."""
        self.response = response
        if response.status == 503:
            hint = parse_retry_after(response.headers.get("Retry-After"))
            if hint is not None and (self.retry_after_s is None or hint < self.retry_after_s):
                self.retry_after_s = hint

    def take_retry_after(self) -> float | None:
        """The pass's ``Retry-After`` hint, cleared for the next pass."""
        hint, self.retry_after_s = self.retry_after_s, None
        return hint

    def last(self, service: str, *, deadline_passed: bool = False) -> Response:
        """What the call ends with: the last 502/503/504, else :class:`ServiceUnavailableError`."""
        if self.response is not None:
            return self.response
        error = self.error
        if error is None and deadline_passed:
            error = AttemptTimeoutError("the call's deadline passed", sent=False)
        raise _CallFailedError(RequestOutcome.FAILURE, ServiceUnavailableError(
            service, "no instance gave an HTTP response", error))


class Discovery(Protocol):
    """Where a client finds instances: a :class:`ServiceRegistryManager`, or a stand-in in tests."""

    def instances(self, service: str) -> tuple[ServiceInstance, ...] | Awaitable[Sequence[ServiceInstance]]:
        """The UP instances of ``service``: the one way a client asks. A tuple when the answer is in hand
        (nothing to await), else an awaitable of them."""
        ...

    async def close(self) -> None: ...


class ResilientClient:
    """Calls services by name: balanced over UP instances, failover, retries, one breaker per instance.

    ``ResilientClient(manager)`` discovers through that manager's cache; ``ResilientClient(registry_url=...)``
    (or no argument: the environment) makes and owns a manager of its own. Without ``config``, the defaults
    and ``SERVICE_ZONE``. A ``picker`` replaces the one ``config.load_balancer`` names.
    """

    def __init__(self, manager: Discovery | None = None, *,
                 registry_url: str | Sequence[str] | None = None, config: ClientConfig | None = None,
                 picker: Picker | None = None, transport: Transport | None = None,
                 metrics_registry: CollectorRegistry | None = None, metrics: bool = True,
                 hooks: Iterable[Hook] = (), clock: Clock | None = None,
                 rng: random.Random | None = None) -> None:
        self._owns_manager = manager is None
        self.manager: Discovery = manager if manager is not None else ServiceRegistryManager(
            registry_url=registry_url, metrics_registry=metrics_registry, metrics=metrics)
        self.config = config or ClientConfig.from_env()
        self._clock = clock or SystemClock()
        self._reporter = Reporter(client_metrics(metrics_registry) if metrics else None, hooks)
        self.breakers = BreakerBoard(self.config.breaker, self._reporter, self._clock)
        self._transport = transport or AiohttpTransport()
        self._rng = rng or random.Random()
        self._picker = picker or self._balancer(self.config.load_balancer)
        if self.config.zone is not None:
            self._picker = ZonePreference(self._picker, self.config.zone)
        self._budget = None if self.config.retry_budget is None else RetryBudget(
            self.config.retry_budget, min_per_s=self.config.retry_budget_min_per_s,
            window_s=self.config.retry_budget_window_s, clock=self._clock)
        self._attempt_timeout_s = self.config.attempt_timeout_s
        self._total_timeout_s = self.config.total_timeout_s
        self._planner = PassPlanner(Backoff(self.config.backoff), self.config.max_passes,
                                    self.config.max_retry_after_s)

    async def request(self, method: str, service: str, path: str, *, params: Mapping[str, str] | None = None,
                      headers: Mapping[str, str] | None = None, json: Any = None,
                      data: bytes | str | None = None, idempotent: bool | None = None,
                      timeout: float | None = None) -> Response:
        """One call to ``service``. ``timeout`` (seconds) bounds the whole call; ``idempotent=True`` lets a
        POST/PATCH fail over even after it may have been sent.

        Returns the first response that is not a 502/503/504, else the last 502/503/504 received; raises
        :class:`ServiceUnavailableError` when no instance gave an HTTP response.
        """
        method = method.upper()
        if not path.startswith("/"):
            path = "/" + path
        clock = self._clock
        started = clock.monotonic()
        deadline = started + (self._total_timeout_s if timeout is None else timeout)
        repeatable = is_idempotent(method, idempotent)
        tried = _Tried()
        budget = self._budget
        # The whole call runs in this one coroutine (each attempt in its breaker's ``call``): every coroutine
        # level between the caller and the transport costs again at each resumption of the call.
        try:
            found = self.manager.instances(service)
            # A fresh answer in the cache is a tuple: nothing to await (the common case).
            instances = found if isinstance(found, tuple) and found else await self._discover(service, found)
            if budget is not None:
                budget.first_attempt(service)
            passes = 0
            while True:
                order, breakers = self._candidates(service, instances, first_pass=passes == 0)
                for position, inst in enumerate(order):
                    if position:
                        if budget is not None and not budget.try_retry(service):
                            return self._out_of_budget(service, started, tried)
                        self._reporter.failed_over(service, order[position - 1].address)
                    remaining = deadline - clock.monotonic()
                    if remaining <= 0:
                        return self._finished(service, started, tried.last(service, deadline_passed=True))
                    outgoing = OutgoingRequest(method, inst.base_url + path, params, headers, json, data, inst.id)
                    breaker = breakers.get(id(inst)) or self.breakers.get(service, inst.address)
                    timeout_s = self._attempt_timeout_s
                    try:
                        response = await breaker.call(self._transport.send, counts_against_instance, outgoing,
                                                      timeout_s if timeout_s < remaining else remaining)
                    except TransportError as exc:
                        tried.error = exc
                        if classify_error(exc, repeatable=repeatable) is STOP:
                            return self._finished(service, started, tried.last(service))
                    else:
                        if classify_status(response.status, repeatable=repeatable) is not FAILOVER:
                            return self._finished(service, started, response)
                        tried.failed_over(response)
                passes += 1
                delay = self._planner.next_delay(passes, remaining_s=deadline - clock.monotonic(),
                                                 retry_after_s=tried.take_retry_after(), rng=self._rng)
                if delay is None:
                    return self._finished(service, started, tried.last(service))
                if budget is not None and not budget.try_retry(service):  # (for the next pass's first attempt)
                    return self._out_of_budget(service, started, tried)
                await clock.sleep(delay)
                self._reporter.retried(service, delay)
                with contextlib.suppress(_CallFailedError):  # else keep the instances this call knows
                    instances = await self._discover(service, self.manager.instances(service))
        except _CallFailedError as failed:
            self._reporter.request_finished(service, failed.outcome, clock.monotonic() - started)
            raise failed.error from failed.error.last_error

    def _candidates(self, service: str, instances: Sequence[ServiceInstance], *, first_pass: bool,
                    ) -> tuple[Sequence[ServiceInstance], dict[int, InstanceBreaker]]:
        """This pass's instances in the order to try them, and their breakers (by ``id(instance)``): those
        whose breaker admits a call now. On the first pass, none admitting ends the call (``CIRCUIT_OPEN``)."""
        breakers = self.breakers.lineup(service, instances)
        candidates = self.breakers.admitting(service, instances, breakers)
        if not candidates and first_pass:
            for inst in instances:
                breakers[id(inst)].turned_away()
            raise _CallFailedError(RequestOutcome.CIRCUIT_OPEN, CircuitOpenError(
                service, f"the circuit breakers of all {len(instances)} instances are open"))
        return self._picker.order(service, candidates), breakers

    def _out_of_budget(self, service: str, started: float, tried: _Tried) -> Response:
        """The retry budget has no retry left: the call ends with what it has."""
        self._reporter.retry_budget_exhausted(service)
        return self._finished(service, started, tried.last(service))

    def _balancer(self, name: str) -> Picker:
        """The picker ``config.load_balancer`` names."""
        if name == "random":
            return RandomPicker(self._rng)
        if name == "least_outstanding":
            board = self.breakers
            return LeastOutstandingPicker(
                lambda service, inst: board.get(service, inst.address).outstanding, self._rng)
        return RoundRobinPicker()

    def _finished(self, service: str, started: float, response: Response) -> Response:
        self._reporter.request_finished(service, _SUCCESS if response.status < 500 else _FAILURE,
                                        self._clock.monotonic() - started)
        return response

    # The verbs return :meth:`request`'s coroutine (await it) rather than awaiting it in a coroutine of
    # their own: one coroutine less to create, and to pass through at every resumption of a call.

    def get(self, service: str, path: str, **kwargs: Any) -> Coroutine[Any, Any, Response]:
        return self.request("GET", service, path, **kwargs)

    def head(self, service: str, path: str, **kwargs: Any) -> Coroutine[Any, Any, Response]:
        return self.request("HEAD", service, path, **kwargs)

    def post(self, service: str, path: str, **kwargs: Any) -> Coroutine[Any, Any, Response]:
        return self.request("POST", service, path, **kwargs)

    def put(self, service: str, path: str, **kwargs: Any) -> Coroutine[Any, Any, Response]:
        return self.request("PUT", service, path, **kwargs)

    def patch(self, service: str, path: str, **kwargs: Any) -> Coroutine[Any, Any, Response]:
        return self.request("PATCH", service, path, **kwargs)

    def delete(self, service: str, path: str, **kwargs: Any) -> Coroutine[Any, Any, Response]:
        return self.request("DELETE", service, path, **kwargs)

    async def _discover(self, service: str, found: tuple[ServiceInstance, ...] | Awaitable[Sequence[ServiceInstance]],
                        ) -> Sequence[ServiceInstance]:
        """The UP instances of ``service`` that discovery ``found``, never empty (else the call fails with
        ``NO_INSTANCES``)."""
        try:
            instances = found if isinstance(found, tuple) else await found
        except RegistryUnavailableError as exc:
            raise _CallFailedError(RequestOutcome.NO_INSTANCES, ServiceUnavailableError(
                service, "the registry cannot be reached and nothing is cached", exc)) from exc
        if not instances:
            self.breakers.lineup(service, ())  # the instances known before are gone
            raise _CallFailedError(RequestOutcome.NO_INSTANCES,
                                   ServiceUnavailableError(service, "no UP instance is registered"))
        return instances

    async def close(self) -> None:
        """Close the HTTP session (and the manager, when this client made it)."""
        await self._transport.aclose()
        if self._owns_manager:
            await self.manager.close()

    async def __aenter__(self) -> ResilientClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"ResilientClient(manager={self.manager!r}, picker={self._picker!r})"
