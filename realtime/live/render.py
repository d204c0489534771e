"""Events turned into the contract's websocket frames: live after a commit, or replayed."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from uuid import UUID

from realtime import protocol
from realtime.events import EventLog
from realtime.live.connection import Replayed
from realtime.messaging import Messaging
from realtime.models import Event, EventType, Message, SystemMessage, User
from realtime.protocol import SYSTEM_EVENTS, EventToMany, NewToMany, Published
from realtime.system_messages import SystemMessages

REPLAY_PAGE = 200  # events a resume fetches at a time, the connection released in between


class Renderer:
    """Render events as frames for sockets: what to publish after a commit, or to replay."""

    def __init__(self, messaging: Messaging, log: EventLog, system: SystemMessages) -> None:
        self._messaging = messaging
        self._log = log
        self._system = system

    async def render(
        self, events: list[Event], known: Mapping[UUID, Message] | None = None
    ) -> list[tuple[UUID | None, bytes]]:
        """After a commit: each event's frame, with its user's unread count after it, for its
        user's nodes; a new message to many users is one payload for every node instead, at
        the place of its first recipient's event. New messages among `known` (as their
        recipients first see them, handed over by their send) are not read back."""
        if not events:
            return []
        known = known or {}
        new_ids = {protocol.message_of(e) for e in events if e.type is EventType.MESSAGE_NEW}
        unknown = [message_id for message_id in new_ids if message_id not in known]
        arrivals = {message_id: known[message_id] for message_id in new_ids & known.keys()}
        if unknown:
            arrivals |= await self._messaging.arrivals(unknown)
        summaries = {message_id: protocol.summary_json(m) for message_id, m in arrivals.items()}
        expiries = {  # a new message's expiry is in its summary; a receipt's, looked up
            message_id: m.header.expires_at.timestamp()
            for message_id, m in arrivals.items() if m.header.expires_at is not None
        }
        read = {protocol.message_of(e) for e in events if e.type is EventType.MESSAGE_READ}
        if read - arrivals.keys():
            expiries |= await self._log.expiries(list(read - arrivals.keys()))
        to_many = _sent_to_many(events, summaries)
        system = {id_: _SystemShown(protocol.system_message_json(m), _ends(m))
                  for id_, m in (await self._system_shown(events)).items()}
        everyone = _to_everyone(events)
        payloads: list[tuple[UUID | None, bytes]] = []
        for event in events:
            if event.type in SYSTEM_EVENTS:
                payloads += _system_payloads(event, system, everyone)
                continue
            if event.type is EventType.MESSAGE_NEW:
                message_id = protocol.message_of(event)
                recipients = to_many.get(message_id)
                if recipients is not None:
                    if recipients:  # the first of its events: the payload goes here, once
                        many = NewToMany(summaries[message_id], b"".join(recipients),
                                         _expiry_of(event, expiries))
                        payloads.append((None, many.pack()))
                        recipients.clear()
                    continue
            frame = protocol.event_frame(event, summaries)
            if frame is not None:
                expires_at = _expiry_of(event, expiries)
                published = Published(event.seq, protocol.encode(frame), expires_at)
                payloads.append((event.user_id, published.pack()))
        return payloads

    async def replay(self, user_id: UUID, after_seq: int) -> Replayed:
        """A page of the frames of the user's kept events after `after_seq`, as the user sees
        them now; `more` when the next page follows its `through_seq`."""
        backlog = await self._log.after(user_id, after_seq, REPLAY_PAGE)
        if backlog.too_old:
            return Replayed([], backlog.through_seq, too_old=True)
        new_ids = [
            protocol.message_of(e) for e in backlog.events if e.type is EventType.MESSAGE_NEW
        ]
        seen = await self._messaging.as_seen_by(user_id, new_ids) if new_ids else {}
        summaries = {message_id: protocol.summary_json(m) for message_id, m in seen.items()}
        system_ids = [protocol.system_message_of(e) for e in backlog.events
                      if e.type is EventType.SYSTEM_MESSAGE]
        shown = await self._system.as_seen_by(user_id, system_ids) if system_ids else {}
        system = {id_: protocol.system_message_json(m) for id_, m in shown.items()}
        expires = dict(backlog.expires)
        frames = []
        for event in backlog.events:
            frame = protocol.event_frame(event, summaries, system)
            if frame is not None:
                frames.append((event.seq, protocol.encode(frame)))
                if event.type is EventType.SYSTEM_MESSAGE:
                    expires[event.seq] = _ends(shown[protocol.system_message_of(event)])
        return Replayed(frames, backlog.through_seq, more=backlog.more, expires=expires)

    async def hello(self, user: User, session_id: UUID | None = None) -> tuple[int, bytes]:
        """The first frame: the latest seq, the unread count, the unread high-priority ones,
        and the system messages the user has to see in that session."""
        seq, count, high_priority = await self._messaging.snapshot(user)
        shown = tuple(protocol.summary(m) for m in high_priority)
        system = tuple(
            protocol.system_message(m) for m in await self._system.shown_to(user.id, session_id)
        )
        return seq, protocol.encode(
            protocol.Hello(protocol.me(user), seq, count, shown, system)
        )

    async def _system_shown(self, events: list[Event]) -> dict[UUID, SystemMessage]:
        """The system messages the batch announces that are still shown to anyone."""
        ids = {protocol.system_message_of(e) for e in events
               if e.type is EventType.SYSTEM_MESSAGE}
        return await self._system.active(list(ids)) if ids else {}


# A new message with this many recipients in a batch goes to every node once, not per user.
TO_EVERY_NODE_FROM = 8


def _sent_to_many(
    events: list[Event], summaries: Mapping[UUID, bytes]
) -> dict[UUID, list[bytes]]:
    """The new messages of the batch with at least TO_EVERY_NODE_FROM recipients (each with
    its count known), and their recipients in order, packed for `NewToMany`."""
    recipients: dict[UUID, list[bytes]] = {}
    for event in events:
        unread = event.payload.get("unread")
        if event.type is EventType.MESSAGE_NEW and unread is not None:
            message_id = protocol.message_of(event)
            if message_id in summaries:
                recipients.setdefault(message_id, []).append(
                    protocol.recipient_record(event.user_id, event.seq, unread)
                )
    return {message_id: found for message_id, found in recipients.items()
            if len(found) >= TO_EVERY_NODE_FROM}


# Receipts and new messages go with their message's expiry: never written once it has passed.
_EXPIRING = (EventType.MESSAGE_NEW, EventType.MESSAGE_READ)


def _expiry_of(event: Event, expiries: dict[UUID, float]) -> float:
    if event.type not in _EXPIRING:
        return 0.0
    return expiries.get(protocol.message_of(event), 0.0)


# The events of the batch that go to many users alike (a system message, its withdrawal): by
# (type, system message id), each user's record in order; one payload for every node each.
_Everyone = dict[tuple[EventType, UUID], list[bytes]]


def _to_everyone(events: list[Event]) -> _Everyone:
    found: _Everyone = {}
    for event in events:
        if event.type in (EventType.SYSTEM_MESSAGE, EventType.SYSTEM_WITHDRAWN):
            key = (event.type, protocol.system_message_of(event))
            found.setdefault(key, []).append(protocol.seq_record(event.user_id, event.seq))
    return {key: users for key, users in found.items() if len(users) >= TO_EVERY_NODE_FROM}


@dataclasses.dataclass(frozen=True)
class _SystemShown:
    """A system message of the batch still shown: its JSON, made once, and when it ends."""

    json: bytes
    ends_at: float


def _system_payloads(
    event: Event, system: Mapping[UUID, _SystemShown], everyone: _Everyone
) -> list[tuple[UUID | None, bytes]]:
    """A system event's payload: for its user, or, the first of an event to many, for every
    node (the others of it then none)."""
    message_id = protocol.system_message_of(event)
    shown = system.get(message_id)
    frame = protocol.event_frame(event, {}, {} if shown is None else {message_id: shown.json})
    if frame is None:  # withdrawn or ended since: its withdrawal follows
        return []
    expires_at = shown.ends_at if shown is not None else 0.0
    users = everyone.get((event.type, message_id))
    if users is None:
        published = Published(event.seq, protocol.encode(frame), expires_at)
        return [(event.user_id, published.pack())]
    if not users:
        return []
    unsequenced = protocol.encode(dataclasses.replace(frame, seq=0))
    many = EventToMany.of(unsequenced, b"".join(users), expires_at)
    users.clear()
    return [(None, many.pack())]


def _ends(message: SystemMessage) -> float:
    return 0.0 if message.ends_at is None else message.ends_at.timestamp()
