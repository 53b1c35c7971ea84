"""Discovery with blocking queries and ETags, and the change stream (Server-Sent Events)."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator

import pydantic_core
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from registry_server.api.access import Access, Role, presented
from registry_server.api.errors import ApiError
from registry_server.api.middleware import watching
from registry_server.api.query import blocking_index, filtered, service_name, status_filter, wait_seconds
from registry_server.api.rendered import Rendered, RenderedAnswers
from registry_server.api.replay_positions import PositionsBudget, ReplayPositions
from registry_server.change_hub import CLOSED, GAP, OVERFLOW, ChangeHub, Subscription, WatchLimitError
from registry_server.errors import StoreError
from registry_server.metrics import RegistryMetrics
from registry_server.model import ChangeEvent, event_id_order
from registry_server.registry import Registry

_REPLAY_BATCH = 500


class _ReplayTooWideError(Exception):
    """A replay spans more services than the stream may keep positions for."""


def _too_many(exc: WatchLimitError) -> ApiError:
    return ApiError(503, "too_many_watchers", str(exc), headers={"Retry-After": str(random.randint(1, 5))})


async def _disconnected(request: Request) -> None:
    """Return once the client has gone (a GET has no body left to read: the next message is the end)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _etag(revision: int, statuses: set[str] | None, version: str | None) -> str:
    # Weak: the representation's timestamps move with heartbeats; membership and status do not.
    query = hashlib.blake2s(f"{sorted(statuses or [])}|{version}".encode(), digest_size=4).hexdigest()
    return f'W/"{revision}-{query}"'


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = {tag.strip() for tag in header.split(",")}
    return "*" in tags or etag in tags or etag.removeprefix("W/") in tags


class WatchApi:
    def __init__(self, registry: Registry, hub: ChangeHub, metrics: RegistryMetrics, access: Access,
                 rendered: RenderedAnswers, positions: PositionsBudget) -> None:
        """``rendered`` must hear of every change (``create_app`` has the registry and the hub tell it).
        ``positions``: what the change streams' replays may hold (see :mod:`.replay_positions`)."""
        self.registry = registry
        self.hub = hub
        self.metrics = metrics
        self.access = access
        self.rendered = rendered
        self.positions = positions

    def routes(self) -> list[Route]:
        return [Route("/services/{name}", self.discover, methods=["GET"]),
                Route("/events", self.events, methods=["GET"])]

    async def discover(self, request: Request) -> Response:
        self.access.authorize(presented(request), Role.READ)
        name = service_name(request.path_params["name"])
        statuses = status_filter(request)
        version = request.query_params.get("version")
        index = blocking_index(request)
        wait = wait_seconds(request)
        if index is not None:
            watching(request.scope, "blocking")
            wait += random.uniform(0, wait / 16)  # so that watchers do not wake in step
            try:
                async with self.hub.slot("blocking"):
                    changed = await self._wait_unless_gone(request, name, index, wait)
            except WatchLimitError as exc:
                raise _too_many(exc) from None
            if changed is None:
                return Response(status_code=499)  # the client left: nobody reads this, the slot is free
            if changed:
                self.metrics.watch_wakeups.inc()
        query = (frozenset(statuses) if statuses is not None else None, version)
        now = self.registry.clock.now_ms()
        answer = self.rendered.get(name, query, now)
        if answer is not None and index is not None and answer.revision == index:
            answer = None  # a watcher woken by a change not yet announced here: read it from the store
        if answer is None:
            view = await self.registry.service(name)
            etag = _etag(view.revision, statuses, version)
            body = pydantic_core.to_json({"name": name, "instances": filtered(view.instances, statuses, version)})
            answer = Rendered(view.revision, etag, body, 0)
            self.rendered.put(name, query, body, view.revision, etag, view.instances, now)
        headers = {"X-Registry-Index": str(answer.revision), "ETag": answer.etag, "Cache-Control": "no-cache"}
        if _etag_matches(request.headers.get("if-none-match"), answer.etag):
            return Response(status_code=304, headers=headers)
        return Response(answer.body, media_type="application/json", headers=headers)

    async def _wait_unless_gone(self, request: Request, name: str, index: int, wait: float) -> bool | None:
        """Whether the service changed within ``wait``; ``None`` when the client disconnected first."""
        waiting = asyncio.ensure_future(self.hub.wait_for_change(name, index, wait))
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiting, gone):
                task.cancel()
        if waiting.done() and not waiting.cancelled():
            return waiting.result()
        return None

    async def events(self, request: Request) -> Response:
        self.access.authorize(presented(request), Role.READ)
        watching(request.scope, "stream")
        raw_service = request.query_params.get("service")
        service = service_name(raw_service, "service") if raw_service else None
        last_id = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
        try:
            self.hub.check_capacity()
        except WatchLimitError as exc:
            raise _too_many(exc) from None
        return EventSourceResponse(self._stream(service, last_id), ping=15,
                                   headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    def _event(self, event: ChangeEvent) -> ServerSentEvent:
        self.metrics.events_sent.labels(event.type.value).inc()
        return ServerSentEvent(data=pydantic_core.to_json(event.to_json()).decode(), event=event.type.value,
                               id=event.id)

    @staticmethod
    def _reset(reason: str) -> ServerSentEvent:
        return ServerSentEvent(data=pydantic_core.to_json({"reason": reason}).decode(), event="reset")

    async def _stream(self, service: str | None, last_id: str | None) -> AsyncIterator[ServerSentEvent]:
        async with self.hub.slot("stream", checked=True):
            sub = self.hub.subscribe(service)  # live events queue up from here on, before any replay
            try:
                async for event in self._events(sub, service, last_id):
                    yield event
            except StoreError as exc:
                yield self._reset(f"the instance store failed ({exc}); reconnect with Last-Event-ID")
            finally:
                self.hub.unsubscribe(sub)

    async def _replay(self, service: str | None, after: str) -> AsyncIterator[ChangeEvent]:
        """The held events after ``after`` (of ``service`` only, if given), in order."""
        while True:
            batch = await self.registry.store.read_events(after, count=_REPLAY_BATCH)
            for event in batch:
                if service is None or event.service == service:
                    yield event
            if batch:
                after = batch[-1].id
            if len(batch) < _REPLAY_BATCH:
                return

    async def _events(self, sub: Subscription, service: str | None,
                      last_id: str | None) -> AsyncIterator[ServerSentEvent]:
        store = self.registry.store
        sent = last_id or await store.last_event_id()
        replayed = ReplayPositions(self.positions)

        def note(event: ChangeEvent) -> None:
            nonlocal sent
            sent = max(sent, event.id, key=event_id_order)

        async def replay(after: str) -> AsyncIterator[ServerSentEvent]:
            async for event in self._replay(service, after):
                if not replayed.record(event):
                    raise _ReplayTooWideError
                note(event)
                yield self._event(event)

        try:
            if last_id is not None:
                if await store.history_complete(last_id):
                    async for replayed_event in replay(last_id):  # what the consumer missed
                        yield replayed_event
                else:
                    sent = await store.last_event_id()
                    yield self._reset("events after Last-Event-ID are no longer held; re-read /services")
            yield ServerSentEvent(data=pydantic_core.to_json({"last_event_id": sent}).decode(), event="ready",
                                  id=sent)
            while True:
                item = await sub.get()
                if item is CLOSED:
                    return
                if item is OVERFLOW:
                    yield self._reset("events were lost (consumer too slow); re-read /services")
                    return
                if item is GAP:
                    if not await store.history_complete(sent):
                        yield self._reset("events were lost while the store was away; re-read /services")
                        return
                    async for replayed_event in replay(sent):
                        yield replayed_event
                    continue
                assert isinstance(item, ChangeEvent)
                if replayed.live(item):
                    note(item)
                    yield self._event(item)
        except _ReplayTooWideError:
            yield self._reset("the events missed span too many services to replay; re-read /services")
        finally:
            replayed.clear()
