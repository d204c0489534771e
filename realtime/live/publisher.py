"""Committed events published in batches: one render and one pipelined publish per batch.

The publisher consumes the domain's event sink. A change hands its events over once committed
and goes on at once: the request that made it does not wait for the broker. The events of every
commit that came meanwhile are rendered together (one query for the new messages, one for the
expiries of receipts about other messages) and published in one pipeline, in the order they
were handed over. A batch that fails (the database busy a moment) is tried again; one that keeps
failing is not lost: the events are in the log, and a socket repairs its gap from there at its
next event or resume. Ended sessions are published at once, for every node to close their
sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from uuid import UUID

from realtime import metrics
from realtime.broker.base import Broker
from realtime.events import EventSink
from realtime.models import Event, Message
from realtime.protocol import EndSessions, event_key, time_frames

log = logging.getLogger(__name__)

MAX_BATCH = 5_000  # events rendered in one go, unless one commit has more: never split
CLOSE_TIMEOUT = 5.0  # at shutdown, how long the last batches may take
ATTEMPTS = 3  # a batch whose render or publish fails is tried again, after 0.1 s, then 0.2 s
RETRY_DELAY = 0.1

# Events (and the new messages known of them) to broker payloads, each for a user or (None) for
# every node.
Render = Callable[
    [list[Event], Mapping[UUID, Message]], Awaitable[list[tuple[UUID | None, bytes]]]
]


@dataclass(frozen=True)
class _Commit:
    events: list[Event]
    at: float  # when it committed, by the wall clock
    arrivals: Mapping[UUID, Message]  # the new messages it sent, where known


class Publisher:
    """Collects committed events and publishes them from one task, batch after batch."""

    def __init__(self, render: Render, broker: Broker, sink: EventSink) -> None:
        """Publish through `broker` what `sink` is handed from now on."""
        self._render = render
        self._broker = broker
        # Each pending commit: its events, the wall-clock time it committed (for the latency
        # metric), and the new messages it sent, where known.
        self._pending: list[_Commit] = []
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        sink.attach(self)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="publisher")

    async def publish(
        self, events: list[Event], arrivals: Mapping[UUID, Message] | None = None
    ) -> None:
        """Take the events of a commit; they are published soon, after those taken before."""
        if events:
            self._pending.append(_Commit(events, time.time(), arrivals or {}))
            self._ready.set()

    async def end_sessions(self, user_id: UUID, session_ids: Sequence[UUID] | None) -> None:
        """Close the sockets of the ended sessions (None: of all the user's) on every node."""
        ended = EndSessions(user_id, tuple(session_ids or ()))
        await self._broker.publish([(None, ended.pack())])

    async def close(self) -> None:
        """Publish what is pending (bounded), then stop."""
        task, self._task = self._task, None
        if task is None:
            return
        self._closing = True
        self._ready.set()
        done, _ = await asyncio.wait([task], timeout=CLOSE_TIMEOUT)
        if not done:
            log.warning("%d events were not published before shutdown",
                        sum(len(commit.events) for commit in self._pending))
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._pending:
                await self._publish_batch(self._take_batch())
            if self._closing:
                return

    def _take_batch(self) -> list[_Commit]:
        """The oldest pending commits, whole, up to MAX_BATCH events (at least one commit: a
        send to many is rendered and published as one)."""
        taken, size = 0, 0
        while taken < len(self._pending) and (
            taken == 0 or size + len(self._pending[taken].events) <= MAX_BATCH
        ):
            size += len(self._pending[taken].events)
            taken += 1
        batch, self._pending = self._pending[:taken], self._pending[taken:]
        return batch

    async def _publish_batch(self, commits: list[_Commit]) -> None:
        batch = [event for commit in commits for event in commit.events]
        times = {
            event_key(event.user_id, event.seq): commit.at
            for commit in commits for event in commit.events
        }
        arrivals = {id_: m for commit in commits for id_, m in commit.arrivals.items()}
        for attempt in range(1, ATTEMPTS + 1):
            try:
                payloads = await self._render(batch, arrivals)
                frames = time_frames(payloads, times)
                await self._broker.publish(payloads)
            except Exception:  # the top of the publishing loop: the log still holds the events
                if attempt == ATTEMPTS:
                    log.exception("Could not publish %d events; sockets will catch up from the "
                                  "log", len(batch))
                    return
                log.warning("Could not publish %d events (attempt %d); trying again",
                            len(batch), attempt, exc_info=True)
                await asyncio.sleep(RETRY_DELAY * attempt)
                continue
            metrics.publish_batches.observe(len(batch))
            metrics.events_published.inc(frames)
            return
