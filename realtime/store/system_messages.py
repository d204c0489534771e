"""System messages (sealed) and their dismissals: what each user is shown, and what ends."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from realtime.models import SealedKey, SealedSystemMessage, SystemMode

# One lock for every creation: the count of active messages and the insert it allows are one
# step, so that simultaneous creations cannot pass the limit together.
_CREATION_LOCK = 0x5379_734D_7367  # "SysMsg"
_COLUMNS = "s.id, s.mode, s.created_at, s.ends_at, s.key_id, s.wrapped_key, s.subject, s.body"
_ACTIVE = "(s.ends_at is null or s.ends_at > statement_timestamp())"
# Hidden from the user: a dismissible message they dismissed; a reminder dismissed since their
# session began (`$2`, a session id; none: since ever).
_NOT_DISMISSED = """not exists (
    select 1 from system_message_dismissals d
    where d.system_message_id = s.id and d.user_id = $1
      and (s.mode = 'dismissible' or d.dismissed_at >= coalesce(
               (select created_at from sessions where id = $2), '-infinity')))"""


def _sealed(row: asyncpg.Record) -> SealedSystemMessage:
    return SealedSystemMessage(
        id=row["id"], mode=SystemMode(row["mode"]), created_at=row["created_at"],
        ends_at=row["ends_at"], key=SealedKey(row["key_id"], bytes(row["wrapped_key"])),
        subject=bytes(row["subject"]), body=bytes(row["body"]),
    )


async def lock_creation(conn: asyncpg.Connection) -> int:
    """Hold the creation lock until the transaction ends; return how many are active."""
    await conn.execute("select pg_advisory_xact_lock($1)", _CREATION_LOCK)
    return int(await conn.fetchval(f"select count(*) from system_messages s where {_ACTIVE}"))


async def insert(conn: asyncpg.Connection, message: SealedSystemMessage, author_id: UUID) -> None:
    await conn.execute(
        """insert into system_messages
               (id, author_id, mode, created_at, ends_at, key_id, wrapped_key, subject, body)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        message.id, author_id, message.mode.value, message.created_at, message.ends_at,
        message.key.key_id, message.key.wrapped, message.subject, message.body,
    )


async def list_active(conn: asyncpg.Connection) -> list[SealedSystemMessage]:
    """Every message not ended, newest first."""
    rows = await conn.fetch(
        f"select {_COLUMNS} from system_messages s where {_ACTIVE} order by s.created_at desc"
    )
    return [_sealed(row) for row in rows]


async def shown_to(
    conn: asyncpg.Connection, user_id: UUID, session_id: UUID | None,
    only: Sequence[UUID] | None = None,
) -> list[SealedSystemMessage]:
    """The messages the user has to see now in that session (none: in any session), oldest
    first; among `only`, when given."""
    rows = await conn.fetch(
        f"""select {_COLUMNS} from system_messages s
            where {_ACTIVE} and {_NOT_DISMISSED}
              and ($3::uuid[] is null or s.id = any($3::uuid[]))
            order by s.created_at""",
        user_id, session_id, None if only is None else list(only),
    )
    return [_sealed(row) for row in rows]


async def by_ids(conn: asyncpg.Connection, ids: Sequence[UUID]) -> list[SealedSystemMessage]:
    """The given messages that are still active."""
    rows = await conn.fetch(
        f"select {_COLUMNS} from system_messages s where s.id = any($1::uuid[]) and {_ACTIVE}",
        list(ids),
    )
    return [_sealed(row) for row in rows]


async def delete(conn: asyncpg.Connection, message_id: UUID) -> bool:
    """Delete the message if it is still shown (its key and dismissals with it; an ended one
    is the expirer's); whether it was."""
    return await conn.fetchval(
        f"delete from system_messages s where s.id = $1 and {_ACTIVE} returning true",
        message_id,
    ) is not None


async def dismiss(
    conn: asyncpg.Connection, message_id: UUID, user_id: UUID, session_id: UUID
) -> bool | None:
    """Record that the user dismissed an active message: None when there is none; whether the
    dismissal changed what the user is shown (a first one, or a reminder shown again since a
    new sign-in)."""
    row = await conn.fetchrow(
        f"""with target as (
                select s.id, s.mode from system_messages s where s.id = $1 and {_ACTIVE}),
            stored as (
                insert into system_message_dismissals (system_message_id, user_id)
                select id, $2 from target
                on conflict (system_message_id, user_id) do update
                    set dismissed_at = statement_timestamp()
                    where (select mode from target) = 'reminder'
                      and system_message_dismissals.dismissed_at < coalesce(
                          (select created_at from sessions where id = $3), 'infinity')
                returning true)
            select exists (select 1 from target) as found,
                   exists (select 1 from stored) as changed""",
        message_id, user_id, session_id,
    )
    return bool(row["changed"]) if row["found"] else None


async def delete_ended(conn: asyncpg.Connection, limit: int) -> list[UUID]:
    """Delete up to `limit` messages whose end has passed that no other node is deleting."""
    rows = await conn.fetch(
        """delete from system_messages where id in (
               select id from system_messages where ends_at <= statement_timestamp()
               order by ends_at limit $1 for update skip locked)
           returning id""",
        limit,
    )
    return [row["id"] for row in rows]


async def seconds_until_next_end(conn: asyncpg.Connection) -> float | None:
    """How long until the next message ends by the database's clock (negative when overdue),
    or None when none will."""
    value = await conn.fetchval(
        """select extract(epoch from min(ends_at) - clock_timestamp())
           from system_messages where ends_at is not null"""
    )
    return None if value is None else float(value)
