"""How the load tester counts: frames matched to sends in either order, and seqs across
reconnections, so that it reports the server's losses and repeats and nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from realtime.loadtest.ledger import Addressed, Ledger
from realtime.loadtest.sequence import SeqTracker
from tests.seq_cases import SEQ_CASE_NAMES, SEQ_CASES, resumes_asked

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


@pytest.mark.parametrize("case", SEQ_CASES, ids=SEQ_CASE_NAMES)
def test_the_seq_tracker_counts_each_case_of_the_shared_table(case: dict[str, Any]) -> None:
    """Each seq of the table (duplicates, gaps, replays after a resume, out of order) is
    counted as a delivery when new, passed on as the server's duplicate when repeated outside
    a resume, and dropped when the contract replays it; each reconnection resumes where the
    table says."""
    seqs = SeqTracker()
    counted, resumes = [], []
    for step in case["steps"]:
        if "hello" in step:
            after = seqs.hello(step["hello"])
            if after is not None:
                resumes.append(after)
        elif "resumed" in step:
            seqs.resumed(step["resumed"])
        elif seqs.receive(step["frame"]):
            counted.append(step["frame"])
    assert resumes == resumes_asked(case)
    assert counted == [
        step["frame"] for step in case["steps"] if step.get("outcome") in ("new", "repeat")
    ]
