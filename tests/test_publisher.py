"""The publisher: commits handed over while a batch is out go together, in order, once each."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from uuid import UUID

import pytest

from realtime.broker.memory import MemoryBroker
from realtime.events import EventSink
from realtime.live.publisher import ATTEMPTS, MAX_BATCH, Publisher
from realtime.models import Event, EventType, Message, MessageHeader
from tests.timing import eventually

USER = uuid.uuid4()


def commit(seq: int) -> list[Event]:
    return [Event(USER, seq, EventType.MESSAGE_DELETED, {"message_id": str(uuid.uuid4())})]


class Recorder:
    """A broker's subscriber for USER, and a renderer that can be held or made to fail."""

    def __init__(self) -> None:
        self.delivered: list[bytes] = []
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.failures = 0
        self.arrivals: list[dict[UUID, Message]] = []
        self.broker = MemoryBroker(deliver=self.deliver, recovered=self.recovered)

    def deliver(self, user_id: UUID | None, payload: bytes) -> None:
        self.delivered.append(payload)

    async def recovered(self) -> None:
        return None

    async def render(
        self, events: list[Event], arrivals: Mapping[UUID, Message]
    ) -> list[tuple[UUID | None, bytes]]:
        self.batches.append([event.seq for event in events])
        self.arrivals.append(dict(arrivals))
        await self.release.wait()
        if self.failures:
            self.failures -= 1
            raise RuntimeError("the database went away")
        return [(event.user_id, b"%d" % event.seq) for event in events]


@pytest.fixture
async def recorder() -> Recorder:
    found = Recorder()
    await found.broker.subscribe(USER)
    return found


async def test_commits_made_while_a_batch_is_out_are_published_together_in_order(
    recorder: Recorder,
) -> None:
    """While one batch is being rendered, later commits wait and then go out as one batch, in
    the order they were handed over; each event is delivered once."""
    publisher = Publisher(recorder.render, recorder.broker, EventSink())
    publisher.start()
    recorder.release.clear()
    await publisher.publish(commit(1))
    await eventually(lambda: recorder.batches == [[1]], "the first batch")
    for seq in (2, 3, 4):
        await publisher.publish(commit(seq))
    recorder.release.set()
    await eventually(lambda: len(recorder.delivered) == 4, "every event")
    assert recorder.batches == [[1], [2, 3, 4]]
    assert recorder.delivered == [b"1", b"2", b"3", b"4"]
    await publisher.close()


async def test_a_batch_that_fails_once_is_tried_again_and_delivered(recorder: Recorder) -> None:
    """A render that fails once (the database busy a moment) is tried again: the events go out."""
    publisher = Publisher(recorder.render, recorder.broker, EventSink())
    publisher.start()
    recorder.failures = 1
    await publisher.publish(commit(1))
    await eventually(lambda: recorder.delivered == [b"1"], "the retried batch")
    assert recorder.batches == [[1], [1]]
    await publisher.close()


async def test_a_batch_that_keeps_failing_is_logged_and_the_next_ones_still_go_out(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    """A render that fails on every attempt loses only its own batch (the log keeps the
    events): later commits are published."""
    publisher = Publisher(recorder.render, recorder.broker, EventSink())
    publisher.start()
    recorder.failures = ATTEMPTS
    await publisher.publish(commit(1))
    await eventually(lambda: recorder.batches == [[1]] * ATTEMPTS, "every attempt")
    await publisher.publish(commit(2))
    await eventually(lambda: recorder.delivered == [b"2"], "the next batch")
    assert "Could not publish 1 events; sockets will catch up" in caplog.text
    await publisher.close()


async def test_closing_publishes_what_is_pending_first(recorder: Recorder) -> None:
    """At shutdown every event handed over before is published before the publisher stops."""
    publisher = Publisher(recorder.render, recorder.broker, EventSink())
    publisher.start()
    for seq in range(1, 101):
        await publisher.publish(commit(seq))
    await publisher.close()
    assert recorder.delivered == [b"%d" % seq for seq in range(1, 101)]


async def test_a_commit_is_never_split_across_batches_and_batches_stay_bounded(
    recorder: Recorder,
) -> None:
    """A commit larger than a batch (a send to a big group) is rendered and published whole, in
    one batch of its own; smaller commits around it are gathered up to the batch's bound."""
    big = [Event(USER, seq, EventType.MESSAGE_DELETED, {"message_id": str(uuid.uuid4())})
           for seq in range(2, MAX_BATCH + 502)]
    small = [commit(seq) for seq in range(MAX_BATCH + 502, 2 * MAX_BATCH + 503)]
    recorder.release.clear()
    publisher = Publisher(recorder.render, recorder.broker, EventSink())
    publisher.start()
    await publisher.publish(commit(1))
    await eventually(lambda: recorder.batches == [[1]], "the first batch to be out")
    await publisher.publish(big)
    for events in small:
        await publisher.publish(events)
    recorder.release.set()
    await publisher.close()
    sizes = [len(batch) for batch in recorder.batches]
    assert sizes == [1, len(big), MAX_BATCH, 1]
    assert recorder.batches[1] == [event.seq for event in big]
    assert recorder.delivered == [b"%d" % seq for seq in range(1, 2 * MAX_BATCH + 503)]


def arrival(message_id: UUID) -> Message:
    header = MessageHeader(message_id, USER, "Sender", datetime.now(UTC), None, False, None, None,
                           False, True, 1, 0)
    return Message(header, subject="hello")


async def test_the_new_messages_of_a_commit_go_with_the_batch_that_holds_it(
    recorder: Recorder,
) -> None:
    """A send hands over its message with its events: the render of the batch holding that
    commit gets it (and no other batch does), so that the message is not read back."""
    publisher = Publisher(recorder.render, recorder.broker, EventSink())
    publisher.start()
    recorder.release.clear()
    first, second = uuid.uuid4(), uuid.uuid4()
    await publisher.publish(commit(1), {first: arrival(first)})
    await eventually(lambda: recorder.batches == [[1]], "the first batch")
    await publisher.publish(commit(2), {second: arrival(second)})
    await publisher.publish(commit(3))
    recorder.release.set()
    await eventually(lambda: len(recorder.delivered) == 3, "every event")
    assert [set(known) for known in recorder.arrivals] == [{first}, {second}]
    await publisher.close()
