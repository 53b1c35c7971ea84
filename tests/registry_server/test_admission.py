"""Admission: beyond the in-flight limit a write is refused at once with 503 + Retry-After; once the replica
has been saturated every heartbeat is served with Retry-After (paced), the instances heard over what a
saturated second served; a heartbeat told to come back later has its lease cover the delay."""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import random
import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from registry_server.api.admission import (
    _POINTS,
    COLLECTING_STALL_S,
    GROWS_FROM,
    GROWTH,
    LATE_TICKS,
    QUIET_S,
    RECENT,
    TARGET_LAG_S,
    TICK_S,
    UTILISATION,
    Admission,
)
from registry_server.api.cross_origin import CrossOrigin
from registry_server.api.middleware import FrontLayer, watching
from registry_server.api.refused_heartbeats import MAX_PENDING_BYTES
from registry_server.app import create_app
from registry_server.metrics import RegistryMetrics
from registry_server.model import InstanceStatus, Renewal
from registry_server.registry import Registry
from registry_server.settings import Settings
from registry_server.store.memory import MemoryStore
from tests.support.clock import FakeClock

TTL_S = 10


class HeldStore(MemoryStore):
    """A memory store whose heartbeats (of ``held`` only, if given) wait until released: a request in flight
    for as long as a test needs."""

    def __init__(self, held: str | None = None, clock: FakeClock | None = None) -> None:
        super().__init__()
        self.held = held
        self.clock = clock
        """Renew as of the release (as a store does what it is sent when it gets to it), not of the call."""
        self.release = asyncio.Event()
        self.waiting = 0

    async def heartbeat(self, instance_id: str, status: InstanceStatus | None, now_ms: int, ttl_ms: int, *,
                        lease_token_hash: str | None = None) -> Renewal | None:
        if self.held is None or instance_id == self.held:
            self.waiting += 1
            await self.release.wait()
            now_ms = self.clock.now_ms() if self.clock is not None else now_ms
        return await super().heartbeat(instance_id, status, now_ms, ttl_ms, lease_token_hash=lease_token_hash)


async def until(condition: object, deadline_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not condition():  # type: ignore[operator]
        assert loop.time() < end, "condition not reached before the deadline"
        await asyncio.sleep(0)


async def test_a_write_beyond_the_limit_is_refused_at_once_reads_and_health_still_served() -> None:
    store, clock, metrics = HeldStore(), FakeClock(), CollectorRegistry()
    app = create_app(Settings(instance_ttl_s=TTL_S, max_in_flight=1), store=store, clock=clock,
                     metrics_registry=metrics)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as http:
        created = await http.post("/instances", json={"name": "Auth", "host": "h", "port": 1, "id": "a"})
        assert created.status_code == 201
        lease = {"x-lease-token": created.json()["lease_token"]}
        held = asyncio.create_task(http.put("/instances/a/heartbeat", headers=lease))
        await until(lambda: store.waiting == 1)
        refused = await http.put("/instances/a/heartbeat", headers=lease)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] in ("1", "2"), "one second, jittered, while few are refused"
        assert refused.json()["error"]["code"] == "overloaded"
        again = await http.post("/instances", json={"name": "Auth", "host": "h", "port": 2, "id": "b"})
        assert again.status_code == 503, "registrations are writes too"
        assert (await http.get("/services/Auth")).status_code == 200, "reads have twice the limit"
        health = await http.get("/healthz")
        assert health.status_code == 200 and health.json()["shedding"] is True and health.json()["holding"] is True
        assert metrics.get_sample_value("registry_requests_shed_total") == 2
        store.release.set()
        assert (await held).status_code == 200


async def test_no_live_lease_runs_out_in_an_overload_and_a_silent_instance_expires_a_ttl_after_it() -> None:
    clock, metrics = FakeClock(), CollectorRegistry()
    store = HeldStore(held="holder", clock=clock)
    app = create_app(Settings(instance_ttl_s=TTL_S, max_in_flight=1), store=store, clock=clock,
                     metrics_registry=metrics)
    registry: Registry = app.state.registry
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as http:
        tokens = {}
        for port, iid in enumerate(("alive", "dead", "holder"), start=1):
            created = await http.post("/instances", json={"name": "Auth", "host": "h", "port": port, "id": iid})
            assert created.status_code == 201
            tokens[iid] = created.json()["lease_token"]
        held = asyncio.create_task(http.put("/instances/holder/heartbeat", headers={"x-lease-token": tokens["holder"]}))
        await until(lambda: store.waiting == 1)  # the one write the registry can serve at a time: the overload
        refused_heartbeats = app.state.refused_heartbeats
        delay_s = 0
        for _ in range(3 * TTL_S):  # thirty seconds: alive is refused every second, dead is silent
            renewed = refused_heartbeats.renewed
            refused = await http.put("/instances/alive/heartbeat", headers={"x-lease-token": tokens["alive"]})
            assert refused.status_code == 503 and 1 <= int(refused.headers["retry-after"]) <= 2 * TTL_S
            delay_s = int(refused.headers["retry-after"])
            forged = await http.put("/instances/dead/heartbeat", headers={"x-lease-token": "not-its-token"})
            assert forged.status_code == 503, "refused before any check: its renewal checks the token"
            await until(lambda target=renewed + 1: refused_heartbeats.renewed == target)  # (not the forged one)
            clock.advance(1)
            assert await registry.sweep() == [], "nothing expires while the registry cannot hear every heartbeat"
        alive = await store.get("alive", clock.now_ms())
        assert alive is not None and alive.expires_at_ms >= clock.now_ms() + (delay_s - 2 + TTL_S) * 1000, \
            "the refused heartbeat's lease covers the delay it was given, plus a TTL"
        store.release.set()
        assert (await held).status_code == 200
        overload_ended = clock.now_ms()
        expired: list[str] = []
        beats = 0
        while not expired:  # dead (and holder, served once at last) never heartbeat again; alive comes back
            clock.advance(0.5)
            beats += 1
            if beats % (2 * delay_s) == 0:  # when it was told to, and on as it did before
                served = await http.put("/instances/alive/heartbeat", headers={"x-lease-token": tokens["alive"]})
                assert served.status_code == 200
            expired = [gone.id for gone in await registry.sweep()]
        assert sorted(expired) == ["dead", "holder"], "a TTL after the overload; alive heard when it came back"
        assert clock.now_ms() - overload_ended <= (1 + TTL_S + 0.5) * 1000, "quiet period + TTL + a sweep"
        renewed_beat = await http.put("/instances/alive/heartbeat", headers={"x-lease-token": tokens["alive"]})
        assert renewed_beat.status_code == 200, "no 404, no re-registration"
        assert (metrics.get_sample_value("registry_lease_extensions_total") or 0) > 0


def test_the_spacing_is_the_instances_heard_over_what_a_saturated_second_served() -> None:
    admission = _admission()
    for n in range(3000):  # a fleet heard, in seconds the replica kept up with
        admission.heard(f"i-{n}")
    _second(admission, completed=500)
    assert admission.capacity_per_s is None and admission.spacing_s is None, "never saturated: nothing to pace"
    _second(admission, completed=1000, late_ticks=LATE_TICKS)
    assert admission.capacity_per_s == 1000
    assert admission.spacing_s == pytest.approx(3000 / (UTILISATION * 1000)), \
        "three instances for each request a second served: each told to wait a little over three seconds"
    _second(admission, completed=200, late_ticks=LATE_TICKS, collecting_s=0.6)  # a long collection in it
    assert admission.capacity_per_s == 1000, "a stall says nothing of the throughput"
    _second(admission, completed=950, late_ticks=1)  # busy: one late check, not saturated
    assert admission.capacity_per_s == 1000, "nothing learnt"
    _second(admission, completed=950)  # the loop never ran late: it could have served more
    assert admission.capacity_per_s == pytest.approx(1000 * GROWTH)
    assert admission.spacing_s == pytest.approx(3000 / (UTILISATION * 1000 * GROWTH))
    for _ in range(30):  # the fleet has not answered the shorter spacing yet: it sends far less than aimed at
        _second(admission, completed=GROWS_FROM * UTILISATION * 1000 * GROWTH - 1)
    assert admission.capacity_per_s == pytest.approx(1000 * GROWTH), \
        "the estimate grows only on seconds that served what the spacing aims at, not ahead of the fleet"


def test_the_estimate_moves_when_most_of_the_recent_seconds_say_so() -> None:
    """Each of the last few seconds votes: a saturated one for what it served, any other for the estimate it
    kept up under. What a saturated second serves varies (the machine, the mix of requests, the collector, a
    wave of the fleet): the best of several would space the fleet for more than the replica serves, a lone
    unlucky one for far less, and one from a while ago for what it served then."""
    admission = _admission()
    for n in range(3000):
        admission.heard(f"i-{n}")
    for served in (1000, 1400, 600):
        _second(admission, completed=served, late_ticks=LATE_TICKS)
    assert admission.capacity_per_s == 1000, "neither the lucky second nor the unlucky one"
    for _ in range(RECENT):  # busy seconds (one late check each): the replica kept up under the estimate
        _second(admission, completed=900, late_ticks=1)
    assert admission.capacity_per_s == 1000
    _second(admission, completed=500, late_ticks=LATE_TICKS)
    assert admission.capacity_per_s == 1000, "one saturated second among seconds that kept up moves nothing"
    for _ in range(RECENT // 2 - 2):
        _second(admission, completed=700, late_ticks=LATE_TICKS)
    assert admission.capacity_per_s == 1000, "three of eight"
    _second(admission, completed=700, late_ticks=LATE_TICKS)
    assert admission.capacity_per_s == 700, "half of the recent seconds saturated: what the replica serves now"
    _second(admission, completed=1500, late_ticks=LATE_TICKS)
    assert admission.capacity_per_s == 700, "a lucky second does not quicken the pace"
    _second(admission, completed=100, late_ticks=LATE_TICKS, collecting_s=COLLECTING_STALL_S + 0.01)
    assert admission.capacity_per_s == 700, "a stall is no measure of the throughput"


def test_each_second_of_control_is_logged_at_debug_once_there_is_an_estimate(
        caplog: pytest.LogCaptureFixture) -> None:
    admission = _admission()
    cpu = iter([10.0, 10.49])  # the process's CPU time at the end of each second
    admission._cpu_s = lambda: next(cpu)
    collecting = iter([3.0, 3.05])  # and its time in garbage collections
    admission._collecting_s = lambda: next(collecting)
    for n in range(3000):
        admission.heard(f"i-{n}")
    with caplog.at_level(logging.DEBUG, logger="registry_server.overload"):
        _second(admission, completed=500)
        assert not [r for r in caplog.records if r.levelno == logging.DEBUG], "no estimate yet: nothing to tell"
        admission._refused = 7
        _second(admission, completed=1000, late_ticks=LATE_TICKS)
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert line == (f"control: 1000 requests/s served, 7 writes refused, loop late at {LATE_TICKS} of 20 checks, "
                    f"0.49 cores used, 0.05 s collecting garbage; estimate 1000 requests/s, 3000 instances, "
                    f"spacing {3000 / (UTILISATION * 1000):.2f} s")


def test_the_spacing_ends_when_it_is_under_a_second_or_after_a_quiet_minute_of_light_load() -> None:
    admission = _admission()
    overloaded: list[bool] = []  # what the garbage collector is told
    admission._overloaded = overloaded.append
    for n in range(500):
        admission.heard(f"i-{n}")
    _second(admission, completed=400, late_ticks=LATE_TICKS)
    assert admission.spacing_s == pytest.approx(500 / (UTILISATION * 400))
    seconds = 0
    while admission.spacing_s is not None:
        _second(admission, completed=400)
        seconds += 1
    assert seconds == 1 + math.floor(math.log(500 / (UTILISATION * 400)) / math.log(GROWTH)), \
        "the estimate grows while the loop keeps up, until every instance may heartbeat every second"
    assert overloaded == [True, False], "the collector is told once when the spacing begins, once when it ends"

    for n in range(5000):
        admission.heard(f"j-{n}")
    _second(admission, completed=1000, late_ticks=LATE_TICKS)
    assert admission.spacing_s is not None
    assert admission.capacity_per_s is not None
    light = int(admission.capacity_per_s / 2) - 1
    for _ in range(int(QUIET_S) - 1):
        _second(admission, completed=light, late_ticks=1)  # the fleet's own pace is light now
    assert admission.spacing_s is not None
    _second(admission, completed=light, late_ticks=1)
    assert admission.spacing_s is None, "a minute without saturation at under half the throughput"
    assert overloaded == [True, False, True, False]


async def test_a_saturated_second_counts_what_it_served_not_what_it_refused() -> None:
    """A refusal costs a fraction of a served request: counting refusals, a replica refusing half of what
    it answers would space the fleet for twice what it serves, and go on refusing."""
    admission = _admission(max_in_flight=1)
    admission._ticking = True  # (the control is driven by hand below)
    for n in range(2000):
        admission.heard(f"i-{n}")
    write: Scope = {"type": "http", "method": "PUT", "path": "/instances/i-0/heartbeat", "headers": []}
    sent: list[object] = []

    async def send(message: object) -> None:
        sent.append(message)

    for _ in range(500):  # each served heartbeat beside one refused
        assert admission.admit(write)
        assert not admission.admit(write)
        await admission.refusal(write, send)
        admission.release(write)
    admission.second(1.0)
    assert admission.capacity_per_s == 500, "a second with refusals is saturated; it served 500"
    assert admission.spacing_s == pytest.approx(2000 / (UTILISATION * 500))


def test_a_lone_stall_starts_no_spacing_and_the_spacing_never_passes_the_longest_delay() -> None:
    admission = _admission()
    for n in range(100_000):
        admission.heard(f"i-{n}")
    _second(admission, completed=1000, late_ticks=LATE_TICKS - 1)
    assert admission.capacity_per_s is None and admission.spacing_s is None
    _second(admission, completed=1000, late_ticks=LATE_TICKS)
    assert admission.spacing_s == admission.max_retry_after_s == 20.0


def test_without_pacing_no_instance_is_remembered() -> None:
    admission = _admission(pace=False)
    for n in range(1000):
        admission.heard(f"i-{n}")
    assert admission.instances == 0, "nothing would ever forget them"


def test_delays_keep_the_spacing_on_average_in_whole_seconds_around_it() -> None:
    admission = _admission()
    assert admission._delay_s(None) in (1, 2), "without a spacing: a second, spread"
    admission.spacing_s = 3.3
    delays = [admission._delay_s(None) for _ in range(20_000)]
    assert set(delays) == {1, 2, 3, 4, 5}, "within half a spacing either way, in whole seconds"
    assert sum(delays) / len(delays) == pytest.approx(3.3, rel=0.02), "rounded at random: the mean is kept"


def test_instances_answered_together_come_back_spread_over_the_spacing_and_stay_spread() -> None:
    """5,000 instances answered in the same instant, each coming back when told (at a random point of the
    second after, as the client does): from the first spacing on, every second brings a spacing's share
    of them, and after the spacing changes, the new spacing's share. A delay drawn around the spacing
    would bring them back in waves (5,000 in the three seconds around the spacing, then almost none)."""
    admission, rng = _admission(), random.Random(7)
    now = 0.0
    admission._clock = lambda: now
    admission._space(5.0)
    returns = [(0.0, f"i-{n}") for n in range(5000)]
    arrivals: list[float] = []
    while returns[0][0] < 70.0:
        now, instance_id = heapq.heappop(returns)
        arrivals.append(now)
        if now >= 35.0 and admission.spacing_s == 5.0:
            admission._space(8.0)
        wait_s = admission.pace(instance_id)
        assert wait_s is not None
        heapq.heappush(returns, (now + wait_s + rng.random(), instance_id))
    per_second = [0] * 70
    for at in arrivals:
        per_second[int(at)] += 1
    assert all(850 <= n <= 1150 for n in per_second[8:35]), f"5,000 ÷ 5 s a second: {per_second[8:35]}"
    assert all(530 <= n <= 720 for n in per_second[48:70]), f"5,000 ÷ 8 s a second: {per_second[48:70]}"


def test_an_instance_comes_back_at_its_own_point_of_the_spacing_whenever_it_was_answered() -> None:
    admission = _admission()
    now = 100.0
    admission._clock = lambda: now
    admission._random = lambda: 0.0  # rounded down
    admission._space(10.0)
    point = (hash("a") % _POINTS) / _POINTS  # its point, as a share of the spacing
    told = admission.pace("a")
    assert told is not None and 5 <= told <= 15, "between half a spacing and one and a half"
    now += 3.0  # answered again, 3 s later: brought back to the same point
    assert (now + admission._delay_s("a")) % 10.0 == pytest.approx((100.0 + told) % 10.0, abs=1.0)
    now = 100.0 + 10.0 * (5 + point)  # at its point: the next one, a whole spacing away
    assert admission._delay_s("a") == 10


def _second(admission: Admission, *, completed: int, late_ticks: int = 0, collecting_s: float | None = None) -> None:
    """A second in which ``completed`` requests were answered, the loop running late at ``late_ticks`` checks
    (and ``collecting_s`` of it spent collecting garbage, if given)."""
    admission._completed = completed
    admission._late_ticks = late_ticks
    if collecting_s is not None:
        collected = admission._collecting_at + collecting_s
        admission._collecting_s = lambda: collected
    admission.second(1.0)


async def test_a_loop_behind_holds_the_leases() -> None:
    held: list[float] = []
    release = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/slow":
            await release.wait()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    admission = _admission(hold=lambda: held.append(time.monotonic()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_front(app, admission)),
                                 base_url="http://r") as http:
        assert (await http.put("/instances/a/heartbeat")).status_code == 204  # the control starts ticking
        slow = asyncio.create_task(http.get("/slow"))  # a request in flight: the loop has work queued
        await until(lambda: admission.in_flight == 1)
        busy_until = time.monotonic() + 4 * TARGET_LAG_S
        while time.monotonic() < busy_until:  # the fault: the loop kept busy, as a CPU-bound overload does
            pass
        await until(lambda: bool(held))
        assert admission._late_ticks == 1, "one late check, counted towards a saturated second"
        release.set()
        assert (await slow).status_code == 204


async def test_a_half_full_accept_queue_holds_the_leases_like_a_late_loop() -> None:
    held: list[float] = []
    fill = [0.0]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    admission = _admission(hold=lambda: held.append(time.monotonic()), accept_queue=lambda: fill[0])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_front(app, admission)),
                                 base_url="http://r") as http:
        assert (await http.put("/instances/a/heartbeat")).status_code == 204  # the control starts ticking
        fill[0] = 0.4
        await asyncio.sleep(3 * TICK_S)
        assert held == [] and admission._late_ticks == 0, "connections waiting, not yet a backlog"
        fill[0] = 0.5  # connection attempts may soon be dropped where the replica cannot see them
        await until(lambda: bool(held))
        assert admission._late_ticks >= 1 and admission.in_flight == 0


async def test_a_late_loop_with_nothing_in_flight_holds_nothing() -> None:
    held: list[float] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    admission = _admission(hold=lambda: held.append(time.monotonic()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_front(app, admission)),
                                 base_url="http://r") as http:
        assert (await http.put("/instances/a/heartbeat")).status_code == 204  # the control starts ticking
        busy_until = time.monotonic() + 4 * TARGET_LAG_S
        while time.monotonic() < busy_until:  # late, but idle: no request waits
            pass
        for _ in range(3):
            assert (await http.put("/instances/a/heartbeat")).status_code == 204
            await asyncio.sleep(TICK_S)  # pacing: let the control tick between requests
        assert admission._late_ticks == 0
        assert held == []


async def test_a_paced_heartbeat_is_served_with_retry_after_and_its_lease_covers_the_delay() -> None:
    clock, metrics = FakeClock(), CollectorRegistry()
    store = MemoryStore()
    app = create_app(Settings(instance_ttl_s=TTL_S), store=store, clock=clock, metrics_registry=metrics)
    admission: Admission = app.state.admission
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as http:
        created = await http.post("/instances", json={"name": "Auth", "host": "h", "port": 1, "id": "a"})
        assert created.status_code == 201
        lease = {"x-lease-token": created.json()["lease_token"]}
        admission._clock = lambda: 0.0
        admission._space(8.0)
        admission._cycles = (hash("a") % _POINTS) / _POINTS - 1.1  # its point 1.1 spacings away: 8.8 s
        admission._random = lambda: 0.75  # rounded up (drawn below 0.8): 9
        paced = await http.put("/instances/a/heartbeat", headers=lease, json={"status": "DOWN"})
        assert paced.status_code == 200 and paced.json()["status"] == "DOWN", "served all the same"
        assert paced.headers["retry-after"] == "9"
        assert admission.instances == 1, "heard"
        assert metrics.get_sample_value("registry_heartbeats_paced_total") == 1
        assert metrics.get_sample_value("registry_requests_shed_total") == 0
        renewed = await store.get("a", clock.now_ms())
        assert renewed is not None and renewed.expires_at_ms == clock.now_ms() + (9 + TTL_S) * 1000, \
            "the lease covers the delay given, plus a TTL"
        registration = await http.post("/instances", json={"name": "Auth", "host": "h", "port": 2, "id": "b"})
        assert registration.status_code == 201 and "retry-after" not in registration.headers, \
            "only heartbeats are paced"
        admission._space(None)  # no longer spaced: answered plainly
        plain = await http.put("/instances/a/heartbeat", headers=lease)
        assert plain.status_code == 200 and "retry-after" not in plain.headers
        health = await http.get("/healthz")
        assert health.json()["shedding"] is False, "pacing refuses nothing"


async def test_watches_waiting_count_in_no_limit_so_they_never_refuse_writes_or_reads() -> None:
    release = asyncio.Event()
    waiting: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/events":
            watching(scope, "stream")
            watching(scope, "stream")  # marked twice, released once
            waiting.append(1)
            await release.wait()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    admission = _admission(max_in_flight=2)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_front(app, admission)),
                                 base_url="http://r") as http:
        watches = [asyncio.create_task(http.get("/events")) for _ in range(5)]  # beyond both limits
        await until(lambda: len(waiting) == 5)
        assert admission.in_flight == 0
        assert (await http.put("/instances/a/heartbeat")).status_code == 204, "writes are served"
        assert (await http.get("/services/a")).status_code == 204, "reads are served"
        release.set()
        assert [(await watch).status_code for watch in watches] == [204] * 5
        assert admission.in_flight == admission.writes_in_flight == 0


def _admission(*, hold: Callable[[], None] = lambda: None, max_in_flight: int = 8, pace: bool = True,
               accept_queue: Callable[[], float | None] | None = None) -> Admission:
    return Admission(max_in_flight, heartbeat_of=lambda scope: None, refused=lambda instance_id, scope, delay: None,
                     shed=lambda: None,
                     hold=hold, refusals=Counter("refused", "refused", registry=CollectorRegistry()),
                     paced=Counter("paced", "paced", registry=CollectorRegistry()), max_retry_after_s=20.0,
                     pace=pace, accept_queue=accept_queue)


def _front(app: ASGIApp, admission: Admission) -> FrontLayer:
    """``app`` behind the front layer, which asks ``admission`` first."""
    return FrontLayer(app, admission=admission, metrics=RegistryMetrics(CollectorRegistry()),
                      cross_origin=CrossOrigin(()), handlers={})


async def test_refused_heartbeats_awaiting_renewal_hold_a_bounded_number_of_bytes() -> None:
    app = create_app(Settings(instance_ttl_s=TTL_S), store=MemoryStore(), clock=FakeClock(),
                     metrics_registry=CollectorRegistry())
    refused = app.state.refused_heartbeats
    big = b"t" * 15_000  # about as large as a request's headers may be
    for n in range(2 * MAX_PENDING_BYTES // len(big)):
        refused.refused(f"i-{n}", {"type": "http", "method": "PUT", "path": f"/instances/i-{n}/heartbeat",
                         "headers": [(b"x-lease-token", big)]}, 1.0)
    held = len(refused._pending)
    assert 0.9 * MAX_PENDING_BYTES < held * len(big) <= MAX_PENDING_BYTES, "filled to the bound, not past it"
    await refused.flush()  # renews nothing here (no such instances) and frees the room
    refused.refused("late", {"type": "http", "method": "PUT", "path": "/instances/late/heartbeat", "headers": []},
                    1.0)
    assert list(refused._pending) == ["late"]
    await refused.stop()
