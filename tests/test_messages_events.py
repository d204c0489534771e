"""The event log a message leaves for each user, and expiry with no expirer running."""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg

from tests.conftest import LoggedInUser, MakeUser
from tests.messages_support import (
    assert_error,
    box,
    box_ids,
    count_rows,
    events_of,
    expirer_held_off,
    group,
    make_group,
    send,
    send_ok,
    soon,
    stored_counts,
    unread,
    user,
    wait_until_past,
)


async def assert_seqs_without_gaps(raw_db: asyncpg.Connection, *people: LoggedInUser) -> None:
    """Each user's seqs run 1, 2, 3... and their counter stands at the last one."""
    for person in people:
        seqs = [e["seq"] for e in await events_of(raw_db, person)]
        assert seqs == list(range(1, len(seqs) + 1))
        last = await raw_db.fetchval(
            "select last_seq from event_counters where user_id = $1", person.user.id
        )
        assert last == len(seqs)


async def test_each_recipient_gets_one_new_message_event(
    make_user: MakeUser, admin: LoggedInUser, raw_db: asyncpg.Connection
) -> None:
    """Sending logs one `message.new` for each recipient, with their unread count after it, and
    none for a sender left out."""
    alice, bob, carol = [await make_user() for _ in range(3)]
    team = await make_group(admin, alice, bob, carol)
    answer = await send(alice, [user(bob), group(team)])
    message_id = answer.json()["id"]
    for person in (bob, carol):
        assert await events_of(raw_db, person) == [
            {"seq": 1, "type": "message.new", "payload": {"message_id": message_id, "unread": 1}}
        ]
    assert await events_of(raw_db, alice) == []
    assert await count_rows(raw_db, "events") == 2


async def test_close_tells_the_reader_and_the_sender(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Close logs one `message.read` for the reader and one for the sender, naming the reader,
    each with that user's unread count after it."""
    alice = await make_user()
    bob = await make_user(display_name="Bob Reader")
    message_id = await send_ok(alice, bob)
    read_at = (await bob.http.post(f"/api/messages/{message_id}/read")).json()["read_at"]
    await bob.http.post(f"/api/messages/{message_id}/read")
    expected = {
        "type": "message.read",
        "payload": {
            "message_id": message_id,
            "reader": {"id": bob.id, "display_name": "Bob Reader"},
            "read_at": read_at,
            "unread": 0,
        },
    }
    assert await events_of(raw_db, alice) == [{"seq": 1, **expected}]
    assert (await events_of(raw_db, bob))[1:] == [{"seq": 2, **expected}]
    assert len(await events_of(raw_db, bob)) == 2


async def test_delete_and_recall_tell_who_still_had_it(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """A recipient's delete logs `deleted` for them; a recall logs `recalled` for all who had it;
    each with that user's unread count after it."""
    alice, bob, carol, dave = [await make_user() for _ in range(4)]
    message_id = await send_ok(alice, bob, carol, dave)
    assert (await bob.http.post(f"/api/messages/{message_id}/read")).status_code == 200
    assert (await dave.http.delete(f"/api/messages/{message_id}")).status_code == 204
    assert (await alice.http.delete(f"/api/messages/{message_id}")).status_code == 204

    def deleted(reason: str) -> dict[str, object]:
        return {
            "type": "message.deleted",
            "payload": {"message_id": message_id, "reason": reason, "unread": 0},
        }

    def without_seq(events: list[dict[str, object]]) -> list[dict[str, object]]:
        return [{k: v for k, v in e.items() if k != "seq"} for e in events]

    assert [e["type"] for e in await events_of(raw_db, alice)] == [
        "message.read", "message.deleted"
    ]
    assert without_seq(await events_of(raw_db, alice))[-1] == deleted("recalled")
    assert without_seq(await events_of(raw_db, bob))[-1] == deleted("recalled")
    assert without_seq(await events_of(raw_db, carol)) == [
        {"type": "message.new", "payload": {"message_id": message_id, "unread": 1}},
        deleted("recalled"),
    ]
    assert without_seq(await events_of(raw_db, dave)) == [
        {"type": "message.new", "payload": {"message_id": message_id, "unread": 1}},
        deleted("deleted"),
    ]
    await assert_seqs_without_gaps(raw_db, alice, bob, carol, dave)


async def test_seqs_increase_without_gaps_across_a_conversation(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Through sends, replies, reads and deletes each user's seqs rise by one at a time."""
    alice, bob = await make_user(), await make_user()
    first = await send_ok(alice, bob)
    await bob.http.post(f"/api/messages/{first}/read")
    reply = await send_ok(bob, alice, reply_to=first)
    await alice.http.post(f"/api/messages/{reply}/read")
    await alice.http.delete(f"/api/messages/{reply}")
    await send_ok(alice, alice, bob)
    await bob.http.delete(f"/api/messages/{first}")
    assert [e["type"] for e in await events_of(raw_db, alice)] == [
        "message.read", "message.new", "message.read", "message.deleted", "message.new"
    ]
    assert [e["type"] for e in await events_of(raw_db, bob)] == [
        "message.new", "message.read", "message.read", "message.new", "message.deleted"
    ]
    await assert_seqs_without_gaps(raw_db, alice, bob)


async def test_simultaneous_sends_give_distinct_consecutive_seqs(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Messages sent to the same users at the same moment get one seq each, with no gap."""
    senders = [await make_user() for _ in range(3)]
    bob, carol = await make_user(), await make_user()
    answers = await asyncio.gather(*(
        send(sender, [user(bob), user(carol)] if i % 2 else [user(carol), user(bob)])
        for i in range(4)
        for sender in senders
    ))
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
    sent = {a.json()["id"] for a in answers}
    assert len(sent) == 12
    for person in (bob, carol):
        events = await events_of(raw_db, person)
        assert [e["seq"] for e in events] == list(range(1, 13))
        delivered = Counter(e["payload"]["message_id"] for e in events)
        assert delivered == Counter(dict.fromkeys(sent, 1))
        assert set(await box_ids(person)) == sent
    await assert_seqs_without_gaps(raw_db, bob, carol)


# Expiry: every read hides an expired message by itself, however late the expirer is.


async def test_an_expired_message_is_never_listed_or_opened(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Once its expiry time has passed a message is gone from both boxes, opening and unread,
    even while the expirer has not deleted it."""
    alice, bob = await make_user(), await make_user()
    expires_at = soon()
    fleeting = await send_ok(alice, bob, high_priority=True, expires_at=expires_at)
    lasting = await send_ok(alice, bob, high_priority=True)
    assert await box_ids(bob) == [lasting, fleeting]
    assert (await unread(bob))["count"] == 2
    async with expirer_held_off(raw_db, fleeting):
        await wait_until_past(raw_db, expires_at)
        assert await count_rows(raw_db, "messages") == 2
        assert await box_ids(bob) == [lasting]
        assert await box_ids(alice, "sent") == [lasting]
        for person in (alice, bob):
            assert_error(await person.http.get(f"/api/messages/{fleeting}"), 404, "not_found")
        state = await unread(bob)
        assert state["count"] == 1
        assert [m["id"] for m in state["high_priority"]] == [lasting]


async def test_an_expired_message_cannot_be_closed_deleted_or_answered(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Once its expiry time has passed, Close, delete, recall and reply_to all answer 404."""
    alice, bob = await make_user(), await make_user()
    expires_at = soon()
    fleeting = await send_ok(alice, bob, expires_at=expires_at)
    read_later = await send_ok(alice, bob, expires_at=expires_at)
    assert (await bob.http.post(f"/api/messages/{read_later}/read")).status_code == 200
    async with expirer_held_off(raw_db, fleeting, read_later):
        await wait_until_past(raw_db, expires_at)
        before = await stored_counts(raw_db)
        for message_id in (fleeting, read_later):
            answer = await bob.http.post(f"/api/messages/{message_id}/read")
            assert_error(answer, 404, "not_found")
            assert_error(await bob.http.delete(f"/api/messages/{message_id}"), 404, "not_found")
            answer = await alice.http.delete(f"/api/messages/{message_id}")
            assert_error(answer, 404, "not_found")
            for author, to in ((bob, alice), (alice, bob)):
                answer = await send(author, [user(to)], reply_to=message_id)
                assert_error(answer, 404, "not_found")
        assert await stored_counts(raw_db) == before
    assert (await box(bob)) == []
