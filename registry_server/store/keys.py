"""The Redis key layout. Keys of one service share the hash tag ``{name}``: one Cluster slot per service,
so every script stays inside one slot; the few keys that span services are touched on their own.

``<p>:{name}:inst:<id>``    hash: doc (JSON), status, reg, hb, exp (ms), tok (lease token hash); once
                            checked: hs (health status), hat (checked at, ms), hout (output), hf (failures
                            in a row); while critical: rep (the status it reported), hcs (critical since)
``<p>:{name}:leases``       sorted set, id scored by lease expiry (ms)
``<p>:{name}:rev``          integer revision, moved by every change of membership or status
``<p>:{name}:counts``       hash, status -> instance count
``<p>:{name}:events``       stream of the service's change events (bounded)
``<p>:{name}:retired``      the last revision of a dropped service, for as long as the retention
``<p>:{name}:idle``         ms when the service was set aside without instances (see ``<p>:idle``)
``<p>:revision_floor``      integer, the highest revision of any dropped service
``<p>:id:{<id>}``           string, the service that owns the instance id (409 and lookups by id)
``<p>:services``            set of the names of services that may have instances: what every sweep and
                            listing visits
``<p>:idle``                sorted set, the names of services without instances, scored by when they were
                            set aside (ms): found by the time they became idle, never visited one by one
``<p>:health:due``          sorted set, ``<name>/<id>`` scored by when its next health check is due (ms)
``<p>:epoch``               ms when this store's history began (a wiped store starts a new one)
``<p>:fleet``               ms when a replica last swept: the fleet's liveness mark
``<p>:changes``             pub/sub channel on which every change is announced
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KeyLayout:
    prefix: str = "reg"

    def owner(self, instance_id: str) -> str:
        return f"{self.prefix}:id:{{{instance_id}}}"

    @property
    def services(self) -> str:
        return f"{self.prefix}:services"

    @property
    def idle(self) -> str:
        return f"{self.prefix}:idle"

    @property
    def epoch(self) -> str:
        return f"{self.prefix}:epoch"

    @property
    def health_due(self) -> str:
        return f"{self.prefix}:health:due"

    @property
    def fleet(self) -> str:
        return f"{self.prefix}:fleet"

    @property
    def channel(self) -> str:
        return f"{self.prefix}:changes"

    def instance_prefix(self, name: str) -> str:
        return f"{self.prefix}:{{{name}}}:inst:"

    def instance(self, name: str, instance_id: str) -> str:
        return self.instance_prefix(name) + instance_id

    def leases(self, name: str) -> str:
        return f"{self.prefix}:{{{name}}}:leases"

    def revision(self, name: str) -> str:
        return f"{self.prefix}:{{{name}}}:rev"

    def counts(self, name: str) -> str:
        return f"{self.prefix}:{{{name}}}:counts"

    def events(self, name: str) -> str:
        return f"{self.prefix}:{{{name}}}:events"

    def retired(self, name: str) -> str:
        return f"{self.prefix}:{{{name}}}:retired"

    def idle_mark(self, name: str) -> str:
        return f"{self.prefix}:{{{name}}}:idle"

    @property
    def revision_floor(self) -> str:
        return f"{self.prefix}:revision_floor"
