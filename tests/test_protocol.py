"""The websocket protocol on its own: frames round-trip, the client decoder refuses what it
must, broker payloads pack and unpack, errors map to close codes, and the shapes match HTTP's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from realtime import codec, protocol
from realtime.api.auth import me_view
from realtime.api.messages import summary_view
from realtime.errors import (
    ConfigError,
    Conflict,
    CryptoError,
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
    Addressee,
    AddresseeKind,
    AttachmentInfo,
    AttachmentKind,
    DeleteReason,
    Event,
    EventType,
    Message,
    MessageHeader,
    SystemEnd,
    User,
)
from realtime.protocol import (
    CloseCode,
    EndSessions,
    Hello,
    MessageDeleted,
    MessageNew,
    MessageRead,
    NewToMany,
    Ping,
    Pong,
    Published,
    Reader,
    Recipient,
    Resume,
    Resumed,
    Resync,
)

NOW = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
USER = User(uuid.UUID(int=5), "alice", "Alice", False, True, True, False, NOW)


def message(*, own: bool) -> Message:
    header = MessageHeader(
        id=uuid.uuid4(), sender_id=uuid.uuid4(), sender_display_name="Bob", sent_at=NOW,
        expires_at=NOW + timedelta(days=1), high_priority=True, reply_to=None,
        read_at=None if own else NOW, is_sender=own, is_recipient=not own,
        recipient_count=3, read_count=1,
    )
    return Message(
        header, "a subject \u00e9\u2603",
        addressees=(Addressee(AddresseeKind.GROUP, uuid.uuid4(), "ops"),),
        attachments=(AttachmentInfo(uuid.uuid4(), AttachmentKind.FILE, "a.txt", 12),),
    )


SUMMARY = codec.encode({"id": str(uuid.UUID(int=1)), "subject": "hi", "attachments": []})
SERVER_FRAMES = [
    Hello({"id": str(USER.id), "username": "alice"}, 7, 2, ({"id": "x", "subject": "s"},)),
    Hello({"id": str(USER.id)}, 0, 0, ()),
    Hello({"id": str(USER.id)}, 3, 0, (), ({"id": "y", "subject": "maintenance"},)),
    protocol.SystemNew(13, b'{"id":"y","subject":"maintenance"}'),
    *[protocol.SystemWithdrawn(14, uuid.UUID(int=7), reason) for reason in SystemEnd],
    protocol.SystemDismissed(15, uuid.UUID(int=7)),
    MessageNew(8, 3, SUMMARY),
    MessageNew(8, None, SUMMARY),
    MessageRead(9, 1, uuid.UUID(int=2), Reader(uuid.UUID(int=3), "Carol"), "2024-05-06T07:08:09Z"),
    MessageRead(9, None, uuid.UUID(int=2), Reader(uuid.UUID(int=3), "C"), "2024-05-06T07:08:09Z"),
    *[MessageDeleted(10, 0, uuid.UUID(int=4), reason) for reason in DeleteReason],
    MessageDeleted(10, None, uuid.UUID(int=4), DeleteReason.EXPIRED),
    Resumed(12),
    Resync(),
    Pong(),
]


@pytest.mark.parametrize("frame", SERVER_FRAMES, ids=lambda frame: type(frame).__name__)
def test_every_server_frame_round_trips_and_names_its_type_first(
    frame: protocol.ServerFrame,
) -> None:
    """Encoding then decoding a server frame gives it back; its JSON starts with its type."""
    data = protocol.encode(frame)
    assert protocol.decode(data) == frame
    assert protocol.decode(data.decode()) == frame
    assert data.startswith(b'{"type":"')


def test_server_frames_carry_the_contract_fields() -> None:
    """Each frame's JSON has the fields API.md lists, and `unread` only where it is known."""
    message_id, reader_id = uuid.uuid4(), uuid.uuid4()
    read = MessageRead(4, 2, message_id, Reader(reader_id, "Carol"), "2024-05-06T07:08:09Z")
    assert codec.decode(protocol.encode(read)) == {
        "type": "message.read", "seq": 4, "unread": 2, "message_id": str(message_id),
        "reader": {"id": str(reader_id), "display_name": "Carol"},
        "read_at": "2024-05-06T07:08:09Z",
    }
    deleted = MessageDeleted(5, None, message_id, DeleteReason.RECALLED)
    assert codec.decode(protocol.encode(deleted)) == {
        "type": "message.deleted", "seq": 5, "message_id": str(message_id), "reason": "recalled",
    }
    assert protocol.encode(MessageNew(6, 1, b'{"a":1}')) == (
        b'{"type":"message.new","seq":6,"unread":1,"message":{"a":1}}'
    )
    assert protocol.encode(Resumed(3)) == b'{"type":"resumed","seq":3}'
    assert protocol.encode(Resync()) == b'{"type":"resync"}'
    assert protocol.encode(Pong()) == b'{"type":"pong"}'


@pytest.mark.parametrize("data", [
    b'{"type":"nope"}', b"[]", b'{"type":"message.new","seq":1}',
    b'{"type":"message.read","seq":1,"message_id":"not a uuid"}',
    b'{"type":"message.deleted","seq":1,"message_id":"%s","reason":"lost"}' % str(
        uuid.UUID(int=6)
    ).encode(),
    b"not json",
])
def test_the_server_frame_decoder_refuses_what_is_no_server_frame(data: bytes) -> None:
    """Unknown types, missing or malformed fields and non-objects are InvalidInput."""
    with pytest.raises(InvalidInput):
        protocol.decode(data)


def test_logged_events_become_their_frames() -> None:
    """A logged event's payload becomes its typed frame; a new message gone already, none."""
    user, message_id, reader_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    about = {"message_id": str(message_id)}
    new = Event(user, 1, EventType.MESSAGE_NEW, {**about, "unread": 1})
    assert protocol.event_frame(new, {message_id: SUMMARY}) == MessageNew(1, 1, SUMMARY)
    assert protocol.event_frame(new, {}) is None
    read = Event(user, 2, EventType.MESSAGE_READ, {
        **about, "reader": {"id": str(reader_id), "display_name": "Carol"},
        "read_at": "2024-05-06T07:08:09Z", "unread": 0,
    })
    assert protocol.event_frame(read, {}) == MessageRead(
        2, 0, message_id, Reader(reader_id, "Carol"), "2024-05-06T07:08:09Z"
    )
    deleted = Event(user, 3, EventType.MESSAGE_DELETED, {**about, "reason": "expired"})
    assert protocol.event_frame(deleted, {}) == MessageDeleted(
        3, None, message_id, DeleteReason.EXPIRED
    )


@pytest.mark.parametrize("frame", [Resume(0), Resume(41), Resume(protocol.MAX_SEQ), Ping()])
def test_every_client_frame_round_trips(frame: protocol.ClientFrame) -> None:
    """Encoding then decoding a client frame gives it back."""
    assert protocol.decode_client(protocol.encode_client(frame)) == frame
    assert protocol.decode_client(protocol.encode_client(frame).decode()) == frame


def test_fields_beside_the_known_ones_are_ignored() -> None:
    """A ping with extra fields is a ping; a resume keeps only its after_seq."""
    assert protocol.decode_client('{"type":"ping","after_seq":-1,"x":[1]}') == Ping()
    assert protocol.decode_client('{"after_seq":3,"type":"resume","y":null}') == Resume(3)


@pytest.mark.parametrize("text", [
    "", "   ", "not json", '{"type": "ping"} x', "[]", '"ping"', "42", "null",
    "{}", '{"type": null}', '{"type": "PING"}', '{"type": "pong"}', '{"type": "hello"}',
    '{"type": ["ping"]}', '{"type": "ping\\u0000"}', '{"type": "resume"}',
    '{"type": "resume", "afterSeq": 0}',
    *[f'{{"type": "resume", "after_seq": {value}}}' for value in (
        "-1", str(-(2**63)), str(2**63), str(2**64), "1.5", "0.0", "1e3", '"0"', "true",
        "false", "null", "[0]", '{"$gt": 0}',
    )],
])
def test_the_client_frame_decoder_refuses_bad_frames(text: str) -> None:
    """Non-JSON, non-objects, unknown types and a resume without a whole after_seq from 0 to
    the largest seq are InvalidInput, which closes the socket 1008."""
    with pytest.raises(InvalidInput) as refused:
        protocol.decode_client(text)
    assert protocol.close_code(refused.value) == CloseCode.POLICY


@pytest.mark.parametrize("published", [
    Published(1, b'{"seq":1}'),
    Published(0, b""),
    Published(protocol.MAX_SEQ, b'{"type":"message.new"}', 1.7e9 + 0.25),
    Published(5, b"{}", 1.7e9, committed_at=1.6e9 + 0.5),
])
def test_published_frames_pack_and_unpack(published: Published) -> None:
    """A frame's broker payload unpacks to the same seq, expiry, commit time and bytes."""
    assert protocol.unpack(published.pack()) == published


@pytest.mark.parametrize("ended", [
    EndSessions(uuid.UUID(int=3)),
    EndSessions(uuid.UUID(int=3), (uuid.UUID(int=7), uuid.UUID(int=8))),
], ids=["all", "two"])
def test_end_sessions_pack_and_unpack(ended: EndSessions) -> None:
    """An order to end a user's sessions unpacks to the same user and sessions; none given
    means all of them; one cut short is dropped."""
    assert protocol.unpack(ended.pack()) == ended
    assert protocol.unpack(ended.pack()[:-1]) is None


@pytest.mark.parametrize("count", [0, 1, 3, 1000])
def test_a_new_message_to_many_packs_once_and_unpacks_every_addressee(count: int) -> None:
    """A send to many is one payload: the summary once, and every recipient's id, seq and
    unread count, in order, with the expiry and the commit time."""
    recipients = [Recipient(uuid.uuid4(), 10 + i, i % 7) for i in range(count)]
    summary = protocol.summary_json(message(own=False))
    many = NewToMany.of(summary, recipients, expires_at=1.7e9 + 0.5, committed_at=1.6e9)
    payload = many.pack()
    assert payload.count(summary) == 1
    unpacked = protocol.unpack(payload)
    assert unpacked == many
    assert isinstance(unpacked, NewToMany)
    assert unpacked.recipients == tuple(recipients)
    assert unpacked.message == summary
    assert (unpacked.expires_at, unpacked.committed_at) == (1.7e9 + 0.5, 1.6e9)


def test_each_addressee_of_a_send_to_many_gets_the_frame_a_send_to_one_would() -> None:
    """The text a node writes to each recipient of a send to many is byte for byte the
    `message.new` of that recipient's seq and count, as a send to them alone would give."""
    summary = protocol.summary_json(message(own=False))
    for seq, unread in [(1, 0), (42, 7), (protocol.MAX_SEQ, 2**31)]:
        alone = protocol.encode(MessageNew(seq, unread, summary))
        assert protocol.message_new_text(seq, unread, summary.decode()) == alone.decode()
        assert protocol.decode(alone) == MessageNew(seq, unread, summary)


def test_a_truncated_send_to_many_unpacks_to_nothing() -> None:
    """A payload cut short (fewer recipients than it says) is dropped, not misread."""
    many = NewToMany.of(b"{}", [Recipient(uuid.uuid4(), 1, 1) for _ in range(3)]).pack()
    for cut in (1, 10, len(many) - 3):
        assert protocol.unpack(many[:cut]) is None


@pytest.mark.parametrize("count", [0, 1, 1000])
def test_an_event_to_many_packs_once_and_each_user_gets_the_frame_with_their_seq(
    count: int,
) -> None:
    """One frame split at its seq and every user's id and seq: unpacked, each user's frame is
    the frame an event of their own would be; truncated, it unpacks to nothing."""
    users = [(uuid.uuid4(), 100 + n) for n in range(count)]
    frame = protocol.SystemWithdrawn(0, uuid.UUID(int=9), SystemEnd.WITHDRAWN)
    records = b"".join(protocol.seq_record(user_id, seq) for user_id, seq in users)
    packed = protocol.EventToMany.of(protocol.encode(frame), records, expires_at=1.7e9).pack()
    unpacked = protocol.unpack(packed)
    assert isinstance(unpacked, protocol.EventToMany) and unpacked.expires_at == 1.7e9
    for (raw_id, seq), (user_id, wanted) in zip(unpacked.addressed(), users, strict=True):
        assert (raw_id, seq) == (user_id.bytes, wanted)
        text = unpacked.head + str(seq).encode() + unpacked.tail
        assert text == protocol.encode(protocol.SystemWithdrawn(
            seq, uuid.UUID(int=9), SystemEnd.WITHDRAWN))
    assert protocol.unpack(packed[:20]) is None
    timed = [(None, packed)]
    assert protocol.time_frames(timed, {(u.int, s): 4.5 for u, s in users[:1]}) == count
    retimed = protocol.unpack(timed[0][1])
    assert isinstance(retimed, protocol.EventToMany)
    assert retimed.committed_at == (4.5 if count else 0.0)


def test_an_unknown_payload_kind_unpacks_to_nothing() -> None:
    """A payload of no known kind is no frame and no order."""
    assert protocol.unpack(b"X123") is None
    assert protocol.unpack(b"") is None


def test_frames_are_timed_by_user_and_seq_and_others_left_alone() -> None:
    """Frame payloads get the commit time of their event; other payloads stay as they were."""
    user, other = uuid.uuid4(), uuid.uuid4()
    end = EndSessions(user).pack()
    payloads = [
        (user, Published(1, b"a", 9.0).pack()), (other, Published(1, b"b").pack()), (user, end),
    ]
    assert protocol.time_frames(payloads, {protocol.event_key(user, 1): 5.5}) == 2
    assert [protocol.unpack(payload) for _, payload in payloads] == [
        Published(1, b"a", 9.0, committed_at=5.5), Published(1, b"b"), EndSessions(user),
    ]


def test_a_send_to_many_is_timed_by_its_first_recipient_and_counts_every_frame() -> None:
    """A send to many takes its commit time from its first recipient's event, and counts as
    one frame per recipient."""
    first, second = Recipient(uuid.uuid4(), 3, 1), Recipient(uuid.uuid4(), 8, 2)
    payloads: list[tuple[uuid.UUID | None, bytes]] = [
        (None, NewToMany.of(b"{}", [first, second], 9.0).pack())
    ]
    assert protocol.time_frames(payloads, {protocol.event_key(first.user_id, 3): 5.5}) == 2
    assert protocol.unpack(payloads[0][1]) == NewToMany.of(b"{}", [first, second], 9.0, 5.5)


def test_every_error_has_its_close_code() -> None:
    """Errors map to the close codes the contract names; anything else is 1011."""
    assert {type(error): protocol.close_code(error) for error in [
        RealtimeError(), ConfigError(), CryptoError(), InvalidInput(), Unauthenticated(),
        Forbidden(), NotFound(), Conflict(), TooLarge(), RateLimited(1), Unavailable(),
    ]} == {
        RealtimeError: CloseCode.INTERNAL, ConfigError: CloseCode.INTERNAL,
        CryptoError: CloseCode.INTERNAL, InvalidInput: CloseCode.POLICY,
        Unauthenticated: CloseCode.SESSION_ENDED, Forbidden: CloseCode.POLICY,
        NotFound: CloseCode.POLICY, Conflict: CloseCode.POLICY, TooLarge: CloseCode.TOO_BIG,
        RateLimited: CloseCode.POLICY, Unavailable: CloseCode.TRY_AGAIN_LATER,
    }
    assert [int(code) for code in CloseCode] == [1000, 1001, 1008, 1009, 1011, 1013, 4401]


@pytest.mark.parametrize("own", [True, False])
def test_the_summary_is_byte_identical_to_the_http_one(own: bool) -> None:
    """A frame's summary and the HTTP summary of the same message are the same JSON."""
    shown = message(own=own)
    http = codec.encode(summary_view(shown).model_dump(mode="python"))
    assert protocol.summary_json(shown) == http
    assert (b'"recipients":null' in http) is not own


def test_the_hello_user_is_byte_identical_to_the_http_one() -> None:
    """The hello's user and `GET /api/me` are the same JSON."""
    http = codec.encode(me_view(USER).model_dump(mode="python"))
    assert codec.encode(protocol.me(USER)) == http
