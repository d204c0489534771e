"""The per-user event log: seqs drawn from each user's counter under its row lock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

from realtime.models import Event, EventType


async def append_events(
    conn: asyncpg.Connection, user_ids: Sequence[UUID], type_: EventType, payload: dict[str, Any]
) -> list[Event]:
    """Append one event per user, each with that user's next seq; call inside a transaction.

    The counters are locked in id order, so concurrent writers never deadlock, and each row lock
    is held until commit, so a user's events commit in the order of their seqs.
    """
    if not user_ids:
        return []
    rows = await conn.fetch(
        """with locked as (
               select user_id from event_counters
               where user_id = any($1::uuid[]) order by user_id for update),
           bumped as (
               update event_counters c set last_seq = c.last_seq + 1
               from locked where c.user_id = locked.user_id
               returning c.user_id, c.last_seq)
           insert into events (user_id, seq, type, payload)
           select user_id, last_seq, $2, $3 from bumped
           returning user_id, seq""",
        list(dict.fromkeys(user_ids)), type_.value, payload,
    )
    if len(rows) != len(set(user_ids)):
        raise RuntimeError("a user without an event counter cannot receive events")
    return [Event(row["user_id"], row["seq"], type_, payload) for row in rows]


async def latest_seq(conn: asyncpg.Connection, user_id: UUID) -> int:
    """The last seq given to the user: what `hello` reports."""
    value = await conn.fetchval("select last_seq from event_counters where user_id = $1", user_id)
    return int(value or 0)


async def kept_range(conn: asyncpg.Connection, user_id: UUID) -> tuple[int | None, int]:
    """The oldest seq still kept for the user (None when none is), and the last seq given."""
    row = await conn.fetchrow(
        """select (select min(seq) from events where user_id = $1) as oldest,
                  coalesce((select last_seq from event_counters where user_id = $1), 0) as last""",
        user_id,
    )
    return row["oldest"], int(row["last"])


async def events_after(
    conn: asyncpg.Connection, user_id: UUID, after_seq: int, limit: int
) -> list[Event]:
    """The user's kept events with a greater seq, in order, at most `limit`."""
    rows = await conn.fetch(
        """select seq, type, payload from events where user_id = $1 and seq > $2
           order by seq limit $3""",
        user_id, after_seq, limit,
    )
    return [Event(user_id, row["seq"], EventType(row["type"]), row["payload"]) for row in rows]
