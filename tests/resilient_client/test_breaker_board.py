from datetime import UTC, datetime, timedelta

from resilient_client import BreakerBoard, BreakerConfig, ConnectError, InstanceBreaker
from resilient_client._report import Reporter
from tests.support.client_fakes import instance

INSTANCES = (instance("User", 7001), instance("User", 7002), instance("Other", 7003))


def trip(breaker: InstanceBreaker) -> None:
    breaker.raised(breaker.admit(), ConnectError("refused"))


def elapse_reset_timeout(breaker: InstanceBreaker) -> None:
    breaker.pybreaker._state_storage.opened_at = datetime.now(UTC) - timedelta(hours=1)


def test_while_every_breaker_of_a_service_is_closed_admitting_hands_back_the_instances_themselves() -> None:
    board = BreakerBoard(BreakerConfig(fail_max=1), Reporter())
    users = INSTANCES[:2]
    gates = board.lineup("User", users)
    assert board.admitting("User", users, gates) is users


def test_an_instance_whose_breaker_is_open_is_left_out_until_a_probe_closes_it() -> None:
    board = BreakerBoard(BreakerConfig(fail_max=1), Reporter())
    users = INSTANCES[:2]
    gates = board.lineup("User", users)
    first = gates[id(users[0])]
    trip(first)
    assert board.admitting("User", users, gates) == [users[1]]
    elapse_reset_timeout(first)
    assert board.admitting("User", users, gates) == list(users)  # the reset timeout passed: a probe may go
    probe = first.admit()
    assert board.admitting("User", users, gates) == [users[1]]  # its one probe slot is taken
    first.succeeded(probe)
    assert board.admitting("User", users, gates) is users


def test_a_breaker_open_in_one_service_does_not_touch_another() -> None:
    board = BreakerBoard(BreakerConfig(fail_max=1), Reporter())
    users, others = INSTANCES[:2], INSTANCES[2:]
    trip(board.lineup("User", users)[id(users[0])])
    other_gates = board.lineup("Other", others)
    assert board.admitting("Other", others, other_gates) is others


def test_an_open_breaker_dropped_with_its_instance_no_longer_holds_the_service_back() -> None:
    board = BreakerBoard(BreakerConfig(fail_max=1), Reporter())
    users = INSTANCES[:2]
    dropped = board.lineup("User", users)[id(users[0])]
    trip(dropped)
    remaining = users[1:]
    gates = board.lineup("User", remaining)
    assert board.admitting("User", remaining, gates) is remaining
    elapse_reset_timeout(dropped)
    trip(dropped)  # a call still out on it reports later: the board does not hear of it any more
    assert board.admitting("User", remaining, gates) is remaining


def test_a_breaker_taken_straight_from_the_board_is_followed_too() -> None:
    board = BreakerBoard(BreakerConfig(fail_max=1), Reporter())
    users = INSTANCES[:2]
    gates = board.lineup("User", users)
    trip(board.get("User", users[1].address))
    assert board.admitting("User", users, gates) == [users[0]]
