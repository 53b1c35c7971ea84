"""The Redis key layout. Keys of one service share the hash tag ``{name}``: one Cluster slot per service.

``<p>:ids``                 hash, instance id -> service name (ownership, for 409 and lookups by id)
``<p>:services``            hash, service name -> instance count (the index of services)
``<p>:events``              stream of change events (bounded; ids are the change stream's event ids)
``<p>:{name}:inst:<id>``    hash: doc (JSON), status, reg, hb, exp (ms), tok (lease token)
``<p>:{name}:leases``       sorted set, id scored by lease expiry (ms)
``<p>:{name}:rev``          integer revision, moved by every change of membership or status
``<p>:{name}:counts``       hash, status -> instance count
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KeyLayout:
    prefix: str = "reg"

    @property
    def ids(self) -> str:
        return f"{self.prefix}:ids"

    @property
    def services(self) -> str:
        return f"{self.prefix}:services"

    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

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
