import asyncio

import pytest

from resilient_client import BreakerConfig, ConnectError
from resilient_client._breaker import InstanceBreaker
from resilient_client._breaker_board import BreakerBoard
from resilient_client._report import Reporter
from tests.support.client_fakes import FakeClock, instance

INSTANCES = (instance("User", 7001), instance("User", 7002), instance("Other", 7003))
RESET_S = 30.0


def make() -> tuple[BreakerBoard, FakeClock]:
    clock = FakeClock()
    return BreakerBoard(BreakerConfig(fail_max=1, reset_timeout_s=RESET_S), Reporter(), clock), clock


async def refused() -> int:
    raise ConnectError("refused")


def never_failure(_: int) -> bool:
    return False


async def trip(breaker: InstanceBreaker) -> None:
    with pytest.raises(ConnectError):
        await breaker.call(refused, never_failure)


def test_while_every_breaker_of_a_service_is_closed_admitting_hands_back_the_instances_themselves() -> None:
    board, _ = make()
    users = INSTANCES[:2]
    gates = board.lineup("User", users)
    assert board.admitting("User", users, gates) is users


async def test_an_instance_whose_breaker_is_open_is_left_out_until_a_probe_closes_it() -> None:
    board, clock = make()
    users = INSTANCES[:2]
    gates = board.lineup("User", users)
    first = gates[id(users[0])]
    await trip(first)
    assert board.admitting("User", users, gates) == [users[1]]
    clock.advance(RESET_S)
    assert board.admitting("User", users, gates) == list(users)  # the reset timeout passed: a probe may go
    entered, release = asyncio.Event(), asyncio.Event()

    async def held() -> int:
        entered.set()
        await release.wait()
        return 200

    probe = asyncio.create_task(first.call(held, never_failure))
    await entered.wait()
    assert board.admitting("User", users, gates) == [users[1]]  # its one probe slot is taken
    release.set()
    assert await probe == 200
    assert board.admitting("User", users, gates) is users


async def test_a_breaker_open_in_one_service_does_not_touch_another() -> None:
    board, _ = make()
    users, others = INSTANCES[:2], INSTANCES[2:]
    await trip(board.lineup("User", users)[id(users[0])])
    other_gates = board.lineup("Other", others)
    assert board.admitting("Other", others, other_gates) is others


async def test_an_open_breaker_dropped_with_its_instance_no_longer_holds_the_service_back() -> None:
    board, clock = make()
    users = INSTANCES[:2]
    dropped = board.lineup("User", users)[id(users[0])]
    await trip(dropped)
    remaining = users[1:]
    gates = board.lineup("User", remaining)
    assert board.admitting("User", remaining, gates) is remaining
    clock.advance(RESET_S)
    await trip(dropped)  # a call still out on it reports later: the board does not hear of it any more
    assert board.admitting("User", remaining, gates) is remaining


async def test_a_breaker_taken_straight_from_the_board_is_followed_too() -> None:
    board, _ = make()
    users = INSTANCES[:2]
    gates = board.lineup("User", users)
    await trip(board.get("User", users[1].address))
    assert board.admitting("User", users, gates) == [users[0]]
