"""What an administrator's system messages mean: posted to every user, shown until dismissed
(for good, or until the next sign-in for a reminder), withdrawn or ended for everyone."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from realtime.audit import Audit
from realtime.crypto import Keyring, row_name
from realtime.db import Database
from realtime.drafts import check_ahead
from realtime.errors import Conflict, NotFound
from realtime.events import EventSink
from realtime.models import (
    Event,
    EventType,
    SealedSystemMessage,
    SystemEnd,
    SystemMessage,
    SystemMode,
    User,
)
from realtime.store import events as event_store
from realtime.store import expiry as expiry_store
from realtime.store import system_messages as store

MAX_ACTIVE = 20  # system messages shown at once (not withdrawn, not ended)
MAX_SUBJECT = 255  # characters
MAX_BODY = 4_000  # characters: every user's hello carries every active one
TABLE = "system_messages"

EndScheduled = Callable[[datetime], None]


def _ignore(ends_at: datetime) -> None:
    """The default: no expirer listens."""


@dataclass(frozen=True)
class SystemDraft:
    subject: str
    body: str
    mode: SystemMode
    ends_at: datetime | None = None


def withdrawn_payload(message_id: UUID, reason: SystemEnd) -> dict[str, Any]:
    """The payload of `system.withdrawn`, for the domain and the expirer alike."""
    return {"id": str(message_id), "reason": reason.value}


def to_every_user(
    type_: EventType, payload: dict[str, Any], appended: Sequence[tuple[UUID, int]]
) -> list[Event]:
    return [Event(user_id, seq, type_, payload) for user_id, seq in appended]


class SystemMessages:
    def __init__(
        self, db: Database, keyring: Keyring, *, sink: EventSink,
        end_scheduled: EndScheduled | None = None, audit: Audit | None = None,
    ) -> None:
        """`sink` takes the events of each commit; `end_scheduled` is told of each end time a
        new message brings (the expirer's wake-up)."""
        self._db = db
        self._keyring = keyring
        self._sink = sink
        self._end_scheduled = end_scheduled or _ignore
        self._audit = audit or Audit(db)

    async def post(self, author: User, draft: SystemDraft) -> SystemMessage:
        """Store the message and give every enabled user its `system.message`, then publish;
        Conflict when MAX_ACTIVE are shown already."""
        check_ahead(draft.ends_at, "ends_at", "end time")
        message_id = uuid.uuid4()
        envelope, key = self._keyring.new_envelope(row_name(TABLE, message_id))
        sealed = SealedSystemMessage(
            id=message_id, mode=draft.mode, created_at=datetime.now(UTC), ends_at=draft.ends_at,
            key=key, subject=envelope.seal("subject", draft.subject),
            body=envelope.seal("body", draft.body),
        )
        payload = {"id": str(message_id)}
        async with self._db.transaction() as conn:
            if await store.lock_creation(conn) >= MAX_ACTIVE:
                raise Conflict(
                    f"at most {MAX_ACTIVE} system messages are shown at once: withdraw one first"
                )
            await store.insert(conn, sealed, author.id)
            appended = await event_store.append_to_every_user(
                conn, EventType.SYSTEM_MESSAGE, payload
            )
            if draft.ends_at is not None:
                await expiry_store.announce(conn, draft.ends_at)
            await self._audit.record(self._audit.new(
                "system_message.posted", target=("system_message", message_id),
                detail={"mode": draft.mode.value, "users": len(appended)}), conn=conn)
        if draft.ends_at is not None:
            self._end_scheduled(draft.ends_at)
        await self._sink.committed(to_every_user(EventType.SYSTEM_MESSAGE, payload, appended))
        return self._open(sealed)

    async def list_active(self) -> list[SystemMessage]:
        """Every message shown now, newest first (the administrators' list)."""
        async with self._db.connection() as conn:
            return [self._open(m) for m in await store.list_active(conn)]

    async def withdraw(self, message_id: UUID) -> None:
        """Delete the message, with its key, and tell every enabled user; NotFound if none."""
        payload = withdrawn_payload(message_id, SystemEnd.WITHDRAWN)
        async with self._db.transaction() as conn:
            if not await store.delete(conn, message_id):
                raise NotFound("no such system message")
            appended = await event_store.append_to_every_user(
                conn, EventType.SYSTEM_WITHDRAWN, payload
            )
            await self._audit.record(self._audit.new(
                "system_message.withdrawn", target=("system_message", message_id)), conn=conn)
        await self._sink.committed(to_every_user(EventType.SYSTEM_WITHDRAWN, payload, appended))

    async def shown_to(self, user_id: UUID, session_id: UUID | None) -> list[SystemMessage]:
        """What the user has to see in that session now, oldest first."""
        async with self._db.connection() as conn:
            return [self._open(m) for m in await store.shown_to(conn, user_id, session_id)]

    async def dismiss(self, user_id: UUID, session_id: UUID, message_id: UUID) -> None:
        """Hide the message from the user (a reminder: until their next sign-in); their open
        tabs are told by `system.dismissed`. NotFound for a message not shown any more."""
        async with self._db.transaction() as conn:
            changed = await store.dismiss(conn, message_id, user_id, session_id)
            if changed is None:
                raise NotFound("no such system message")
            events = await event_store.append_events(
                conn, [user_id], EventType.SYSTEM_DISMISSED, {"id": str(message_id)}
            ) if changed else []
        await self._sink.committed(events)

    async def active(self, message_ids: Sequence[UUID]) -> dict[UUID, SystemMessage]:
        """The given messages that are still shown to anyone, for their live frames."""
        async with self._db.connection() as conn:
            return {m.id: self._open(m) for m in await store.by_ids(conn, message_ids)}

    async def as_seen_by(
        self, user_id: UUID, message_ids: Sequence[UUID]
    ) -> dict[UUID, SystemMessage]:
        """The given messages that the user has not dismissed and that are still shown, for a
        replay."""
        async with self._db.connection() as conn:
            found = await store.shown_to(conn, user_id, None, only=message_ids)
            return {m.id: self._open(m) for m in found}

    def _open(self, sealed: SealedSystemMessage) -> SystemMessage:
        envelope = self._keyring.open_envelope(row_name(TABLE, sealed.id), sealed.key)
        return SystemMessage(
            id=sealed.id, subject=envelope.open_text("subject", sealed.subject),
            body=envelope.open_text("body", sealed.body), mode=sealed.mode,
            created_at=sealed.created_at, ends_at=sealed.ends_at,
        )

