"""Each user's events: the sink the domain hands them to once committed, and the log they are
read back from (the latest seq, what came after a seq, and what is too old)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID

from realtime.db import Database
from realtime.models import Event, Message
from realtime.store import events as event_store

REPLAY_PAGE = 1000


class EventConsumer(Protocol):
    """What takes the sink's deliveries on: the live wing's publisher."""

    async def publish(
        self, events: list[Event], arrivals: Mapping[UUID, Message] | None = None
    ) -> None:
        """Take the events of a commit; they go out soon, after those taken before.
        `arrivals` are the new messages of the commit as their recipients first see them, when
        the committer knows them (else they are read back)."""

    async def end_sessions(self, user_id: UUID, session_ids: Sequence[UUID] | None) -> None:
        """Close the sockets of the ended sessions (None: of all the user's) on every node."""


class EventSink:
    """Where the domain hands what it committed: the events, and the sessions it ended.

    Its consumer attaches itself when it is built, after the domain; a sink without one (a
    command, a test that builds a domain object alone) drops what it is handed, and nothing is
    lost: the events are in the log, and an ended session is refused at its next check.
    """

    def __init__(self) -> None:
        self._consumer: EventConsumer | None = None

    def attach(self, consumer: EventConsumer) -> None:
        """Hand everything to `consumer` from now on; its constructor calls this, once."""
        if self._consumer is not None:
            raise RuntimeError("this event sink has a consumer already")
        self._consumer = consumer

    async def committed(
        self, events: list[Event], arrivals: Mapping[UUID, Message] | None = None
    ) -> None:
        """The events of a commit, to be published; with the new messages it sent as their
        recipients first see them, if the committer has them (a send does)."""
        if self._consumer is not None:
            await self._consumer.publish(events, arrivals)

    async def sessions_ended(self, user_id: UUID, session_ids: Sequence[UUID] | None) -> None:
        """Sessions ended (by id, or None for all of the user's) after their commit."""
        if self._consumer is not None:
            await self._consumer.end_sessions(user_id, session_ids)


@dataclass(frozen=True)
class Backlog:
    """The events after a seq and the seq the log has reached; or that they are no longer
    kept."""

    events: list[Event]
    through_seq: int
    too_old: bool
    more: bool = False  # a page: more events follow `through_seq`
    expires: dict[int, float] = field(default_factory=dict)  # seq -> its message's expiry


class EventLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def after(self, user_id: UUID, after_seq: int, limit: int | None = None) -> Backlog:
        """The kept events with a greater seq, in order (at most `limit`, the rest `more`),
        leaving out those about an expired message; too old when some were purged."""
        async with self._db.snapshot() as conn:
            oldest, last = await event_store.kept_range(conn, user_id)
            if after_seq > last or after_seq < 0:
                return Backlog([], last, too_old=True)
            if after_seq < last and (oldest is None or oldest > after_seq + 1):
                return Backlog([], last, too_old=True)
            found: list[tuple[Event, float | None]] = []
            while True:
                page_size = REPLAY_PAGE if limit is None else limit - len(found)
                page = await event_store.events_after(
                    conn, user_id, found[-1][0].seq if found else after_seq, page_size
                )
                found += page
                if len(page) < page_size or limit is not None:
                    break
            more = limit is not None and len(found) == limit
        events = [event for event, _ in found]
        expires = {event.seq: at for event, at in found if at is not None}
        through = events[-1].seq if more else last
        return Backlog(events, through, too_old=False, more=more, expires=expires)

    async def expiries(self, message_ids: Sequence[UUID]) -> dict[UUID, float]:
        """When each of the given messages that expire does (seconds since the epoch)."""
        if not message_ids:
            return {}
        async with self._db.connection() as conn:
            return await event_store.message_expiries(conn, message_ids)
