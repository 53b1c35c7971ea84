"""``BreakerBoard``: the instance breakers of one client, kept while discovery lists their instances."""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from resilient_client._breaker import InstanceBreaker
from resilient_client._clock import Clock
from resilient_client._report import Reporter
from resilient_client.config import BreakerConfig
from resilient_client.hooks import BreakerState

if TYPE_CHECKING:
    from resilient_client.model import ServiceInstance


class BreakerBoard:
    """Every instance breaker of one client, kept per ``(service, host:port)`` while discovery lists it.

    :meth:`lineup` gives a call the breakers of the instances it was handed, and drops (retires) the
    breaker of every instance of that service that discovery no longer lists, so a deregistered or
    expired instance leaves no breaker and no state gauge series behind. :meth:`admitting` says which of
    them a call may try.
    """

    def __init__(self, config: BreakerConfig, reporter: Reporter, clock: Clock) -> None:
        self._config = config
        self._reporter = reporter
        self._clock = clock
        self._breakers: dict[tuple[str, str], InstanceBreaker] = {}
        self._lineups: dict[str, tuple[tuple[ServiceInstance, ...], dict[int, InstanceBreaker]]] = {}
        self._unclosed: dict[str, set[InstanceBreaker]] = {}
        """Per service, its breakers on this board that are not closed (no entry: all closed)."""

    def get(self, service: str, instance: str) -> InstanceBreaker:
        key = (service, instance)
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = self._breakers[key] = InstanceBreaker(service, instance, self._config, self._reporter,
                                                            self._clock, on_state=self._state_changed)
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
                self._forget(breaker)
                breaker.retire()
        gates = {id(inst): self.get(service, inst.address) for inst in instances}
        self._lineups[service] = (tuple(instances), gates)  # (a tuple is kept as it is)
        return gates

    def admitting(self, service: str, instances: Sequence[ServiceInstance],
                  gates: dict[int, InstanceBreaker]) -> Sequence[ServiceInstance]:
        """Those of ``instances`` (with their ``gates``, from :meth:`lineup`) whose breaker would admit a call
        now: ``instances`` itself while every breaker of ``service`` is closed (the common case, no loop)."""
        if service not in self._unclosed:
            return instances
        return [inst for inst in instances if gates[id(inst)].available()]

    def _state_changed(self, breaker: InstanceBreaker, state: BreakerState) -> None:
        if state is not BreakerState.CLOSED:
            self._unclosed.setdefault(breaker.service, set()).add(breaker)
        else:
            self._forget(breaker)

    def _forget(self, breaker: InstanceBreaker) -> None:
        unclosed = self._unclosed.get(breaker.service)
        if unclosed is not None:
            unclosed.discard(breaker)
            if not unclosed:
                del self._unclosed[breaker.service]

    def __len__(self) -> int:
        return len(self._breakers)

    def __iter__(self) -> Iterator[InstanceBreaker]:
        return iter(tuple(self._breakers.values()))

    def __repr__(self) -> str:
        return f"BreakerBoard(breakers={len(self._breakers)})"
