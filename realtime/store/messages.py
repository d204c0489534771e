"""Messages, their addressees and recipients; subject and body stay sealed here.

Every read filters on `expires_at > statement_timestamp()`, so an expired message is never
returned, whether or not the expirer has deleted it yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from realtime.models import (
    Addressee,
    AddresseeKind,
    EventType,
    MessageHeader,
    SealedKey,
    SealedMessage,
)
from realtime.store.audit import recording
from realtime.store.events import UNREAD_NOW, appending

_LIVE = "(m.expires_at is null or m.expires_at > statement_timestamp())"
_LIVE_FOR_RECIPIENT = "(r.expires_at is null or r.expires_at > statement_timestamp())"
_HEADER = """m.id, m.sender_id, s.display_name as sender_display_name, m.sent_at, m.expires_at,
             m.high_priority, m.reply_to, m.key_id, m.wrapped_key, m.subject,
             m.recipient_count, m.read_count"""
# A recipient's view ($1 is the recipient), for the inbox and the unread lists.
_FROM_INBOX = f"""select {_HEADER}, r.read_at, (m.sender_id = $1) as is_sender,
                        true as is_recipient
                 from message_recipients r
                 join messages m on m.id = r.message_id
                 join users s on s.id = m.sender_id"""
# Keyset pagination that stays an index condition in generic plans: no cursor is "after all".
_BEFORE = "(coalesce($2::timestamptz, 'infinity'), coalesce($3::uuid, '{last}'))".format(
    last="ffffffff-ffff-ffff-ffff-ffffffffffff"
)


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the next page holds what was sent strictly before it."""

    sent_at: datetime
    id: UUID


@dataclass(frozen=True)
class ReadMark:
    read_at: datetime
    newly_read: bool
    sender_id: UUID


@dataclass(frozen=True)
class Holder:
    """A user who still had a message when it was deleted."""

    user_id: UUID
    had_unread: bool


def _sealed(row: asyncpg.Record, *, with_body: bool = False) -> SealedMessage:
    header = MessageHeader(
        id=row["id"],
        sender_id=row["sender_id"],
        sender_display_name=row["sender_display_name"],
        sent_at=row["sent_at"],
        expires_at=row["expires_at"],
        high_priority=row["high_priority"],
        reply_to=row["reply_to"],
        read_at=row["read_at"],
        is_sender=row["is_sender"],
        is_recipient=row["is_recipient"],
        recipient_count=row["recipient_count"],
        read_count=row["read_count"],
    )
    return SealedMessage(
        header=header,
        key=SealedKey(row["key_id"], bytes(row["wrapped_key"])),
        subject=bytes(row["subject"]),
        body=bytes(row["body"]) if with_body else None,
    )


@dataclass(frozen=True)
class Inserted:
    """A message just written: when it was sent, and the seq of each recipient's event with
    the recipient's unread count after it."""

    sent_at: datetime
    seqs: dict[UUID, int]
    unread: dict[UUID, int]


def _inserting(
    *, recipients: str, addressees: str, allowed: str, type_: str, payload: str,
    channel: str, notice: str, audited: tuple[str, str], prelude: str = "",
) -> str:
    """The statement that inserts a message ($1 to $9: id, sender, expiry, high priority, reply
    to, key id, wrapped key, subject, body) with its To field (the `select` `addressees` of
    position, kind, target id, name), its recipients (the `uuid[]` expression `recipients`,
    distinct) and one event for each of them (one more unread for each), and notifies the
    expirers (the parameters `channel` and `notice`; none when the channel is null), when
    `allowed` holds: else it writes nothing and yields no row (`recipients` must then be
    empty: their events are appended whatever `allowed` says). `audited` is the expressions of
    the client's address and of whether the audit trail records the send. `prelude` is common
    table expressions (each followed by a comma) the others may use."""
    address, auditing = audited
    return f"""with {prelude}message as (
               insert into messages (id, sender_id, sent_at, expires_at, high_priority, reply_to,
                                     key_id, wrapped_key, subject, body, recipient_count)
               select $1, $2, statement_timestamp(), $3, $4, $5, $6, $7, $8, $9,
                      cardinality({recipients})
               where {allowed}
               returning sent_at),
           addressees as (
               insert into message_addressees (message_id, position, kind, target_id, name)
               select $1, a.* from ({addressees}) as a where {allowed}),
           recipients as (
               insert into message_recipients
                   (message_id, user_id, sent_at, expires_at, high_priority)
               select $1, user_id, statement_timestamp(), $3, $4
               from unnest({recipients}) as user_id where {allowed}),
           {appending(recipients, type_, payload, unread_change='1')},
           announced as (select pg_notify({channel}, {notice})
                         where {channel}::text is not null and {allowed}),
           {recording(f'''select $2, 'message.sent', 'message', $1, {address}::text, 'ok',
                                 jsonb_build_object('recipients', cardinality({recipients}))
                          where {auditing}::bool and {allowed}''')}
           select message.sent_at, appended.user_id, appended.seq, appended.unread,
                  (select count(*) from announced) as announced
           from message cross join appended"""


@dataclass(frozen=True)
class NewMessage:
    """A message about to be written, sealed, with the event its recipients get and the
    notification (channel, payload) for the expirers, if it expires."""

    message_id: UUID
    sender_id: UUID
    expires_at: datetime | None
    high_priority: bool
    reply_to: UUID | None
    key: SealedKey
    subject: bytes = field(repr=False)
    body: bytes = field(repr=False)
    event_type: EventType = EventType.MESSAGE_NEW
    event_payload: dict[str, Any] = field(default_factory=dict)
    announcement: tuple[str, str] | None = None
    audited: bool = False  # the audit trail records the send
    address: str | None = None  # the client's, for the audit trail

    def parameters(self) -> tuple[Any, ...]:
        """$1 to $9 of `_inserting`."""
        return (self.message_id, self.sender_id, self.expires_at, self.high_priority,
                self.reply_to, self.key.key_id, self.key.wrapped, self.subject, self.body)

    def audit_parameters(self) -> tuple[Any, ...]:
        """The client's address and whether the audit trail records the send."""
        return self.address, self.audited

    def event_parameters(self) -> tuple[Any, ...]:
        """The event's type and payload, and the expirers' channel and notice."""
        return (self.event_type.value, self.event_payload, *(self.announcement or (None, None)))


async def insert_message(
    conn: asyncpg.Connection, new: NewMessage, *, addressees: Sequence[Addressee],
    recipient_ids: Sequence[UUID],
) -> Inserted:
    """Insert a message with its To field, its recipients (distinct) and one event for each of
    them (one more unread for each), and notify the expirers on commit, all in one statement:
    atomic even outside a transaction."""
    rows = await conn.fetch(
        _inserting(
            recipients="$13::uuid[]",
            addressees="""select position - 1, kind, target_id, name
                          from unnest($10::text[], $11::uuid[], $12::text[])
                               with ordinality as a(kind, target_id, name, position)""",
            allowed="true", type_="$14", payload="$15", channel="$16", notice="$17",
            audited=("$18", "$19"),
        ),
        *new.parameters(),
        [a.kind.value for a in addressees],
        [a.id for a in addressees],
        [a.name for a in addressees],
        list(recipient_ids),
        *new.event_parameters(),
        *new.audit_parameters(),
    )
    if len(rows) != len(recipient_ids):
        raise RuntimeError("a user without an event counter cannot receive events")
    return _inserted(rows)


# The users named ($10, distinct, in order) with their names, looked up once; the enabled ones
# receive, only if every one was found and one is enabled (`allowed`).
_NAMED_USERS = """named as materialized (
               select t.position - 1 as position, 'user' as kind, u.id as target_id,
                      u.display_name as name, not u.disabled as enabled
               from unnest($10::uuid[]) with ordinality as t(id, position)
               join users u on u.id = t.id),
           checked as materialized (
               select count(*) = cardinality($10::uuid[]) and bool_or(enabled) as allowed,
                      coalesce(array_agg(target_id order by target_id)
                               filter (where enabled), '{}') as enabled_ids
               from named),
           receiving as materialized (
               select case when allowed then enabled_ids else '{}'::uuid[] end as ids
               from checked),
           """


async def insert_message_to_users(
    conn: asyncpg.Connection, new: NewMessage, user_ids: Sequence[UUID]
) -> Inserted | None:
    """As `insert_message`, to the users named (distinct, in order), looked up by the same
    statement: the To field names them as they are named now, and the enabled ones receive
    it. None, with nothing written, when one of them does not exist or none is enabled (the
    caller finds out which, and why)."""
    rows = await conn.fetch(
        _inserting(
            recipients="((select ids from receiving)::uuid[])",
            addressees="select position, kind, target_id, name from named",
            allowed="coalesce((select allowed from checked), false)",
            type_="$11", payload="$12", channel="$13", notice="$14", audited=("$15", "$16"),
            prelude=_NAMED_USERS,
        ),
        *new.parameters(), list(user_ids), *new.event_parameters(), *new.audit_parameters(),
    )
    return _inserted(rows) if rows else None


def _inserted(rows: Sequence[asyncpg.Record]) -> Inserted:
    return Inserted(
        rows[0]["sent_at"],
        {row["user_id"]: row["seq"] for row in rows},
        {row["user_id"]: row["unread"] for row in rows},
    )


async def get_message(
    conn: asyncpg.Connection, *, message_id: UUID, viewer_id: UUID, with_body: bool = False
) -> SealedMessage | None:
    """The message as `viewer_id` may see it: as its sender or a recipient who kept it."""
    body = ", m.body" if with_body else ""
    row = await conn.fetchrow(
        f"""select {_HEADER}{body}, r.read_at,
                   (m.sender_id = $2) as is_sender, (r.user_id is not null) as is_recipient
            from messages m
            join users s on s.id = m.sender_id
            left join message_recipients r
                   on r.message_id = m.id and r.user_id = $2 and r.deleted_at is null
            where m.id = $1 and {_LIVE} and (m.sender_id = $2 or r.user_id is not null)""",
        message_id, viewer_id,
    )
    return None if row is None else _sealed(row, with_body=with_body)


async def list_inbox(
    conn: asyncpg.Connection, user_id: UUID, before: Cursor | None, limit: int
) -> list[SealedMessage]:
    rows = await conn.fetch(
        f"""{_FROM_INBOX}
            where r.user_id = $1 and r.deleted_at is null and {_LIVE_FOR_RECIPIENT}
              and (r.sent_at, r.message_id) < {_BEFORE}
            order by r.sent_at desc, r.message_id desc limit $4""",
        user_id, before and before.sent_at, before and before.id, limit,
    )
    return [_sealed(row) for row in rows]


async def list_sent(
    conn: asyncpg.Connection, user_id: UUID, before: Cursor | None, limit: int
) -> list[SealedMessage]:
    rows = await conn.fetch(
        f"""select {_HEADER}, r.read_at, true as is_sender, (r.user_id is not null) as is_recipient
            from messages m
            join users s on s.id = m.sender_id
            left join message_recipients r
                   on r.message_id = m.id and r.user_id = $1 and r.deleted_at is null
            where m.sender_id = $1 and {_LIVE}
              and (m.sent_at, m.id) < {_BEFORE}
            order by m.sent_at desc, m.id desc limit $4""",
        user_id, before and before.sent_at, before and before.id, limit,
    )
    return [_sealed(row) for row in rows]


async def list_unread_high_priority(
    conn: asyncpg.Connection, user_id: UUID, limit: int
) -> list[SealedMessage]:
    rows = await conn.fetch(
        f"""{_FROM_INBOX}
            where r.user_id = $1 and r.read_at is null and r.deleted_at is null
              and r.high_priority and {_LIVE_FOR_RECIPIENT}
            order by r.sent_at desc, r.message_id desc limit $2""",
        user_id, limit,
    )
    return [_sealed(row) for row in rows]


async def unread_state(
    conn: asyncpg.Connection, user_id: UUID, limit: int
) -> tuple[int, int, list[SealedMessage]]:
    """What `hello` reports, in one statement (one snapshot, no transaction): the user's last
    seq, their unread count less the unread messages expired and not deleted yet, and their
    unread high-priority messages, newest first (at most `limit`)."""
    rows = await conn.fetch(
        f"""select c.last_seq as state_last_seq, {UNREAD_NOW} as state_unread, shown.*
            from event_counters c
            left join lateral (
                {_FROM_INBOX}
                where r.user_id = $1 and r.read_at is null and r.deleted_at is null
                  and r.high_priority and {_LIVE_FOR_RECIPIENT}
                order by r.sent_at desc, r.message_id desc limit $2) shown on true
            where c.user_id = $1""",
        user_id, limit,
    )
    if not rows:
        return 0, 0, []
    first = rows[0]
    shown = [_sealed(row) for row in rows if row["id"] is not None]
    return int(first["state_last_seq"]), int(first["state_unread"]), shown


async def addressees_of(
    conn: asyncpg.Connection, message_ids: Sequence[UUID]
) -> dict[UUID, tuple[Addressee, ...]]:
    rows = await conn.fetch(
        """select message_id, kind, target_id, name from message_addressees
           where message_id = any($1::uuid[]) order by message_id, position""",
        list(message_ids),
    )
    found: dict[UUID, list[Addressee]] = {}
    for row in rows:
        found.setdefault(row["message_id"], []).append(
            Addressee(AddresseeKind(row["kind"]), row["target_id"], row["name"])
        )
    return {key: tuple(value) for key, value in found.items()}


async def mark_read(
    conn: asyncpg.Connection, *, message_id: UUID, user_id: UUID
) -> ReadMark | None:
    """Mark read for a recipient who kept it; the first time only sets `read_at` and counts."""
    row = await conn.fetchrow(
        f"""with marked as (
                update message_recipients r set read_at = statement_timestamp()
                where r.message_id = $1 and r.user_id = $2 and r.deleted_at is null
                  and r.read_at is null and {_LIVE_FOR_RECIPIENT}
                returning r.read_at),
            counted as (
                update messages m set read_count = m.read_count + 1
                from marked where m.id = $1
                returning m.sender_id)
            select marked.read_at, counted.sender_id from marked, counted""",
        message_id, user_id,
    )
    if row is not None:
        return ReadMark(row["read_at"], True, row["sender_id"])
    row = await conn.fetchrow(
        f"""select r.read_at, m.sender_id from message_recipients r
            join messages m on m.id = r.message_id
            where r.message_id = $1 and r.user_id = $2 and r.deleted_at is null
              and r.read_at is not null and {_LIVE}""",
        message_id, user_id,
    )
    return None if row is None else ReadMark(row["read_at"], False, row["sender_id"])


async def hide_for_recipient(
    conn: asyncpg.Connection, *, message_id: UUID, user_id: UUID
) -> Holder | None:
    """Remove a message from one recipient's inbox; None when they did not have it."""
    row = await conn.fetchrow(
        f"""update message_recipients r set deleted_at = statement_timestamp()
            where r.message_id = $1 and r.user_id = $2 and r.deleted_at is null
              and {_LIVE_FOR_RECIPIENT}
            returning (r.read_at is null) as had_unread""",
        message_id, user_id,
    )
    return None if row is None else Holder(user_id, row["had_unread"])


async def delete_sent_message(
    conn: asyncpg.Connection, *, message_id: UUID, sender_id: UUID
) -> list[Holder] | None:
    """Delete a live message of `sender_id` everywhere; return the recipients who still had it."""
    holders = await conn.fetch(
        f"""select r.user_id, (r.read_at is null) as had_unread
            from messages m join message_recipients r on r.message_id = m.id
            where m.id = $1 and m.sender_id = $2 and r.deleted_at is null and {_LIVE}
            order by r.user_id for update of r""",
        message_id, sender_id,
    )
    deleted = await conn.fetchval(
        f"delete from messages m where m.id = $1 and m.sender_id = $2 and {_LIVE} returning true",
        message_id, sender_id,
    )
    if not deleted:
        return None
    return [Holder(row["user_id"], row["had_unread"]) for row in holders]


async def list_for_recipient(
    conn: asyncpg.Connection, user_id: UUID, message_ids: Sequence[UUID]
) -> list[SealedMessage]:
    """The given messages as one recipient sees them now; gone or expired ones are left out."""
    rows = await conn.fetch(
        f"""{_FROM_INBOX}
            where r.user_id = $1 and r.message_id = any($2::uuid[]) and r.deleted_at is null
              and {_LIVE_FOR_RECIPIENT}""",
        user_id, list(message_ids),
    )
    return [_sealed(row) for row in rows]


async def list_arrivals(
    conn: asyncpg.Connection, message_ids: Sequence[UUID]
) -> list[SealedMessage]:
    """The given live messages as any of their recipients first sees them: unread."""
    rows = await conn.fetch(
        f"""select {_HEADER}, null::timestamptz as read_at, false as is_sender,
                   true as is_recipient
            from messages m join users s on s.id = m.sender_id
            where m.id = any($1::uuid[]) and {_LIVE}""",
        list(message_ids),
    )
    return [_sealed(row) for row in rows]
