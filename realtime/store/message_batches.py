"""Many one-to-one messages written by one statement: what concurrent sends share."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from realtime.models import EventType
from realtime.store.audit import recording
from realtime.store.messages import Inserted, NewMessage

# Each message of the batch ($1 to $11, arrays of one element per message, in order) goes to
# its one user if that user exists and is enabled: then the message, its To field (that user,
# named as now), its recipient row and the user's `message.new` event are written, and the
# expirers are notified when it expires. The users' event counters are locked in id order (as
# `events.appending` does), each bumped once by the number of messages it gets, whose events
# take its next seqs in the batch's order. A message whose user is missing or disabled writes
# nothing and yields no row.
_INSERT_BATCH = f"""with batch as materialized (
               select * from unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::bool[],
                                    $5::text[], $6::bytea[], $7::bytea[], $8::bytea[],
                                    $9::uuid[], $10::text[], $11::text[], $13::text[],
                                    $14::bool[])
                   with ordinality as b(id, sender_id, expires_at, high_priority, key_id,
                                        wrapped_key, subject, body, recipient_id, channel,
                                        notice, address, audited, position)),
           receiving as materialized (
               select b.*, u.display_name as name
               from batch b join users u on u.id = b.recipient_id and not u.disabled),
           message as (
               insert into messages (id, sender_id, sent_at, expires_at, high_priority, key_id,
                                     wrapped_key, subject, body, recipient_count)
               select id, sender_id, statement_timestamp(), expires_at, high_priority, key_id,
                      wrapped_key, subject, body, 1
               from receiving),
           addressees as (
               insert into message_addressees (message_id, position, kind, target_id, name)
               select id, 0, 'user', recipient_id, name from receiving),
           recipients as (
               insert into message_recipients
                   (message_id, user_id, sent_at, expires_at, high_priority)
               select id, recipient_id, statement_timestamp(), expires_at, high_priority
               from receiving),
           arriving as materialized (
               select recipient_id, count(*) as arrived from receiving group by recipient_id),
           locked as (
               select user_id from event_counters
               where user_id in (select recipient_id from arriving) order by user_id for update),
           bumped as materialized (
               update event_counters c set last_seq = c.last_seq + a.arrived,
                                           unread = c.unread + a.arrived
               from locked join arriving a on a.recipient_id = locked.user_id
               where c.user_id = locked.user_id
               returning c.user_id, c.last_seq - a.arrived as seq_before,
                         c.unread - a.arrived as unread_before),
           numbered as materialized (
               select r.position, r.id, r.recipient_id,
                      row_number() over (partition by r.recipient_id order by r.position) as nth
               from receiving r),
           appended as (
               insert into events (user_id, seq, type, payload)
               select n.recipient_id, b.seq_before + n.nth, $12,
                      jsonb_build_object('message_id', n.id::text,
                                         'unread', b.unread_before + n.nth)
               from numbered n join bumped b on b.user_id = n.recipient_id
               returning user_id, seq),
           announced as (
               select pg_notify(channel, notice) from receiving where channel is not null),
           {recording('''select sender_id, 'message.sent', 'message', id, address, 'ok',
                                 '{"recipients": 1}'::jsonb
                          from receiving where audited''')}
           select n.position, n.recipient_id, b.seq_before + n.nth as seq,
                  b.unread_before + n.nth as unread, statement_timestamp() as sent_at,
                  (select count(*) from appended) as appended,
                  (select count(*) from announced) as announced
           from numbered n join bumped b on b.user_id = n.recipient_id"""


async def insert_one_to_one(
    conn: asyncpg.Connection, sends: Sequence[tuple[NewMessage, UUID]]
) -> list[Inserted | None]:
    """Write each message (a `message.new` to its one user, with no reply and no
    attachments) with its To field, recipient and event, all in one statement: atomic even
    outside a transaction. For each, in order, what was written, or None when its user does
    not exist or is disabled (nothing of it was written; the others were)."""
    if any(new.event_type is not EventType.MESSAGE_NEW or new.reply_to is not None
           or new.event_payload != {"message_id": str(new.message_id)} for new, _ in sends):
        raise ValueError("a batch holds new messages that reply to nothing")
    announcements = [new.announcement or (None, None) for new, _ in sends]
    rows = await conn.fetch(
        _INSERT_BATCH,
        [new.message_id for new, _ in sends],
        [new.sender_id for new, _ in sends],
        [new.expires_at for new, _ in sends],
        [new.high_priority for new, _ in sends],
        [new.key.key_id for new, _ in sends],
        [new.key.wrapped for new, _ in sends],
        [new.subject for new, _ in sends],
        [new.body for new, _ in sends],
        [recipient for _, recipient in sends],
        [channel for channel, _ in announcements],
        [notice for _, notice in announcements],
        EventType.MESSAGE_NEW.value,
        [new.address for new, _ in sends],
        [new.audited for new, _ in sends],
    )
    written: list[Inserted | None] = [None] * len(sends)
    for row in rows:
        written[row["position"] - 1] = Inserted(
            row["sent_at"], {row["recipient_id"]: row["seq"]},
            {row["recipient_id"]: row["unread"]},
        )
    return written
