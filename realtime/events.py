"""The per-user event log: the latest seq, what came after a seq, and what is too old."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

from realtime.db import Database
from realtime.models import Event
from realtime.store import events as event_store

REPLAY_PAGE = 1000


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
