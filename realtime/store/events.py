"""The per-user event log: seqs drawn from each user's counter under its row lock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg

from realtime.models import Event, EventType


def appending(user_ids: str, type_: str, payload: str, unread_change: str = "0") -> str:
    """The common table expressions that append one event per user of the `uuid[]` expression
    `user_ids` (distinct), of the given type and payload expressions, for a statement of its
    own; `appended` yields each event's user_id, seq and `unread`.

    `unread_change` is an SQL expression of the counter row `c`: how the event changes that
    user's unread count (never below 0). Each event's payload gets `unread`, the user's count
    right after it. The counters are locked in id order, so concurrent writers never deadlock,
    and each row lock is held until commit, so a user's events commit in the order of their
    seqs.
    """
    return f"""locked as (
               select user_id from event_counters
               where user_id = any({user_ids}) order by user_id for update),
           bumped as (
               update event_counters c set last_seq = c.last_seq + 1,
                                           unread = greatest(c.unread + ({unread_change}), 0)
               from locked where c.user_id = locked.user_id
               returning c.user_id, c.last_seq, c.unread),
           appended as (
               insert into events (user_id, seq, type, payload)
               select user_id, last_seq, {type_},
                      ({payload})::jsonb || jsonb_build_object('unread', unread)
               from bumped
               returning user_id, seq, (payload->>'unread')::bigint as unread)"""


async def append_events(
    conn: asyncpg.Connection, user_ids: Sequence[UUID], type_: EventType, payload: dict[str, Any],
    *, unread_gone_for: Sequence[UUID] = (),
) -> list[Event]:
    """Append one event per user, each with that user's next seq and, in its payload, the
    user's unread count after it: one less for the users of `unread_gone_for`. Call inside a
    transaction."""
    if not user_ids:
        return []
    rows = await conn.fetch(
        f"""with {appending('$1::uuid[]', '$3', '$4',
                            'case when c.user_id = any($2::uuid[]) then -1 else 0 end')}
            select user_id, seq, unread from appended""",
        list(dict.fromkeys(user_ids)), list(unread_gone_for), type_.value, payload,
    )
    if len(rows) != len(set(user_ids)):
        raise RuntimeError("a user without an event counter cannot receive events")
    return [
        Event(row["user_id"], row["seq"], type_, {**payload, "unread": row["unread"]})
        for row in rows
    ]


async def append_each(
    conn: asyncpg.Connection, entries: Sequence[tuple[UUID, EventType, dict[str, Any]]],
    *, unread_changes: Sequence[int] | None = None,
) -> list[Event]:
    """Append events of any types and payloads, several per user allowed, each with its user's
    next seq in the order given; call inside a transaction. Counters are locked in id order.

    `unread_changes` (one per entry, all 0 by default) is how each event changes its user's
    unread count; each event's payload gets `unread`, the count right after it (never below 0).
    """
    if not entries:
        return []
    changes = list(unread_changes) if unread_changes is not None else [0] * len(entries)
    rows = await conn.fetch(
        """with wanted as (
               select user_id, type, payload, change, n
               from unnest($1::uuid[], $2::text[], $3::jsonb[], $4::int[])
                    with ordinality as w(user_id, type, payload, change, n)),
           counts as (
               select user_id, count(*) as added, sum(change) as changed
               from wanted group by user_id),
           locked as (
               select c.user_id, c.unread from event_counters c
               where c.user_id in (select user_id from counts)
               order by c.user_id for update),
           bumped as (
               update event_counters c set last_seq = c.last_seq + counts.added,
                                           unread = greatest(locked.unread + counts.changed, 0)
               from counts join locked using (user_id)
               where c.user_id = counts.user_id
               returning c.user_id, c.last_seq - counts.added as base, locked.unread as before),
           numbered as (
               select w.n, w.user_id, w.type, w.payload,
                      b.base + row_number() over (partition by w.user_id order by w.n) as seq,
                      greatest(b.before + sum(w.change) over (
                          partition by w.user_id order by w.n), 0) as unread
               from wanted w join bumped b using (user_id)),
           inserted as (
               insert into events (user_id, seq, type, payload)
               select user_id, seq, type, payload || jsonb_build_object('unread', unread)
               from numbered)
           select n, seq, unread from numbered order by n""",
        [user_id for user_id, _, _ in entries],
        [type_.value for _, type_, _ in entries],
        [payload for _, _, payload in entries],
        changes,
    )
    if len(rows) != len(entries):
        raise RuntimeError("a user without an event counter cannot receive events")
    # The entries are at hand: only each one's seq and count come back, not its payload decoded.
    return [
        Event(entries[n - 1][0], seq, entries[n - 1][1], {**entries[n - 1][2], "unread": unread})
        for n, seq, unread in rows
    ]


# The unread count of the counter row `c`, less its user's unread messages that have expired and
# that the expirer has not deleted yet (it takes them off with an event).
UNREAD_NOW = """greatest(c.unread - (
                    select count(*) from message_recipients r
                    where r.user_id = c.user_id and r.read_at is null and r.deleted_at is null
                      and r.expires_at <= statement_timestamp()), 0)"""


async def unread_count(conn: asyncpg.Connection, user_id: UUID) -> int:
    """The user's unread count as their last event left it, less the unread messages whose
    expiry has passed and that the expirer has not deleted yet (it takes them off with an
    event): what `hello` and `GET /api/unread` report."""
    value = await conn.fetchval(
        f"select {UNREAD_NOW} from event_counters c where c.user_id = $1",
        user_id,
    )
    return int(value or 0)


async def kept_range(conn: asyncpg.Connection, user_id: UUID) -> tuple[int | None, int]:
    """The oldest seq still kept for the user (None when none is), and the last seq given."""
    row = await conn.fetchrow(
        """select (select min(seq) from events where user_id = $1) as oldest,
                  coalesce((select last_seq from event_counters where user_id = $1), 0) as last""",
        user_id,
    )
    return row["oldest"], int(row["last"])


# An event about a message that has expired is gone from the log: a receipt needs its message
# live, any other event only that its message (when still there) has not expired.
_NOT_EXPIRED = """(e.type <> 'message.read' or exists (
                      select 1 from messages m where m.id = (e.payload->>'message_id')::uuid
                      and (m.expires_at is null or m.expires_at > statement_timestamp())))
                  and (e.type <> 'message.new' or not exists (
                      select 1 from messages m where m.id = (e.payload->>'message_id')::uuid
                      and m.expires_at <= statement_timestamp()))"""


async def events_after(
    conn: asyncpg.Connection, user_id: UUID, after_seq: int, limit: int
) -> list[tuple[Event, float | None]]:
    """The user's kept events with a greater seq, in order, at most `limit`, none about an
    expired message; each with its message's expiry (seconds since the epoch), if any."""
    rows = await conn.fetch(
        f"""select e.seq, e.type, e.payload,
                  (select extract(epoch from m.expires_at) from messages m
                   where m.id = (e.payload->>'message_id')::uuid) as expires_at
           from events e where e.user_id = $1 and e.seq > $2 and {_NOT_EXPIRED}
           order by e.seq limit $3""",
        user_id, after_seq, limit,
    )
    return [
        (
            Event(user_id, row["seq"], EventType(row["type"]), row["payload"]),
            None if row["expires_at"] is None else float(row["expires_at"]),
        )
        for row in rows
    ]


async def message_expiries(conn: asyncpg.Connection, message_ids: Sequence[UUID]) -> dict[
    UUID, float
]:
    """When each of the messages that expire does (seconds since the epoch)."""
    rows = await conn.fetch(
        """select id, extract(epoch from expires_at) as at from messages
           where id = any($1::uuid[]) and expires_at is not null""",
        list(message_ids),
    )
    return {row["id"]: float(row["at"]) for row in rows}


async def purge_old_events(conn: asyncpg.Connection, retention: timedelta, limit: int) -> int:
    """Delete up to `limit` events older than `retention`; return how many went."""
    status = await conn.execute(
        """delete from events where ctid in (
               select ctid from events where created_at < now() - $1::interval limit $2)""",
        retention, limit,
    )
    return int(status.split()[-1])


# Every account that is not disabled: a disabled user gets no events (nor sees anything).
_ENABLED_USERS = "array(select id from users where not disabled)"


async def append_to_every_user(
    conn: asyncpg.Connection, type_: EventType, payload: dict[str, Any]
) -> list[tuple[UUID, int]]:
    """Append one event of the same type and payload to every enabled user, each with that
    user's next seq, in one statement; return each user's id and seq. Call in a transaction."""
    rows = await conn.fetch(
        f"""with {appending(_ENABLED_USERS, '$1', '$2')}
            select user_id, seq from appended""",
        type_.value, payload,
    )
    return [(row["user_id"], row["seq"]) for row in rows]
