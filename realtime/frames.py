"""Events turned into the contract's websocket frames: live after a commit, or replayed."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from realtime import codec
from realtime.api.auth import me_view
from realtime.api.messages import summary_view
from realtime.events import EventLog
from realtime.hub import Replayed, frame_payload
from realtime.messaging import Messaging
from realtime.models import Event, EventType, Message, User

REPLAY_PAGE = 200  # events a resume fetches at a time, the connection released in between


def summary_json(message: Message) -> bytes:
    """A message summary in the contract's JSON, made once however many receive it."""
    return codec.encode(summary_view(message).model_dump(mode="python"))


def event_frame(event: Event, summaries: dict[UUID, bytes]) -> bytes | None:
    """The frame of one event, with the user's unread count right after it (stored in its
    payload; an event logged before counts were kept has none); None for a new message that is
    gone already."""
    if event.type is EventType.MESSAGE_NEW:
        summary = summaries.get(UUID(event.payload["message_id"]))
        if summary is None:
            return None
        unread = event.payload.get("unread")
        if unread is None:
            return b'{"type":"message.new","seq":%d,"message":%s}' % (event.seq, summary)
        return b'{"type":"message.new","seq":%d,"unread":%d,"message":%s}' % (
            event.seq, unread, summary
        )
    return codec.encode({"type": event.type.value, "seq": event.seq, **event.payload})


class Frames:
    """Render events as frames for sockets: what to publish after a commit, or to replay."""

    def __init__(self, messaging: Messaging, log: EventLog) -> None:
        self._messaging = messaging
        self._log = log

    async def render(self, events: list[Event]) -> list[tuple[UUID, bytes]]:
        """After a commit: each event's frame, with its user's unread count after it."""
        if not events:
            return []
        new_ids = {UUID(e.payload["message_id"]) for e in events if e.type is EventType.MESSAGE_NEW}
        arrivals = await self._messaging.arrivals(list(new_ids)) if new_ids else {}
        summaries = {message_id: summary_json(m) for message_id, m in arrivals.items()}
        about = {m for e in events if (m := _message_of(e)) is not None}
        expiries = await self._log.expiries(list(about))
        payloads: list[tuple[UUID, bytes]] = []
        for event in events:
            frame = event_frame(event, summaries)
            if frame is not None:
                expires_at = _expiry_of(event, expiries)
                payloads.append((event.user_id, frame_payload(event.seq, frame, expires_at)))
        return payloads

    async def replay(self, user_id: UUID, after_seq: int) -> Replayed:
        """A page of the frames of the user's kept events after `after_seq`, as the user sees
        them now; `more` when the next page follows its `through_seq`."""
        backlog = await self._log.after(user_id, after_seq, REPLAY_PAGE)
        if backlog.too_old:
            return Replayed([], backlog.through_seq, too_old=True)
        new_ids = [
            UUID(e.payload["message_id"]) for e in backlog.events
            if e.type is EventType.MESSAGE_NEW
        ]
        seen = await self._messaging.as_seen_by(user_id, new_ids) if new_ids else {}
        summaries = {message_id: summary_json(m) for message_id, m in seen.items()}
        frames = []
        for event in backlog.events:
            frame = event_frame(event, summaries)
            if frame is not None:
                frames.append((event.seq, frame))
        return Replayed(frames, backlog.through_seq, more=backlog.more, expires=backlog.expires)

    async def hello(self, user: User) -> tuple[int, bytes]:
        """The first frame: the latest seq, the unread count, the unread high-priority ones."""
        seq, count, high_priority = await self._messaging.snapshot(user)
        frame: dict[str, Any] = {
            "type": "hello",
            "user": me_view(user).model_dump(mode="python"),
            "seq": seq,
            "unread": count,
            "high_priority": [summary_view(m).model_dump(mode="python") for m in high_priority],
        }
        return seq, codec.encode(frame)


def _message_of(event: Event) -> UUID | None:
    """The message a receipt or new message is about: these frames go with its expiry."""
    if event.type in (EventType.MESSAGE_NEW, EventType.MESSAGE_READ):
        return UUID(str(event.payload["message_id"]))
    return None


def _expiry_of(event: Event, expiries: dict[UUID, float]) -> float:
    message_id = _message_of(event)
    return 0.0 if message_id is None else expiries.get(message_id, 0.0)
