"""The change hub's fan-out: every announced change wakes its service's listeners; the whole event (its
instance parsed) is built only when a change stream of that service, or of all, takes it."""

from __future__ import annotations

from registry_server.change_hub import ChangeHub
from registry_server.model import ChangeEvent, ChangeNotice, EventType, Instance, InstanceStatus
from registry_server.store.memory import MemoryStore


def event(service: str) -> ChangeEvent:
    inst = Instance(id="i-1", name=service, host="h", port=1, scheme="http", health_endpoint="/health",
                    version="", description="", status=InstanceStatus.UP, metadata={}, registered_at_ms=1,
                    last_heartbeat_ms=1, expires_at_ms=2)
    return ChangeEvent("1-0/" + service, EventType.EXPIRED, service, 3, inst)


class Counted:
    """A notice source that counts how often the event behind it was built."""

    def __init__(self) -> None:
        self.built = 0

    def notice(self, service: str) -> ChangeNotice:
        def build() -> ChangeEvent:
            self.built += 1
            return event(service)
        return ChangeNotice(service, build)


async def test_a_change_nobody_streams_wakes_its_listeners_without_building_the_event() -> None:
    heard: list[str | None] = []
    hub = ChangeHub(MemoryStore(), max_watchers=10, on_change=heard.append)
    other = hub.subscribe("Other")
    counted = Counted()
    hub.dispatch(counted.notice("Auth"))
    assert heard == ["Auth"]
    assert counted.built == 0, "no subscriber of Auth: the instance is never parsed"
    assert other.queue.empty()


async def test_the_event_is_built_once_however_many_stream_it() -> None:
    hub = ChangeHub(MemoryStore(), max_watchers=10)
    auth, everything, other = hub.subscribe("Auth"), hub.subscribe(None), hub.subscribe("Other")
    counted = Counted()
    hub.dispatch(counted.notice("Auth"))
    assert counted.built == 1
    first, second = auth.queue.get_nowait(), everything.queue.get_nowait()
    assert isinstance(first, ChangeEvent)
    assert first is second
    assert (first.service, first.type, first.instance.id) == ("Auth", EventType.EXPIRED, "i-1")
    assert other.queue.empty()


def test_a_notice_of_a_ready_event_hands_back_that_event() -> None:
    ready = event("Auth")
    notice = ChangeNotice.of(ready)
    assert (notice.service, notice.event) == ("Auth", ready)
