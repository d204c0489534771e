"""The websocket protocol: every frame as a typed value with one encoder and one decoder, the
shapes of a message summary and of the hello's user, the close codes, and the broker payloads
that carry frames between nodes. Pure: no I/O."""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any
from uuid import UUID

from realtime import codec
from realtime.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    RealtimeError,
    TooLarge,
    Unauthenticated,
    Unavailable,
)
from realtime.models import (
    DeleteReason,
    Event,
    EventType,
    LinkEnd,
    Message,
    SystemEnd,
    SystemMessage,
    User,
)

MAX_SEQ = 2**63 - 1  # a seq is a bigint


class CloseCode(IntEnum):
    """The codes a socket is closed with."""

    NORMAL = 1000
    GOING_AWAY = 1001  # the server is shutting down
    POLICY = 1008  # a bad frame, too many frames or sockets
    TOO_BIG = 1009
    INTERNAL = 1011
    TRY_AGAIN_LATER = 1013  # too slow a reader, too many resumes, the database busy
    SESSION_ENDED = 4401  # not, or no longer, authenticated


_ERROR_CODES: tuple[tuple[type[RealtimeError], CloseCode], ...] = (
    (Unauthenticated, CloseCode.SESSION_ENDED),
    (Unavailable, CloseCode.TRY_AGAIN_LATER),
    (TooLarge, CloseCode.TOO_BIG),
    (InvalidInput, CloseCode.POLICY),
    (Forbidden, CloseCode.POLICY),
    (NotFound, CloseCode.POLICY),
    (Conflict, CloseCode.POLICY),
    (RateLimited, CloseCode.POLICY),
)


def close_code(error: RealtimeError) -> CloseCode:
    """The code a socket closes with for an error; 1011 for one the client did not cause."""
    for kind, code in _ERROR_CODES:
        if isinstance(error, kind):
            return code
    return CloseCode.INTERNAL


# The shapes the client sees, over HTTP and in frames alike.


def summary(message: Message) -> dict[str, Any]:
    """A message's summary as its reader sees it: the To field and counts for its sender only."""
    header = message.header
    own = header.is_sender
    return {
        "id": header.id,
        "sender": {"id": header.sender_id, "display_name": header.sender_display_name},
        "recipients": [
            {"kind": a.kind.value, "id": a.id, "name": a.name} for a in message.addressees
        ] if own else None,
        "recipient_count": header.recipient_count if own else None,
        "read_count": header.read_count if own else None,
        "subject": message.subject,
        "sent_at": header.sent_at,
        "expires_at": header.expires_at,
        "high_priority": header.high_priority,
        "read_at": header.read_at,
        "reply_to": header.reply_to,
        "attachments": [
            {"id": a.id, "kind": a.kind.value, "name": a.name, "size": a.size}
            for a in message.attachments
        ],
    }


def summary_json(message: Message) -> bytes:
    """A summary in JSON, made once however many sockets receive it."""
    return codec.encode(summary(message))


def system_message(message: SystemMessage) -> dict[str, Any]:
    """A system message as every user sees it."""
    return {
        "id": message.id,
        "subject": message.subject,
        "body": message.body,
        "mode": message.mode.value,
        "created_at": message.created_at,
        "ends_at": message.ends_at,
    }


def system_message_json(message: SystemMessage) -> bytes:
    return codec.encode(system_message(message))


def me(user: User) -> dict[str, Any]:
    """Who a user is, as they see themselves."""
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "is_admin": user.is_admin,
        "can_send": user.can_send,
        "can_attach": user.can_attach,
        "can_share_links": user.can_share_links,
    }


# Server frames.


@dataclass(frozen=True, slots=True)
class Hello:
    user: Mapping[str, Any]
    seq: int
    unread: int
    high_priority: Sequence[Mapping[str, Any]] = ()
    system: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True, slots=True)
class MessageNew:
    seq: int
    unread: int | None  # None: an event logged before counts were kept
    message: bytes  # the summary's JSON


@dataclass(frozen=True, slots=True)
class Reader:
    id: UUID
    display_name: str


@dataclass(frozen=True, slots=True)
class MessageRead:
    seq: int
    unread: int | None
    message_id: UUID
    reader: Reader
    read_at: str  # RFC 3339


@dataclass(frozen=True, slots=True)
class MessageDeleted:
    seq: int
    unread: int | None
    message_id: UUID
    reason: DeleteReason


@dataclass(frozen=True, slots=True)
class LinkViewed:
    seq: int
    link_id: UUID
    views_left: int
    viewed_at: str  # RFC 3339


@dataclass(frozen=True, slots=True)
class LinkDeleted:
    seq: int
    link_id: UUID
    reason: LinkEnd


@dataclass(frozen=True, slots=True)
class SystemNew:
    seq: int
    message: bytes  # the system message's JSON


@dataclass(frozen=True, slots=True)
class SystemWithdrawn:
    seq: int
    id: UUID
    reason: SystemEnd


@dataclass(frozen=True, slots=True)
class SystemDismissed:
    seq: int
    id: UUID


@dataclass(frozen=True, slots=True)
class Resumed:
    seq: int


@dataclass(frozen=True, slots=True)
class Resync:
    pass


@dataclass(frozen=True, slots=True)
class Pong:
    pass


EventFrame = (
    MessageNew | MessageRead | MessageDeleted | LinkViewed | LinkDeleted | SystemNew
    | SystemWithdrawn | SystemDismissed
)
ServerFrame = Hello | EventFrame | Resumed | Resync | Pong


_MESSAGE_NEW = '{"type":"message.new","seq":%d,"unread":%d,"message":%s}'
_MESSAGE_NEW_BYTES = _MESSAGE_NEW.encode()


def message_new_text(seq: int, unread: int, message: str) -> str:
    """`message.new` as text, from its summary's JSON as text: what a node writes to each
    socket of a send to many (the summary decoded once for all of them)."""
    return _MESSAGE_NEW % (seq, unread, message)


def encode(frame: ServerFrame) -> bytes:
    """A server frame's JSON, `type` first."""
    match frame:
        case MessageNew(seq, unread, message):
            if unread is None:
                return b'{"type":"message.new","seq":%d,"message":%s}' % (seq, message)
            return _MESSAGE_NEW_BYTES % (seq, unread, message)
        case MessageRead(seq, unread, message_id, reader, read_at):
            return codec.encode({
                "type": EventType.MESSAGE_READ.value, "seq": seq, **_unread(unread),
                "message_id": message_id,
                "reader": {"id": reader.id, "display_name": reader.display_name},
                "read_at": read_at,
            })
        case MessageDeleted(seq, unread, message_id, reason):
            return codec.encode({
                "type": EventType.MESSAGE_DELETED.value, "seq": seq, **_unread(unread),
                "message_id": message_id, "reason": reason.value,
            })
        case LinkViewed(seq, link_id, views_left, viewed_at):
            return codec.encode({
                "type": EventType.LINK_VIEWED.value, "seq": seq, "link_id": link_id,
                "views_left": views_left, "viewed_at": viewed_at,
            })
        case LinkDeleted(seq, link_id, reason):
            return codec.encode({
                "type": EventType.LINK_DELETED.value, "seq": seq, "link_id": link_id,
                "reason": reason.value,
            })
        case SystemNew(seq, message):
            return b'{"type":"system.message","seq":%d,"message":%s}' % (seq, message)
        case SystemWithdrawn(seq, id_, reason):
            return codec.encode({
                "type": EventType.SYSTEM_WITHDRAWN.value, "seq": seq, "id": id_,
                "reason": reason.value,
            })
        case SystemDismissed(seq, id_):
            return codec.encode({
                "type": EventType.SYSTEM_DISMISSED.value, "seq": seq, "id": id_,
            })
        case Hello(user, seq, unread, high_priority, system):
            return codec.encode({
                "type": "hello", "user": user, "seq": seq, "unread": unread,
                "high_priority": list(high_priority), "system": list(system),
            })
        case Resumed(seq):
            return b'{"type":"resumed","seq":%d}' % seq
        case Resync():
            return b'{"type":"resync"}'
        case Pong():
            return b'{"type":"pong"}'
    raise TypeError(f"not a server frame: {frame!r}")


def _unread(unread: int | None) -> dict[str, int]:
    return {} if unread is None else {"unread": unread}


def decode(data: bytes | str) -> ServerFrame:
    """A server frame from its JSON; InvalidInput for anything else."""
    frame = _object(data)
    kind = frame.get("type")
    try:
        if kind == EventType.MESSAGE_NEW:
            return MessageNew(frame["seq"], frame.get("unread"), codec.encode(frame["message"]))
        if kind == EventType.MESSAGE_READ:
            reader = frame["reader"]
            return MessageRead(
                frame["seq"], frame.get("unread"), UUID(frame["message_id"]),
                Reader(UUID(reader["id"]), reader["display_name"]), frame["read_at"],
            )
        if kind == EventType.MESSAGE_DELETED:
            return MessageDeleted(
                frame["seq"], frame.get("unread"), UUID(frame["message_id"]),
                DeleteReason(frame["reason"]),
            )
        if kind == EventType.LINK_VIEWED:
            return LinkViewed(frame["seq"], UUID(frame["link_id"]), frame["views_left"],
                              frame["viewed_at"])
        if kind == EventType.LINK_DELETED:
            return LinkDeleted(frame["seq"], UUID(frame["link_id"]), LinkEnd(frame["reason"]))
        if kind == EventType.SYSTEM_MESSAGE:
            return SystemNew(frame["seq"], codec.encode(frame["message"]))
        if kind == EventType.SYSTEM_WITHDRAWN:
            return SystemWithdrawn(frame["seq"], UUID(frame["id"]), SystemEnd(frame["reason"]))
        if kind == EventType.SYSTEM_DISMISSED:
            return SystemDismissed(frame["seq"], UUID(frame["id"]))
        if kind == "hello":
            return Hello(frame["user"], frame["seq"], frame["unread"],
                         tuple(frame["high_priority"]), tuple(frame.get("system", ())))
        if kind == "resumed":
            return Resumed(frame["seq"])
    except (KeyError, TypeError, ValueError):
        raise InvalidInput(f"a {kind} frame is malformed") from None
    if kind == "resync":
        return Resync()
    if kind == "pong":
        return Pong()
    raise InvalidInput("unknown frame type")


def event_frame(
    event: Event, summaries: Mapping[UUID, bytes], system: Mapping[UUID, bytes] | None = None
) -> EventFrame | None:
    """The frame of a logged event; None for a new message that is gone already (its summary
    is not among `summaries`), or a system message no longer shown (not among `system`)."""
    payload = event.payload
    if event.type is EventType.SYSTEM_MESSAGE:
        found = (system or {}).get(system_message_of(event))
        return None if found is None else SystemNew(event.seq, found)
    if event.type is EventType.SYSTEM_WITHDRAWN:
        return SystemWithdrawn(event.seq, system_message_of(event), SystemEnd(payload["reason"]))
    if event.type is EventType.SYSTEM_DISMISSED:
        return SystemDismissed(event.seq, system_message_of(event))
    if event.type is EventType.LINK_VIEWED:
        return LinkViewed(event.seq, UUID(payload["link_id"]), payload["views_left"],
                          payload["viewed_at"])
    if event.type is EventType.LINK_DELETED:
        return LinkDeleted(event.seq, UUID(payload["link_id"]), LinkEnd(payload["reason"]))
    unread = payload.get("unread")
    message_id = message_of(event)
    if event.type is EventType.MESSAGE_NEW:
        found = summaries.get(message_id)
        return None if found is None else MessageNew(event.seq, unread, found)
    if event.type is EventType.MESSAGE_READ:
        reader = payload["reader"]
        return MessageRead(
            event.seq, unread, message_id, Reader(UUID(reader["id"]), reader["display_name"]),
            payload["read_at"],
        )
    return MessageDeleted(event.seq, unread, message_id, DeleteReason(payload["reason"]))


def message_of(event: Event) -> UUID:
    """The message an event is about (the events of one send share its id's text: it is read
    once for all of them)."""
    return _message_id(event.payload["message_id"])


@functools.lru_cache(maxsize=1024)
def _message_id(text: str) -> UUID:
    return UUID(str(text))


SYSTEM_EVENTS = frozenset(
    {EventType.SYSTEM_MESSAGE, EventType.SYSTEM_WITHDRAWN, EventType.SYSTEM_DISMISSED}
)


def system_message_of(event: Event) -> UUID:
    """The system message a `system.*` event is about."""
    return _message_id(event.payload["id"])


# Client frames.


@dataclass(frozen=True, slots=True)
class Resume:
    after_seq: int


@dataclass(frozen=True, slots=True)
class Ping:
    pass


ClientFrame = Resume | Ping


def encode_client(frame: ClientFrame) -> bytes:
    """A client frame's JSON."""
    if isinstance(frame, Resume):
        return b'{"type":"resume","after_seq":%d}' % frame.after_seq
    return b'{"type":"ping"}'


def decode_client(text: bytes | str) -> ClientFrame:
    """A client frame from its JSON; InvalidInput (the socket closes 1008) for a frame that is
    not a JSON object, of an unknown type, or a resume without a whole `after_seq` from 0 up
    to the largest seq. Fields beside the known ones are ignored."""
    frame = _object(text)
    kind = frame.get("type")
    if kind == "ping":
        return Ping()
    if kind == "resume":
        after = frame.get("after_seq")
        if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after <= MAX_SEQ:
            raise InvalidInput("resume needs after_seq, a whole number")
        return Resume(after)
    raise InvalidInput("unknown frame type")


def _object(data: bytes | str) -> dict[str, Any]:
    frame = codec.decode(data)
    if not isinstance(frame, dict):
        raise InvalidInput("a frame is a JSON object")
    return frame


# Broker payloads: what a node publishes for the others, one kind byte first.

_FRAME, _TIMED_FRAME, _END_SESSIONS, _NEW_TO_MANY = b"F", b"T", b"E", b"M"
_EVENT_TO_MANY = b"A"
_HEAD = struct.Struct(">qd")  # seq, expires_at
_TIME = struct.Struct(">d")
_MANY_HEAD = struct.Struct(">ddI")  # committed_at, expires_at, how many recipients
_RECIPIENT = struct.Struct(">16sqq")  # the user id's bytes, their seq, their unread count
_TO_MANY_HEAD = struct.Struct(">ddII")  # committed_at, expires_at, how many users, head size
_SEQ_RECORD = struct.Struct(">16sq")  # the user id's bytes, their seq
_SEQ_MARK = b'"seq":0'


@dataclass(frozen=True, slots=True)
class Published:
    """A frame on its way to the user's sockets: its seq (0: none), when the message it is
    about expires and when its event committed (seconds since the epoch; 0: never, not known)."""

    seq: int
    frame: bytes
    expires_at: float = 0.0
    committed_at: float = 0.0

    def pack(self) -> bytes:
        head = _TIMED_FRAME + _TIME.pack(self.committed_at) if self.committed_at else _FRAME
        return head + _HEAD.pack(self.seq, self.expires_at) + self.frame


@dataclass(frozen=True, slots=True)
class EndSessions:
    """Close the user's sockets of the given sessions; of all of them when none is given.
    Published to every node: each remembers it a while, for a socket let in just before."""

    user_id: UUID
    session_ids: tuple[UUID, ...] = ()

    def pack(self) -> bytes:
        return _END_SESSIONS + self.user_id.bytes + b"".join(
            session_id.bytes for session_id in self.session_ids
        )


@dataclass(frozen=True, slots=True)
class Recipient:
    """One recipient of a send to many: their seq for it and their unread count after it."""

    user_id: UUID
    seq: int
    unread: int


def recipient_record(user_id: UUID, seq: int, unread: int) -> bytes:
    """One recipient's record in `NewToMany.records`: their id, seq and unread count."""
    return _RECIPIENT.pack(user_id.bytes, seq, unread)


@dataclass(frozen=True, slots=True)
class NewToMany:
    """A new message for many users, published once to every node: its summary once, and each
    recipient's seq and unread count. Each node writes `message.new` to the users it holds.

    The recipients stay packed (`records`): a node reads the ids it holds without making an
    object of every recipient's.
    """

    message: bytes  # the summary's JSON
    records: bytes  # the recipients, packed
    expires_at: float = 0.0
    committed_at: float = 0.0

    @classmethod
    def of(
        cls, message: bytes, recipients: Sequence[Recipient], expires_at: float = 0.0,
        committed_at: float = 0.0,
    ) -> NewToMany:
        records = b"".join(recipient_record(r.user_id, r.seq, r.unread) for r in recipients)
        return cls(message, records, expires_at, committed_at)

    def addressed(self) -> Iterator[tuple[bytes, int, int]]:
        """Each recipient as (the user id's 16 bytes, seq, unread), in the order given."""
        return _RECIPIENT.iter_unpack(self.records)

    @property
    def recipients(self) -> tuple[Recipient, ...]:
        return tuple(Recipient(UUID(bytes=raw), seq, unread) for raw, seq, unread
                     in self.addressed())

    def pack(self) -> bytes:
        head = _MANY_HEAD.pack(self.committed_at, self.expires_at, len(self.records)
                               // _RECIPIENT.size)
        return _NEW_TO_MANY + head + self.records + self.message


@dataclass(frozen=True, slots=True)
class EventToMany:
    """One event for many users (a system message to everyone), published once to every node:
    the frame once, split where each user's seq goes, and each user's id and seq packed."""

    head: bytes  # the frame's JSON up to its seq
    tail: bytes  # and after it
    records: bytes  # the users, packed: see `seq_record`
    expires_at: float = 0.0
    committed_at: float = 0.0

    @classmethod
    def of(cls, frame: bytes, records: bytes, expires_at: float = 0.0) -> EventToMany:
        """From a frame encoded with seq 0 (`"seq":0` right after its type)."""
        head, mark, tail = frame.partition(_SEQ_MARK)
        if not mark:
            raise ValueError("the frame has no seq 0 to split at")
        return cls(head + mark[:-1], tail, records, expires_at)

    def addressed(self) -> Iterator[tuple[bytes, int]]:
        """Each user as (the id's 16 bytes, seq), in the order given."""
        return _SEQ_RECORD.iter_unpack(self.records)

    def pack(self) -> bytes:
        head = _TO_MANY_HEAD.pack(self.committed_at, self.expires_at,
                                  len(self.records) // _SEQ_RECORD.size, len(self.head))
        return _EVENT_TO_MANY + head + self.records + self.head + self.tail


def seq_record(user_id: UUID, seq: int) -> bytes:
    """One user's record in `EventToMany.records`."""
    return _SEQ_RECORD.pack(user_id.bytes, seq)


def _unpack_event_to_many(payload: bytes) -> EventToMany | None:
    if len(payload) < 1 + _TO_MANY_HEAD.size:
        return None
    committed_at, expires_at, count, head_size = _TO_MANY_HEAD.unpack_from(payload, 1)
    start = 1 + _TO_MANY_HEAD.size
    end = start + count * _SEQ_RECORD.size
    if len(payload) < end + head_size:
        return None
    return EventToMany(payload[end:end + head_size], payload[end + head_size:],
                       payload[start:end], expires_at, committed_at)


def unpack(payload: bytes) -> Published | NewToMany | EventToMany | EndSessions | None:
    """A broker payload made by `pack`; None for one of an unknown kind or a truncated one."""
    if payload[:1] == _EVENT_TO_MANY:
        return _unpack_event_to_many(payload)
    if payload[:1] == _NEW_TO_MANY:
        if len(payload) < 1 + _MANY_HEAD.size:
            return None
        committed_at, expires_at, count = _MANY_HEAD.unpack_from(payload, 1)
        start = 1 + _MANY_HEAD.size
        end = start + count * _RECIPIENT.size
        if len(payload) < end:
            return None
        return NewToMany(payload[end:], payload[start:end], expires_at, committed_at)
    kind, start, committed_at = payload[:1], 1, 0.0
    if kind == _TIMED_FRAME:
        kind, start = _FRAME, 1 + _TIME.size
        (committed_at,) = _TIME.unpack_from(payload, 1)
    if kind == _FRAME:
        seq, expires_at = _HEAD.unpack_from(payload, start)
        return Published(seq, payload[start + _HEAD.size:], expires_at, committed_at)
    if kind == _END_SESSIONS:
        if len(payload) < 17 or (len(payload) - 1) % 16:
            return None
        return EndSessions(
            UUID(bytes=payload[1:17]),
            tuple(UUID(bytes=payload[i:i + 16]) for i in range(17, len(payload), 16)),
        )
    return None


def event_key(user_id: UUID, seq: int) -> tuple[int, int]:
    """An event's key in the commit times `time_frames` reads: cheaper to hash than the id."""
    return user_id.int, seq


def time_frames(
    payloads: list[tuple[UUID | None, bytes]], committed_at: Mapping[tuple[int, int], float]
) -> int:
    """Give each frame payload (in place) the time its event committed, found by user and seq
    (a send to many: by its first recipient's), for the latency metric; return how many frames
    the payloads carry, one per user and event."""
    frames = 0
    for index, (audience, payload) in enumerate(payloads):
        kind = payload[:1]
        if kind == _FRAME and audience is not None:
            frames += 1
            at = committed_at.get((audience.int, _HEAD.unpack_from(payload, 1)[0]))
            if at is not None:
                payloads[index] = (audience, _TIMED_FRAME + _TIME.pack(at) + payload[1:])
        elif kind == _NEW_TO_MANY:
            many = unpack(payload)
            assert isinstance(many, NewToMany)
            first = next(many.addressed(), None)
            frames += len(many.records) // _RECIPIENT.size
            at = None if first is None else committed_at.get(
                (int.from_bytes(first[0], "big"), first[1])
            )
            if at is not None:
                timed = NewToMany(many.message, many.records, many.expires_at, at)
                payloads[index] = (audience, timed.pack())
        elif kind == _EVENT_TO_MANY:
            to_many = _unpack_event_to_many(payload)
            assert to_many is not None
            first_user = next(to_many.addressed(), None)
            frames += len(to_many.records) // _SEQ_RECORD.size
            at = None if first_user is None else committed_at.get(
                (int.from_bytes(first_user[0], "big"), first_user[1])
            )
            if at is not None:
                payloads[index] = (audience, EventToMany(
                    to_many.head, to_many.tail, to_many.records, to_many.expires_at, at
                ).pack())
    return frames
