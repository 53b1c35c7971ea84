import random
from collections import Counter
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from resilient_client import RandomPicker, RoundRobinPicker
from resilient_client.picker import LeastOutstandingPicker, ZonePreference


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


# -- least outstanding: power of two choices on the calls in flight -------------------------------------------


def least_outstanding(in_flight: dict[str, int], seed: int = 7) -> LeastOutstandingPicker:
    return LeastOutstandingPicker(lambda service, candidate: in_flight[candidate], random.Random(seed))


def test_least_outstanding_spreads_evenly_when_every_instance_is_idle() -> None:
    picker = least_outstanding({"a": 0, "b": 0, "c": 0})
    firsts = Counter(picker.order("User", ["a", "b", "c"])[0] for _ in range(3000))
    assert all(900 < firsts[name] < 1100 for name in "abc"), firsts  # each 1/3


def test_least_outstanding_starts_with_the_less_busy_of_two_random_instances() -> None:
    # Of the 3 pairs, equally likely, the idle instance is in 2 and wins both; the busy one wins the third.
    picker = least_outstanding({"idle": 0, "busy": 4, "busier": 9})
    firsts = Counter(picker.order("User", ["idle", "busy", "busier"])[0] for _ in range(3000))
    assert 1900 < firsts["idle"] < 2100, firsts
    assert 900 < firsts["busy"] < 1100, firsts
    assert firsts["busier"] == 0  # never first while another has fewer calls in flight


def test_least_outstanding_fails_over_in_order_of_calls_in_flight() -> None:
    picker = least_outstanding({"a": 5, "b": 1, "c": 3, "d": 0})
    for _ in range(50):
        order = picker.order("User", ["a", "b", "c", "d"])
        assert sorted(order) == ["a", "b", "c", "d"]
        assert order[0] != "a"
        assert [*order[1:]] == sorted(order[1:], key={"a": 5, "b": 1, "c": 3, "d": 0}.__getitem__)


def test_least_outstanding_with_one_candidate_or_none_returns_them() -> None:
    picker, one = least_outstanding({"a": 3}), ("a",)
    assert picker.order("User", one) is one
    assert picker.order("User", []) == []


@given(st.dictionaries(st.sampled_from("abcdefgh"), st.integers(0, 20), min_size=2), st.integers(0, 1000))
def test_least_outstanding_never_starts_with_the_one_busiest(in_flight: dict[str, int], seed: int) -> None:
    candidates, busiest = sorted(in_flight), max(in_flight.values())
    first = least_outstanding(in_flight, seed).order("S", candidates)[0]
    assert in_flight[first] < busiest or list(in_flight.values()).count(busiest) > 1


# -- zone preference ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inst:
    name: str
    zone: str | None

    @property
    def metadata(self) -> dict[str, str]:
        return {} if self.zone is None else {"zone": self.zone}


A1, A2, B1, B2, NONE = Inst("a1", "a"), Inst("a2", "a"), Inst("b1", "b"), Inst("b2", "b"), Inst("n", None)


def test_zone_preference_keeps_every_first_attempt_in_the_zone_round_robin() -> None:
    picker = ZonePreference(RoundRobinPicker(), "a")
    firsts = Counter(picker.order("User", [B1, A1, NONE, B2, A2])[0].name for _ in range(100))
    assert firsts == {"a1": 50, "a2": 50}


def test_zone_preference_fails_over_to_the_other_zones_after_its_own() -> None:
    picker = ZonePreference(RoundRobinPicker(), "a")
    assert [inst.name for inst in picker.order("User", [B1, A1, B2, A2])] == ["a1", "a2", "b1", "b2"]
    assert [inst.name for inst in picker.order("User", [B1, A1, B2, A2])] == ["a2", "a1", "b1", "b2"]


def test_zone_preference_spills_evenly_over_the_others_when_the_zone_has_no_candidate_left() -> None:
    picker = ZonePreference(RoundRobinPicker(), "a")
    firsts = Counter(picker.order("User", [B1, NONE, B2])[0].name for _ in range(90))
    assert firsts == {"b1": 30, "n": 30, "b2": 30}


def test_zone_preference_with_random_inside_the_zone() -> None:
    picker = ZonePreference(RandomPicker(random.Random(5)), "b")
    firsts = Counter(picker.order("User", [A1, B1, A2, B2])[0].name for _ in range(2000))
    assert set(firsts) == {"b1", "b2"} and 900 < firsts["b1"] < 1100, firsts


@given(st.lists(st.sampled_from([A1, A2, B1, B2, NONE]), min_size=1, max_size=5, unique=True))
def test_zone_preference_is_a_permutation_that_starts_in_the_zone_when_it_can(candidates: list[Inst]) -> None:
    order = ZonePreference(RoundRobinPicker(), "a").order("S", candidates)
    assert sorted(order, key=repr) == sorted(candidates, key=repr)
    if any(inst.zone == "a" for inst in candidates):
        assert order[0].zone == "a"
