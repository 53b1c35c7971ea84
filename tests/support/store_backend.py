"""Where a test's registry keeps its data, as the ``store_backend`` fixture hands it out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from registry_server.store.base import InstanceStore

StoreFactory = Callable[[], InstanceStore]
"""Makes stores that share one backing state: several stand for several replicas on one store."""


@dataclass(frozen=True)
class StoreBackend:
    """A Redis of the test's own, or the session's (flushed) Cluster."""

    kind: str
    url: str
    flushall: Callable[[], None]
