from hypothesis import assume, given
from hypothesis import strategies as st

from resilient_client._empty_set import CachedAnswer, admit
from resilient_client.hooks import ProtectionOutcome
from resilient_client.model import ServiceAnswer
from tests.support.client_fakes import instance

A, B = instance("User", 4001), instance("User", 4002)
GRACE = 30.0


def view(*instances: object, revision: int = 10) -> CachedAnswer:
    return CachedAnswer.of(ServiceAnswer(tuple(instances), revision))  # type: ignore[arg-type]


def test_an_empty_answer_whose_revision_moved_on_is_a_real_deregistration_and_empties_the_view() -> None:
    after, outcome = admit(view(A), ServiceAnswer((), 11), now=0, grace_s=GRACE)
    assert after == CachedAnswer((), 11, 11)
    assert outcome is None


def test_an_empty_answer_whose_revision_fell_back_keeps_the_last_instances_for_the_grace_period() -> None:
    after, outcome = admit(view(A, B), ServiceAnswer((), 0), now=100, grace_s=GRACE)
    assert outcome is ProtectionOutcome.STARTED
    assert after.instances == (A, B)
    assert after.revision == 0, "the next blocking query waits on the registry's current revision"
    assert after.basis == 10
    assert after.protected_until == 130


def test_an_empty_answer_at_the_same_revision_is_not_believed_either() -> None:
    after, outcome = admit(view(A), ServiceAnswer((), 10), now=0, grace_s=GRACE)
    assert outcome is ProtectionOutcome.STARTED
    assert after.instances == (A,)


def test_protection_holds_until_the_grace_period_runs_out_then_the_empty_set_is_taken() -> None:
    protected, _ = admit(view(A), ServiceAnswer((), 0), now=100, grace_s=GRACE)
    still, outcome = admit(protected, ServiceAnswer((), 0), now=129.9, grace_s=GRACE)
    assert (still.instances, still.protected_until, outcome) == ((A,), 130, None)
    emptied, outcome = admit(still, ServiceAnswer((), 0), now=130, grace_s=GRACE)
    assert (emptied, outcome) == (CachedAnswer((), 0, 0), ProtectionOutcome.EMPTIED)


def test_instances_that_come_back_end_the_protection() -> None:
    protected, _ = admit(view(A, B), ServiceAnswer((), 0), now=100, grace_s=GRACE)
    after, outcome = admit(protected, ServiceAnswer((B,), 1), now=101, grace_s=GRACE)
    assert (after, outcome) == (CachedAnswer((B,), 1, 1), ProtectionOutcome.RECOVERED)


def test_while_protecting_a_revision_past_the_kept_one_empties_at_once() -> None:
    protected, _ = admit(view(A, revision=10), ServiceAnswer((), 10), now=100, grace_s=GRACE)
    after, outcome = admit(protected, ServiceAnswer((), 11), now=100.5, grace_s=GRACE)
    assert (after.instances, outcome) == ((), ProtectionOutcome.EMPTIED)


def test_an_answer_without_a_revision_is_taken_as_it_is() -> None:
    after, outcome = admit(view(A), ServiceAnswer((), None), now=0, grace_s=GRACE)
    assert (after.instances, outcome) == ((), None)


def test_a_grace_period_of_zero_turns_protection_off() -> None:
    after, outcome = admit(view(A), ServiceAnswer((), 0), now=0, grace_s=0)
    assert (after.instances, outcome) == ((), None)


revisions = st.one_of(st.none(), st.integers(0, 50))
answers = st.builds(ServiceAnswer, st.sampled_from([(), (A,), (A, B)]), revisions)
views = st.builds(CachedAnswer, st.sampled_from([(), (A,), (A, B)]), revisions, revisions,
                  st.one_of(st.none(), st.floats(0, 200)))


@given(views, answers, st.floats(0, 200), st.floats(0, 60))
def test_an_answer_with_instances_is_always_taken_as_it_is(previous: CachedAnswer, answer: ServiceAnswer,
                                                           now: float, grace: float) -> None:
    after, _ = admit(previous, answer, now=now, grace_s=grace)
    if answer.instances:
        assert after == CachedAnswer.of(answer)


@given(views, answers, st.floats(0, 200), st.floats(0, 60))
def test_kept_instances_never_outlive_the_grace_period(previous: CachedAnswer, answer: ServiceAnswer,
                                                       now: float, grace: float) -> None:
    # a protection in force was started at an earlier ``now`` with the same grace period
    assume(previous.protected_until is None or previous.protected_until <= now + grace)
    after, outcome = admit(previous, answer, now=now, grace_s=grace)
    if after.instances != answer.instances:
        assert after.instances == previous.instances
        # (<=, not <: a grace too small to move a float, such as 1e-300, ends where it starts)
        assert after.protected_until is not None and now <= after.protected_until <= now + grace
        assert after.revision == answer.revision
        assert outcome in (ProtectionOutcome.STARTED, None)


@given(st.integers(0, 50), st.integers(0, 50), st.floats(0, 60))
def test_an_empty_answer_past_the_kept_revision_always_empties(basis: int, revision: int, grace: float) -> None:
    after, _ = admit(view(A, revision=basis), ServiceAnswer((), revision), now=0, grace_s=grace)
    assert (after.instances == ()) == (revision > basis or grace <= 0)
