"""Messages past their expiry: the earliest pending, the overdue count, deletion in batches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg


@dataclass(frozen=True)
class Expired:
    """A deleted message: who sent it, who still had it, and how late it was deleted."""

    message_id: UUID
    sender_id: UUID
    expires_at: datetime
    deleted_at: datetime
    holders: list[UUID]
    unread_holders: list[UUID]  # the holders who had not read it: one unread less for each
    file_ids: list[UUID]  # the files it referred to: to release in the same transaction


# Nodes listen here for expiry times sent on any node, so that a sooner one wakes their expirer.
CHANNEL = "realtime_expiry"


def announcement(expires_at: datetime) -> tuple[str, str]:
    """The notification (channel, payload) that tells every node's expirer of a new expiry
    time: what `realtime.expiry` listens for."""
    return CHANNEL, expires_at.isoformat()


async def announce(conn: asyncpg.Connection, expires_at: datetime) -> None:
    """Tell every node's expirer of a new expiry time, when the transaction commits."""
    await conn.execute("select pg_notify($1, $2)", *announcement(expires_at))


async def seconds_until_next_expiry(conn: asyncpg.Connection) -> float | None:
    """How long until the next message expires by the database's clock (negative when overdue),
    or None when none will."""
    value = await conn.fetchval(
        """select extract(epoch from min(expires_at) - clock_timestamp())
           from messages where expires_at is not null"""
    )
    return None if value is None else float(value)


async def count_overdue(conn: asyncpg.Connection) -> int:
    """Messages whose expiry has passed and that are not deleted yet."""
    return int(await conn.fetchval(
        "select count(*) from messages where expires_at <= statement_timestamp()"
    ))


async def delete_expired(conn: asyncpg.Connection, limit: int) -> list[Expired]:
    """Delete up to `limit` expired messages that no one else is deleting; call in a transaction.

    The messages are locked with SKIP LOCKED, so nodes deleting at once share the work and never
    delete one twice. Deleting a message cascades to its To field and its recipients' rows,
    and so to its ciphertexts and wrapped key, which live in its row.
    """
    # Should a reader or a recall hold a row the other way round, this side gives way at once.
    await conn.execute("set local deadlock_timeout = '50ms'")
    rows = await conn.fetch(
        """with due as (
               select id from messages
               where expires_at <= statement_timestamp()
               order by expires_at
               limit $1
               for update skip locked),
           holders as (
               select r.message_id, array_agg(r.user_id order by r.user_id) as user_ids,
                      array_agg(r.user_id) filter (where r.read_at is null) as unread_ids
               from message_recipients r join due on due.id = r.message_id
               where r.deleted_at is null
               group by r.message_id),
           files as (
               select f.message_id, array_agg(f.file_id) as file_ids
               from message_files f join due on due.id = f.message_id
               group by f.message_id)
           delete from messages m
           using due left join holders h on h.message_id = due.id
                     left join files f on f.message_id = due.id
           where m.id = due.id
           returning m.id, m.sender_id, m.expires_at, statement_timestamp() as deleted_at,
                     coalesce(h.user_ids, '{}') as holders,
                     coalesce(h.unread_ids, '{}') as unread_holders,
                     coalesce(f.file_ids, '{}') as file_ids""",
        limit,
    )
    return [
        Expired(row["id"], row["sender_id"], row["expires_at"], row["deleted_at"],
                list(row["holders"]), list(row["unread_holders"]), list(row["file_ids"]))
        for row in rows
    ]
