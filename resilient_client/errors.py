"""The exceptions of ``resilient_client``; aiohttp errors are translated at the edge (``raise ... from``).

::

    ResilientClientError
    ├── ServiceUnavailableError      no instance of a service gave an HTTP response
    │   └── CircuitOpenError         ... because every instance's breaker is open (no I/O was done)
    ├── RegistryUnavailableError     no registry replica could be reached (or each answered 5xx)
    ├── RegistryRequestError         the registry refused a request (4xx other than 404 where it matters)
    └── TransportError               one attempt on one instance failed below HTTP
        ├── ConnectError             the connection was never made: nothing was sent
        ├── AttemptTimeoutError      the attempt's timeout ran out (``sent`` says if it may have been sent)
        ├── ConnectionLostError      the connection broke after the request may have been sent
        └── BreakerRejectedError     the instance's breaker turned the attempt away: nothing was sent
"""

from __future__ import annotations

from collections.abc import Mapping


class ResilientClientError(Exception):
    """Root of every exception this package raises on purpose."""


class ServiceUnavailableError(ResilientClientError):
    """No instance of ``service`` gave an HTTP response; ``last_error`` says what happened last."""

    def __init__(self, service: str, reason: str, last_error: BaseException | None = None) -> None:
        self.service = service
        self.reason = reason
        self.last_error = last_error
        detail = f": {type(last_error).__name__}: {last_error}" if last_error is not None else ""
        super().__init__(f"service {service!r} unavailable: {reason}{detail}")


class CircuitOpenError(ServiceUnavailableError):
    """Every instance of the service has an open circuit breaker; the call did no network I/O."""


class RegistryUnavailableError(ResilientClientError):
    """No registry replica answered (connection error, timeout or a 5xx from each of them).

    ``retry_after_s``: the longest ``Retry-After`` a replica sent with its 5xx (e.g. ``503
    too_many_watchers``), else ``None``.
    """

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RegistryRequestError(ResilientClientError):
    """The registry answered with an error the client cannot fix by retrying (400, 401, 403, 409, 422), or
    with a redirect, which registry calls never follow (credentials stay with the registry's origin).

    ``details``: the registry's validation details, one ``{"field", "message", "type"}`` per invalid field
    of a 422 (empty otherwise).
    """

    def __init__(self, status: int, code: str, message: str,
                 details: tuple[Mapping[str, str], ...] = ()) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        fields = "; ".join(f"{d.get('field', '?')}: {d.get('message', '')}" for d in details)
        super().__init__(f"registry answered {status} {code}: {message}" + (f" ({fields})" if fields else ""))


class TransportError(ResilientClientError):
    """One attempt on one instance failed below HTTP. ``sent`` is ``False`` only when nothing left."""

    sent: bool = True

    def __init__(self, message: str, *, sent: bool | None = None) -> None:
        super().__init__(message)
        if sent is not None:
            self.sent = sent


class ConnectError(TransportError):
    """The connection could not be made (refused, unreachable, DNS): the request was never sent."""

    sent = False


class AttemptTimeoutError(TransportError):
    """The attempt ran out of time."""


class ConnectionLostError(TransportError):
    """The connection broke while the request was sent or the answer read."""


class BreakerRejectedError(TransportError):
    """The instance's circuit breaker is open (or its half-open probes are all taken): nothing was sent."""

    sent = False
