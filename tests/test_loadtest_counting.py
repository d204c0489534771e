"""How the load tester counts: frames matched to sends in either order, and seqs across
reconnections, so that it reports the server's losses and repeats and nothing else."""

from __future__ import annotations

from realtime.loadtest.ledger import Addressed, Ledger
from realtime.loadtest.sequence import SeqTracker

GROUP = frozenset({0, 1, 2, 3})


def ledger_with(online: frozenset[int] = GROUP) -> Ledger:
    ledger = Ledger(online=online)
    ledger.sending(7, at=10.0)
    return ledger


def test_a_frame_before_the_answer_counts_as_delivered_with_its_latency() -> None:
    """A `message.new` that beats the send's 201 is matched to it once the answer names it."""
    ledger = ledger_with()
    ledger.arrive(1, 7, at=10.004)
    assert ledger.delivered == 0
    assert ledger.expect(7, Addressed(GROUP, sender=0)) == 3
    ledger.arrive(2, 7, at=10.010)
    assert (ledger.expected_events, ledger.delivered, ledger.outstanding) == (3, 2, 1)
    assert [round(v, 3) for v in ledger.latencies] == [0.004, 0.010]


def test_a_second_frame_for_the_same_user_is_a_duplicate_in_either_order() -> None:
    """The same message twice on one user's socket counts one delivery and one duplicate."""
    before, after = ledger_with(), ledger_with()
    before.arrive(1, 7, at=10.1)
    before.arrive(1, 7, at=10.2)
    before.expect(7, Addressed(GROUP, sender=0))
    after.expect(7, Addressed(GROUP, sender=0))
    after.arrive(1, 7, at=10.1)
    after.arrive(1, 7, at=10.2)
    for ledger in (before, after):
        assert (ledger.delivered, ledger.duplicated, ledger.unexpected) == (1, 1, 0)


def test_users_without_a_socket_are_not_waited_for_and_the_sender_gets_nothing() -> None:
    """Only recipients whose socket opened are expected; a frame to the sender is unexpected."""
    ledger = ledger_with(online=frozenset({0, 1}))
    ledger.expect(7, Addressed(GROUP, sender=0))
    ledger.arrive(0, 7, at=10.1)
    assert (ledger.expected_events, ledger.unexpected, ledger.outstanding) == (1, 1, 1)


def test_frames_of_a_failed_send_are_unexpected_and_other_runs_are_ignored() -> None:
    """A send that got no 201 expects nothing; frames of another run's messages do not count."""
    ledger = ledger_with()
    ledger.arrive(1, 7, at=10.1)
    ledger.send_failed_with(7, "ReadTimeout")
    ledger.arrive(2, 7, at=10.2)
    ledger.arrive(1, 99, at=10.3)
    assert (ledger.unexpected, ledger.send_failed, ledger.expected_events) == (2, 1, 0)


def test_a_fresh_user_reconnecting_resumes_after_seq_0() -> None:
    """A user whose first hello said seq 0 still resumes after 0 when events came meanwhile."""
    seqs = SeqTracker()
    assert seqs.hello(0) is None
    assert seqs.hello(1) == 0


def test_frames_replayed_after_live_ones_are_the_contracts_repeats_not_duplicates() -> None:
    """During a resume, a seq already got live is not passed on; a new one is; afterwards a
    repeat is passed on, to be counted."""
    seqs = SeqTracker()
    seqs.hello(4)
    assert seqs.receive(5)
    assert seqs.hello(7) == 5  # 6 and 7 came while away
    assert seqs.receive(8)  # live, before the replay
    assert [seqs.receive(s) for s in (6, 7, 8)] == [True, True, False]
    seqs.resumed(8)
    assert seqs.receive(8)


def test_a_link_lost_during_a_replay_resumes_after_the_last_seq_without_a_gap() -> None:
    """Live frames that overtook the replay do not move the resume point past the gap."""
    seqs = SeqTracker()
    seqs.hello(10)
    assert seqs.hello(13) == 10
    assert seqs.receive(14) and seqs.receive(11)
    assert seqs.hello(14) == 11  # dropped again before 12 and 13 came
    assert [seqs.receive(s) for s in (12, 13, 14)] == [True, True, False]
    assert seqs.through == 14
