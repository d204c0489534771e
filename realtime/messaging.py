"""What sending, listing, reading, closing, deleting and recalling a message mean."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from uuid import UUID

from realtime import codec, metrics
from realtime.attachments import Attachments, Prepared
from realtime.audit import Audit, requester
from realtime.budgets import Budgets
from realtime.crypto import Envelope, Keyring, row_name, same_secret
from realtime.db import Connection, Database
from realtime.drafts import Draft, address, check_draft
from realtime.errors import Conflict, NotFound
from realtime.events import EventSink
from realtime.models import (
    AddresseeKind,
    AttachmentInfo,
    Box,
    DeleteReason,
    Event,
    EventType,
    Message,
    MessageHeader,
    MessagePage,
    SealedMessage,
    SendReceipt,
    User,
)
from realtime.send_batches import SendBatches
from realtime.store import attachments as attachment_store
from realtime.store import events as event_store
from realtime.store import expiry as expiry_store
from realtime.store import files as file_store
from realtime.store import idempotency
from realtime.store import messages as message_store

HIGH_PRIORITY_LIMIT = 100
# A user's sends a minute: its bucket's key is this and the user's id.
SEND_BUDGET = "send:"
SENDS = "messages sent"  # what the refusal says there are too many of

ExpiryScheduled = Callable[[datetime], None]


def _ignore(expires_at: datetime) -> None:
    """The default: no expirer listens."""


class Messaging:
    def __init__(
        self, db: Database, keyring: Keyring, attachments: Attachments, *, sink: EventSink,
        budgets: Budgets, sends_per_minute: int, copies_per_minute: int,
        expiry_scheduled: ExpiryScheduled | None = None, audit: Audit | None = None,
    ) -> None:
        """`sink` takes the events of each commit; `expiry_scheduled` is told of each expiry
        time a committed send brings (the expirer's wake-up; none on a node that does not
        expire)."""
        self._db = db
        self._keyring = keyring
        self._attachments = attachments
        self._budgets = budgets
        self._sends_per_minute = sends_per_minute
        self._copies_per_minute = copies_per_minute
        self._sink = sink
        self._expiry_scheduled = expiry_scheduled or _ignore
        self._batches = SendBatches(db)
        self._audit = audit or Audit(db)

    async def send(
        self, sender: User, draft: Draft, idempotency_key: str | None, *, spent: bool = False
    ) -> SendReceipt:
        """Commit the message and one `message.new` per recipient, then publish them.

        Without an idempotency key or attachments the message is written by one statement, with
        no transaction around it; otherwise the key's claim, the message, its attachments (copies
        taken at this moment) and the answer commit together. Each send spends one unit of the
        sender's sends a minute, and one of their vault items copied a minute for each entry
        and folder its attachments copy, except a retry of a key already answered (it sends
        nothing). `spent`: the send's unit was taken already, with its authentication."""
        await self._spend(sender, draft, idempotency_key, spent=spent)
        if idempotency_key is None and not draft.attachments:
            draft = check_draft(sender, draft)
            receipt, events, arrival = await self._insert_without_transaction(sender, draft)
        else:
            async with self._db.transaction() as conn:
                if idempotency_key is not None:
                    fingerprint = self._keyring.fingerprint(draft.canonical())
                    claim = await idempotency.claim_key(
                        conn, sender.id, idempotency_key, fingerprint
                    )
                    if not claim.claimed:  # a retry gets the first answer, whatever changed
                        return _earlier_receipt(claim, fingerprint)
                draft = check_draft(sender, draft)
                prepared = await self._attachments.prepare(conn, sender, draft.attachments)
                receipt, events, arrival = await self._insert(conn, sender, draft, prepared)
                if idempotency_key is not None:
                    await idempotency.store_response(
                        conn, sender.id, idempotency_key,
                        {"id": receipt.id, "sent_at": receipt.sent_at,
                         "recipients": receipt.recipients},
                    )
        metrics.messages_sent.inc()
        if draft.expires_at is not None:
            self._expiry_scheduled(draft.expires_at)
        await self._committed(events, {receipt.id: arrival})
        return receipt

    async def _spend(
        self, sender: User, draft: Draft, idempotency_key: str | None, *, spent: bool
    ) -> None:
        """Take one unit of the sender's sends a minute (unless `spent`), and what the copies
        of its attachments cost of their vault items copied a minute (measured, not read: a
        copy too large is refused here); RateLimited when there is not enough."""
        if idempotency_key is not None:
            async with self._db.connection() as conn:
                if await idempotency.answered(conn, sender.id, idempotency_key):
                    return
        if not spent:
            await self._budgets.spend(
                f"{SEND_BUDGET}{sender.id}", per_minute=self._sends_per_minute, what=SENDS
            )
        if draft.attachments:
            check_draft(sender, draft)
            items = await self._attachments.measure(sender, draft.attachments)
            if items:
                await self._budgets.spend(
                    f"copies:{sender.id}", per_minute=self._copies_per_minute, units=items,
                    what="vault entries and folders copied into messages",
                )

    async def _insert_without_transaction(
        self, sender: User, draft: Draft
    ) -> tuple[SendReceipt, list[Event], Message]:
        """`_insert` for a send without attachments, outside a transaction. One to one user and
        not a reply, it is written with the node's other such sends of the moment
        (`SendBatches`)."""
        targets = {(target.kind, target.id) for target in draft.to}
        only = next(iter(targets)) if len(targets) == 1 else None
        if only is None or only[0] is not AddresseeKind.USER or draft.reply_to is not None:
            async with self._db.connection() as conn:
                return await self._insert(conn, sender, draft, [])
        new, _ = self._sealed(sender, draft)
        inserted = await self._batches.write(new, only[1])
        if inserted is None:  # the user is unknown or disabled: found out, and said
            async with self._db.connection() as conn:
                inserted = await self._write(conn, sender, new, draft)
        return self._outcome(sender, draft, new.message_id, inserted, ())

    async def _insert(
        self, conn: Connection, sender: User, draft: Draft, prepared: Sequence[Prepared]
    ) -> tuple[SendReceipt, list[Event], Message]:
        """Write the message; return the answer, its events, and the message as its recipients
        first see it (what `message.new` shows, without reading it back)."""
        if draft.reply_to is not None and not await message_store.get_message(
            conn, message_id=draft.reply_to, viewer_id=sender.id
        ):
            raise NotFound("the message replied to was not found")
        new, envelope = self._sealed(sender, draft)
        inserted = await self._write(conn, sender, new, draft)
        attachments = await self._attachments.write(conn, new.message_id, envelope, prepared)
        return self._outcome(sender, draft, new.message_id, inserted, attachments)

    def _sealed(self, sender: User, draft: Draft) -> tuple[message_store.NewMessage, Envelope]:
        """The message to write, with a new id and data key, and the key's envelope."""
        message_id = uuid.uuid4()
        envelope, key = self._keyring.new_envelope(row_name("messages", message_id))
        new = message_store.NewMessage(
            message_id=message_id, sender_id=sender.id, expires_at=draft.expires_at,
            high_priority=draft.high_priority, reply_to=draft.reply_to, key=key,
            subject=envelope.seal("subject", draft.subject),
            body=envelope.seal("body", draft.body),
            event_type=EventType.MESSAGE_NEW, event_payload={"message_id": str(message_id)},
            announcement=(  # to the other nodes' expirers
                None if draft.expires_at is None else expiry_store.announcement(draft.expires_at)
            ),
            audited=self._audit.enabled, address=requester().address,
        )
        return new, envelope

    async def _write(
        self, conn: Connection, sender: User, new: message_store.NewMessage, draft: Draft
    ) -> message_store.Inserted:
        """Write the message to its recipients: NotFound (or another refusal) when they
        cannot have it."""
        inserted = None
        if all(target.kind is AddresseeKind.USER for target in draft.to):
            # One statement names the users, checks them and writes the message.
            inserted = await message_store.insert_message_to_users(
                conn, new, list(dict.fromkeys(target.id for target in draft.to))
            )
        if inserted is None:  # groups, a user unknown, or none enabled: found out, and said
            addressing = await address(conn, sender, draft.to)
            inserted = await message_store.insert_message(
                conn, new, addressees=addressing.addressees,
                recipient_ids=addressing.recipients,
            )
        return inserted

    def _outcome(
        self, sender: User, draft: Draft, message_id: UUID, inserted: message_store.Inserted,
        attachments: tuple[AttachmentInfo, ...],
    ) -> tuple[SendReceipt, list[Event], Message]:
        """The answer of a message written, its events, and the message as its recipients
        first see it."""
        events = [
            Event(user_id, seq, EventType.MESSAGE_NEW,
                  {"message_id": str(message_id), "unread": inserted.unread[user_id]})
            for user_id, seq in inserted.seqs.items()
        ]
        receipt = SendReceipt(message_id, inserted.sent_at, len(inserted.seqs))
        return receipt, events, _arrival(sender, draft, receipt, attachments)

    async def list_messages(
        self, user: User, box: Box, limit: int, before: str | None
    ) -> MessagePage:
        cursor = _parse_cursor(before) if before else None
        async with self._db.connection() as conn:
            if box is Box.INBOX:
                sealed = await message_store.list_inbox(conn, user.id, cursor, limit + 1)
            else:
                sealed = await message_store.list_sent(conn, user.id, cursor, limit + 1)
            page = sealed[:limit]
            opened = await self._open_all(conn, page)
        next_cursor = None
        if len(sealed) > limit:
            last = page[-1].header
            next_cursor = codec.encode_cursor([codec.format_time(last.sent_at), str(last.id)])
        return MessagePage(tuple(opened), next_cursor)

    async def get_message(self, user: User, message_id: UUID) -> Message:
        async with self._db.connection() as conn:
            sealed = await message_store.get_message(
                conn, message_id=message_id, viewer_id=user.id, with_body=True
            )
            if sealed is None:
                raise NotFound("no such message")
            (message,) = await self._open_all(conn, [sealed])
        return message

    async def mark_read(self, user: User, message_id: UUID) -> datetime:
        """Close a message: the first time, the reader and the sender are told."""
        async with self._db.transaction() as conn:
            mark = await message_store.mark_read(conn, message_id=message_id, user_id=user.id)
            if mark is None:
                raise NotFound("no such message")
            events: list[Event] = []
            if mark.newly_read:
                payload = {
                    "message_id": str(message_id),
                    "reader": {"id": str(user.id), "display_name": user.display_name},
                    "read_at": codec.format_time(mark.read_at),
                }
                events = await event_store.append_events(
                    conn, [user.id, mark.sender_id], EventType.MESSAGE_READ, payload,
                    unread_gone_for=[user.id],
                )
                await self._audit.record(self._audit.new(
                    "message.read", target=("message", message_id)), conn=conn)
        await self._committed(events)
        return mark.read_at

    async def delete_message(self, user: User, message_id: UUID) -> DeleteReason:
        """The sender recalls it from everyone; a recipient removes it from their inbox."""
        async with self._db.transaction() as conn:
            file_ids = await attachment_store.files_of(conn, [message_id])
            holders = await message_store.delete_sent_message(
                conn, message_id=message_id, sender_id=user.id
            )
            if holders is not None:
                await file_store.release_files(conn, file_ids)
                reason = DeleteReason.RECALLED
                user_ids = [user.id, *(holder.user_id for holder in holders)]
            else:
                hidden = await message_store.hide_for_recipient(
                    conn, message_id=message_id, user_id=user.id
                )
                if hidden is None:
                    raise NotFound("no such message")
                reason = DeleteReason.DELETED
                user_ids = [user.id]
                holders = [hidden]
            events = await event_store.append_events(
                conn,
                user_ids,
                EventType.MESSAGE_DELETED,
                {"message_id": str(message_id), "reason": reason.value},
                unread_gone_for=[holder.user_id for holder in holders if holder.had_unread],
            )
            await self._audit.record(self._audit.new(
                f"message.{reason.value}", target=("message", message_id),
                detail={"recipients": len(holders)} if reason is DeleteReason.RECALLED else {},
            ), conn=conn)
        await self._committed(events)
        return reason

    async def unread(self, user: User) -> tuple[int, list[Message]]:
        """The unread count and the unread high-priority messages, newest first."""
        async with self._db.connection() as conn:
            return await self._unread(conn, user)

    async def snapshot(self, user: User) -> tuple[int, int, list[Message]]:
        """The user's latest event seq with the unread state as of exactly that seq: one
        statement, and more only to open unread high-priority messages."""
        async with self._db.connection() as conn:
            seq, count, sealed = await message_store.unread_state(
                conn, user.id, HIGH_PRIORITY_LIMIT
            )
            return seq, count, await self._open_all(conn, sealed) if sealed else []

    async def _unread(self, conn: Connection, user: User) -> tuple[int, list[Message]]:
        count = await event_store.unread_count(conn, user.id)
        sealed = await message_store.list_unread_high_priority(conn, user.id, HIGH_PRIORITY_LIMIT)
        return count, await self._open_all(conn, sealed)

    async def arrivals(self, message_ids: Sequence[UUID]) -> dict[UUID, Message]:
        """New messages as their recipients first see them, for `message.new` frames."""
        async with self._db.connection() as conn:
            sealed = await message_store.list_arrivals(conn, message_ids)
            return {m.header.id: m for m in await self._open_all(conn, sealed)}

    async def as_seen_by(self, user_id: UUID, message_ids: Sequence[UUID]) -> dict[UUID, Message]:
        """The given messages as one recipient sees them now: gone or expired ones left out."""
        async with self._db.connection() as conn:
            sealed = await message_store.list_for_recipient(conn, user_id, message_ids)
            return {m.header.id: m for m in await self._open_all(conn, sealed)}

    async def _committed(
        self, events: list[Event], arrivals: Mapping[UUID, Message] | None = None
    ) -> None:
        """Count the events a transaction wrote, then hand them to the sink (with the new
        messages it sent, as their recipients first see them)."""
        metrics.events_appended.inc(len(events))
        await self._sink.committed(events, arrivals)

    async def _open_all(self, conn: Connection, sealed: Sequence[SealedMessage]) -> list[Message]:
        """Decrypt subjects (and bodies) and attachments' names, adding the To field for the
        sender."""
        own = [s.header.id for s in sealed if s.header.is_sender]
        addressees = await message_store.addressees_of(conn, own) if own else {}
        attached = (
            await attachment_store.headers_of(conn, [s.header.id for s in sealed])
            if sealed else {}
        )
        opened = []
        for item in sealed:
            header = item.header
            envelope = self._keyring.open_envelope(row_name("messages", header.id), item.key)
            opened.append(
                Message(
                    header=header,
                    subject=envelope.open_text("subject", item.subject),
                    body=None if item.body is None else envelope.open_text("body", item.body),
                    addressees=addressees.get(header.id, ()),
                    attachments=self._attachments.describe(
                        envelope, attached.get(header.id, ())
                    ),
                )
            )
        return opened


def _arrival(
    sender: User, draft: Draft, receipt: SendReceipt, attachments: tuple[AttachmentInfo, ...]
) -> Message:
    """A message just sent, as its recipients first see it: unread."""
    header = MessageHeader(
        id=receipt.id, sender_id=sender.id, sender_display_name=sender.display_name,
        sent_at=receipt.sent_at,
        expires_at=None if draft.expires_at is None else draft.expires_at.astimezone(UTC),
        high_priority=draft.high_priority, reply_to=draft.reply_to, read_at=None,
        is_sender=False, is_recipient=True, recipient_count=receipt.recipients, read_count=0,
    )
    return Message(header, subject=draft.subject, attachments=attachments)


def _earlier_receipt(claim: idempotency.Claim, fingerprint: bytes) -> SendReceipt:
    if not same_secret(claim.request_hash, fingerprint) or claim.response is None:
        raise Conflict("this Idempotency-Key was used for a different message")
    response = claim.response
    return SendReceipt(
        UUID(response["id"]),
        datetime.fromisoformat(response["sent_at"]),
        int(response["recipients"]),
    )


def _parse_cursor(cursor: str) -> message_store.Cursor:
    parts = codec.decode_cursor(cursor)
    try:
        sent_at, message_id = parts
        if not isinstance(sent_at, str) or not isinstance(message_id, str):
            raise TypeError("a cursor holds two strings")
        moment = datetime.fromisoformat(sent_at)
        if moment.tzinfo is None:
            raise ValueError("a cursor's time names its zone")
        return message_store.Cursor(moment.astimezone(UTC), UUID(message_id))
    except (TypeError, ValueError, OverflowError):
        raise codec.cursor_error() from None
