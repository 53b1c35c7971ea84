"""The protocol every instance store implements, with the semantics both stores share.

Semantics (pinned by ``tests/registry_server/test_store_contract.py`` against both stores):
- Time is an argument (``now_ms``); a lease is live while ``now_ms < expires_at_ms``. Reads never return
  an instance whose lease ran out, even before :meth:`InstanceStore.expire` removed it.
- ``register`` of a new id creates (revision +1); of an id live under the same name updates the fields and
  renews the lease (revision +1 only if a field or the status changed); of an id owned by another name
  raises :class:`~registry_server.errors.InstanceConflictError`. An id whose lease ran out unswept is
  replaced by a new registration and reported as ``replaced_expired``.
- ``register`` (of a live id), ``heartbeat`` and ``deregister`` take ``lease_token_hash``: the SHA-256 of
  the lease token the caller presented (``""``: none), or ``None`` for a caller trusted without one (the
  admin). A live instance whose stored hash differs raises
  :class:`~registry_server.errors.LeaseTokenError`; unknown or expired ids are answered as such first.
- ``heartbeat`` renews a live lease and may change the status (revision +1 on a status change only,
  which the :class:`Renewal` reports); ``None`` for an unknown or expired id.
- ``deregister`` removes a live instance (revision +1); ``None`` for an unknown or expired id.
- ``expire`` removes instances whose lease ran out and returns each one to exactly one caller, however
  many registry replicas sweep the same store.
- ``record_health`` records one check of a live instance: ``failures`` failed checks in a row make it
  critical (its status DOWN, revision +1 and an event, also when it showed DOWN already), a passing check
  restores the status it last reported itself (revision +1);
  while critical, its own heartbeats and registrations change only that reported status. Critical for
  ``deregister_after_ms`` (> 0), it is removed (``deregistered``). A registration that changes the
  document starts its checks afresh (``unchecked``).
- Health checks are scheduled in the store, shared by every replica: ``claim_health_checks`` hands each
  due check to exactly one caller and holds it for ``hold_ms``; the claimer reschedules it when done (with
  its next claim), and a claim whose replica died falls due again when the hold ends.
- Revisions of a service never go backwards, also when its last instance leaves, and also when the
  service is dropped (:meth:`InstanceStore.drop_idle`) and comes back: a service (re)created, or read
  while unknown, starts above every dropped service's last revision.
- Every change that moves a revision appends one :class:`ChangeEvent` per instance to a bounded,
  ordered event history shared by every replica (``registered``, ``updated``, ``status_changed``,
  ``deregistered``, ``expired``) and announces it to every replica's ``changes()``, in the same atomic
  step as the change.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from registry_server.model import (
    ChangeEvent,
    ChangeNotice,
    Expired,
    HealthRecord,
    Instance,
    InstanceRegistration,
    InstanceStatus,
    RegisterResult,
    Renewal,
    ServiceSnapshot,
    ServiceSummary,
)


class InstanceStore(Protocol):
    kind: str
    """``"redis"`` or ``"memory"``, reported by ``/healthz``."""

    async def register(self, registration: InstanceRegistration, now_ms: int, ttl_ms: int, *,
                       lease_token_hash: str | None = None) -> RegisterResult: ...

    async def heartbeat(self, instance_id: str, status: InstanceStatus | None, now_ms: int, ttl_ms: int, *,
                        lease_token_hash: str | None = None) -> Renewal | None: ...

    async def deregister(self, instance_id: str, now_ms: int, *,
                         lease_token_hash: str | None = None) -> Instance | None: ...

    async def get(self, instance_id: str, now_ms: int) -> Instance | None: ...

    async def get_many(self, instances: Sequence[tuple[str, str]], now_ms: int) -> list[Instance | None]:
        """Each live instance of (service, instance id), in one round trip (``None``: no such live instance
        of that service)."""
        ...

    async def service(self, name: str, now_ms: int) -> ServiceSnapshot: ...

    async def all_instances(self, now_ms: int) -> list[Instance]: ...

    async def services(self, now_ms: int) -> list[ServiceSummary]: ...

    async def expire(self, now_ms: int, limit: int) -> list[Expired]:
        """Remove up to ``limit`` instances per service whose lease ran out; return those removed here.

        Also sets :attr:`next_expiry_ms`."""
        ...

    @property
    def undecodable_documents(self) -> int:
        """Instances and events skipped so far because their stored document could not be decoded (see
        :mod:`registry_server.store.documents`)."""
        ...

    next_expiry_ms: int | None
    """When the earliest lease left by the last :meth:`expire` ends (``None``: none left, or not known,
    e.g. that sweep stopped part-way): the sweeper's next sweep need not wait longer than that."""

    async def revision(self, name: str) -> int: ...

    async def record_health(self, name: str, instance_id: str, passed: bool, output: str, now_ms: int, *,
                            failures: int, deregister_after_ms: int) -> HealthRecord | None:
        """Record one check of a live instance of ``name`` (``None``: no such live instance)."""
        ...

    async def schedule_health_check(self, name: str, instance_id: str, due_ms: int) -> None:
        """Check the instance from ``due_ms`` on, unless it is scheduled already."""
        ...

    async def reschedule_health_check(self, name: str, instance_id: str, due_ms: int) -> None:
        """Its next check is due at ``due_ms`` (if it is still scheduled)."""
        ...

    async def unschedule_health_check(self, name: str, instance_id: str) -> None: ...

    async def claim_health_checks(self, now_ms: int, hold_ms: int, limit: int, *,
                                  done: Sequence[tuple[str, str, int]] = ()) -> list[tuple[str, str]]:
        """Up to ``limit`` checks due by ``now_ms``, as (service, instance id), each handed to this caller
        alone and held for ``hold_ms``; first, in the same step, the checks ``done`` since the last claim,
        as (service, instance id, next due ms), are rescheduled (those still scheduled)."""
        ...

    async def drop_idle(self, now_ms: int, retention_ms: int) -> list[str]:
        """Drop every service that has had no instance for ``retention_ms``: its revision, counts, event
        history and index entry. Returns the names dropped here (each by exactly one replica).

        Services without instances are indexed by when they became empty: neither this nor
        :meth:`expire`, :meth:`services` or :meth:`all_instances` visits those not due."""
        ...

    async def extend_leases(self, since_ms: int, until_ms: int, *, heard_since_ms: int | None = None) -> int:
        """Give every lease that expires after ``since_ms`` at least until ``until_ms`` (after an outage).
        ``heard_since_ms``: only leases whose owner's last heartbeat (or registration) is no older.

        Idempotent; returns how many leases were extended.
        """
        ...

    async def mark_alive(self, now_ms: int, gap_ms: int) -> int | None:
        """Move the fleet's liveness mark to ``now_ms``; the mark it replaced when that was older than
        ``gap_ms`` (no replica served in between), else ``None`` (fresh, or no mark yet).

        Compare and set in one step: of replicas calling together, only one gets the stale mark.
        """
        ...

    async def last_event_id(self) -> str:
        """The id of the newest event (``"0-0"`` when there is none)."""
        ...

    async def read_events(self, after: str, *, count: int = 500) -> list[ChangeEvent]:
        """Up to ``count`` held events after ``after``, in order (for a change stream's replay)."""
        ...

    def changes(self) -> AsyncIterator[ChangeNotice | None]:
        """Every change from now on, as it happens, made through any replica.

        Yields ``None`` first, once subscribed: every change after that point is delivered, live and at
        most once. After a :class:`~registry_server.errors.StoreError` ends the iteration, changes made
        until the next ``None`` may be missed: a consumer re-reads what it needs (``history_complete``,
        ``read_events``, revisions).
        """
        ...

    async def history_complete(self, after: str) -> bool:
        """Whether every event after ``after`` is still held (none trimmed, the history not reset)."""
        ...

    async def ping(self) -> None:
        """Raise :class:`~registry_server.errors.StoreUnavailableError` unless the store answers."""
        ...

    async def close(self) -> None: ...
