import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from resilient_client import RandomPicker, RoundRobinPicker


def test_round_robin_spreads_thirty_calls_ten_ten_ten() -> None:
    picker = RoundRobinPicker()
    firsts = Counter(picker.order("User", ["a", "b", "c"])[0] for _ in range(30))
    assert firsts == {"a": 10, "b": 10, "c": 10}


def test_round_robin_failover_order_continues_after_the_first_pick() -> None:
    picker = RoundRobinPicker()
    assert picker.order("User", ["a", "b", "c"]) == ["a", "b", "c"]
    assert picker.order("User", ["a", "b", "c"]) == ["b", "c", "a"]
    assert picker.order("User", ["a", "b", "c"]) == ["c", "a", "b"]


def test_round_robin_keeps_one_rotation_per_service() -> None:
    picker = RoundRobinPicker()
    picker.order("User", ["a", "b"])
    assert picker.order("Auth", ["x", "y"])[0] == "x"
    assert picker.order("User", ["a", "b"])[0] == "b"


def test_an_order_that_starts_at_the_first_candidate_is_the_candidates_themselves() -> None:
    picker, candidates = RoundRobinPicker(), ("a", "b")
    assert picker.order("User", candidates) is candidates  # (no copy on the common path)
    assert picker.order("User", candidates) == ["b", "a"]
    assert picker.order("User", candidates) is candidates


def test_no_candidates_give_an_empty_order() -> None:
    assert RoundRobinPicker().order("User", []) == []
    assert RandomPicker().order("User", []) == []


@given(st.lists(st.integers(), min_size=1, max_size=20, unique=True), st.integers(0, 100))
def test_every_order_is_a_permutation_of_the_candidates(candidates: list[int], calls: int) -> None:
    rr, rnd = RoundRobinPicker(), RandomPicker(random.Random(calls))
    for _ in range(calls % 7 + 1):
        assert sorted(rr.order("S", candidates)) == sorted(candidates)
        assert sorted(rnd.order("S", candidates)) == sorted(candidates)


def test_random_picker_is_reproducible_with_a_seeded_source() -> None:
    first = [RandomPicker(random.Random(3)).order("S", list(range(10))) for _ in range(2)]
    assert first[0] == first[1]
