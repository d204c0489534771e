"""Sending a message: who receives it, what is refused, rights, Idempotency-Key and reply_to."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.conftest import LoggedInUser, MakeUser
from tests.messages_support import (
    assert_error,
    assert_invalid,
    box_ids,
    count_rows,
    disable,
    events_of,
    expirer_held_off,
    group,
    make_group,
    recipients_of,
    send,
    send_ok,
    soon,
    stored_counts,
    user,
    wait_until_past,
)

UNKNOWN = "00000000-0000-4000-8000-000000000000"  # names no user
NOTHING_STORED = {"messages": 0, "message_recipients": 0, "message_addressees": 0, "events": 0}
CREDENTIAL = {"kind": "credential", "title": "wifi", "username": "guest", "password": "pw"}


# Who receives a message


async def test_send_answers_id_sent_at_and_recipient_count(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Sending answers 201 with the message's id, when it was sent, and how many received it."""
    alice, bob, carol = await make_user(), await make_user(), await make_user()
    answer = await send(alice, [user(bob), user(carol)], body="hello")
    assert answer.status_code == 201, answer.text
    receipt = answer.json()
    assert set(receipt) == {"id", "sent_at", "recipients"}
    assert receipt["recipients"] == 2
    assert receipt["sent_at"].endswith("Z")
    stored = await raw_db.fetchrow(
        "select sender_id, sent_at from messages where id = $1::uuid", receipt["id"]
    )
    assert stored["sender_id"] == alice.user.id
    assert datetime.fromisoformat(receipt["sent_at"]) == stored["sent_at"]
    assert await recipients_of(raw_db, receipt["id"]) == {bob.id, carol.id}


async def test_named_users_and_group_members_receive_it_once_each(
    make_user: MakeUser, admin: LoggedInUser, raw_db: asyncpg.Connection
) -> None:
    """A user named directly and through two groups receives the message once."""
    alice, bob, carol, dave = [await make_user() for _ in range(4)]
    first = await make_group(admin, bob, carol)
    second = await make_group(admin, carol, dave)
    answer = await send(alice, [user(bob), group(first), group(second), user(bob)])
    assert answer.status_code == 201, answer.text
    assert answer.json()["recipients"] == 3
    message_id = answer.json()["id"]
    assert await recipients_of(raw_db, message_id) == {bob.id, carol.id, dave.id}
    for person in (bob, carol, dave):
        assert await box_ids(person) == [message_id]


async def test_disabled_accounts_do_not_receive(
    make_user: MakeUser, admin: LoggedInUser, raw_db: asyncpg.Connection
) -> None:
    """Disabled accounts, named or in a group, are left out of the recipients and the count."""
    alice, bob, carol, dave = [await make_user() for _ in range(4)]
    team = await make_group(admin, bob, carol)
    await disable(admin, carol)
    await disable(admin, dave)
    answer = await send(alice, [group(team), user(dave)])
    assert answer.status_code == 201, answer.text
    assert answer.json()["recipients"] == 1
    assert await recipients_of(raw_db, answer.json()["id"]) == {bob.id}


async def test_a_send_to_users_only_names_them_all_and_reaches_the_enabled_once(
    make_user: MakeUser, admin: LoggedInUser, raw_db: asyncpg.Connection
) -> None:
    """Named users only (one twice, one disabled): the To field keeps each once, in order, by
    their names; only the enabled receive it, once; the answer counts them."""
    alice, bob, carol, dave = [await make_user(display_name=f"User {n}") for n in "ABCD"]
    await disable(admin, dave)
    answer = await send(alice, [user(carol), user(dave), user(bob), user(carol)])
    assert answer.status_code == 201, answer.text
    assert answer.json()["recipients"] == 2
    assert await recipients_of(raw_db, answer.json()["id"]) == {bob.id, carol.id}
    (sent,) = (await alice.http.get("/api/messages", params={"box": "sent"})).json()["messages"]
    assert [(r["id"], r["name"]) for r in sent["recipients"]] == [
        (carol.id, "User C"), (dave.id, "User D"), (bob.id, "User B")
    ]


@pytest.mark.parametrize("who", ["an unknown user", "only disabled users"])
async def test_users_who_cannot_receive_are_refused_and_nothing_is_kept(
    make_user: MakeUser, admin: LoggedInUser, raw_db: asyncpg.Connection, who: str
) -> None:
    """Naming a user who does not exist (beside one who does) is a field error naming that
    entry; naming only disabled users is refused as reaching nobody; nothing is kept."""
    alice, bob = await make_user(), await make_user()
    if who == "an unknown user":
        answer = await send(alice, [user(bob), {"kind": "user", "id": UNKNOWN}])
        assert_invalid(answer, "to.1.id")
    else:
        await disable(admin, bob)
        assert_invalid(await send(alice, [user(bob)]), "to")
    assert await stored_counts(raw_db) == NOTHING_STORED


async def test_sender_does_not_receive_through_own_group(
    make_user: MakeUser, admin: LoggedInUser
) -> None:
    """Writing to a group one belongs to does not put the message in one's own inbox."""
    alice, bob = await make_user(), await make_user()
    team = await make_group(admin, alice, bob)
    answer = await send(alice, [group(team)])
    assert answer.status_code == 201, answer.text
    assert answer.json()["recipients"] == 1
    assert await box_ids(alice) == []
    assert await box_ids(alice, "sent") == [answer.json()["id"]]
    assert await box_ids(bob) == [answer.json()["id"]]


async def test_sender_naming_themselves_receives_it(
    make_user: MakeUser, admin: LoggedInUser
) -> None:
    """A sender who names themselves gets the message in their inbox, once."""
    alice, bob = await make_user(), await make_user()
    team = await make_group(admin, alice, bob)
    answer = await send(alice, [user(alice), group(team)])
    assert answer.status_code == 201, answer.text
    assert answer.json()["recipients"] == 2
    assert await box_ids(alice) == [answer.json()["id"]]
    assert (await alice.http.get("/api/unread")).json()["count"] == 1


@pytest.mark.parametrize("who", ["only the sender", "only disabled members"])
async def test_nobody_to_receive_is_refused(
    make_user: MakeUser, admin: LoggedInUser, raw_db: asyncpg.Connection, who: str
) -> None:
    """A To field that reaches no enabled user but the sender is refused, and nothing is kept."""
    alice, bob = await make_user(), await make_user()
    if who == "only the sender":
        team = await make_group(admin, alice)
    else:
        team = await make_group(admin, bob)
        await disable(admin, bob)
    assert_invalid(await send(alice, [group(team)]), "to")
    assert await stored_counts(raw_db) == NOTHING_STORED


async def test_group_changes_after_sending_do_not_change_recipients(
    make_user: MakeUser, admin: LoggedInUser, raw_db: asyncpg.Connection
) -> None:
    """Who received a message is fixed when it is sent, whatever happens to the group later."""
    alice, bob, carol = [await make_user() for _ in range(3)]
    team = await make_group(admin, bob)
    first = await send(alice, [group(team)])
    assert first.status_code == 201, first.text
    changed = await admin.http.put(
        f"/api/admin/groups/{team}/members", json={"member_ids": [carol.id]}
    )
    assert changed.status_code == 200, changed.text
    assert await box_ids(bob) == [first.json()["id"]]
    assert await box_ids(carol) == []
    assert await recipients_of(raw_db, first.json()["id"]) == {bob.id}
    deleted = await admin.http.delete(f"/api/admin/groups/{team}")
    assert deleted.status_code == 204
    assert await box_ids(bob) == [first.json()["id"]]
    sent = (await alice.http.get("/api/messages", params={"box": "sent"})).json()["messages"]
    assert sent[0]["recipient_count"] == 1


# What is refused

def _payload(**changes: Any) -> Callable[[LoggedInUser], dict[str, Any]]:
    """A valid message to `bob` (here the sender themselves), with these changes.

    A value of None removes the field; a callable is given `bob`.
    """

    def build(bob: LoggedInUser) -> dict[str, Any]:
        payload: dict[str, Any] = {"to": [user(bob)], "subject": "a subject", "body": "b"}
        for name, value in changes.items():
            if value is None:
                payload.pop(name)
            else:
                payload[name] = value(bob) if callable(value) else value
        return payload

    return build


def _past() -> str:
    return (datetime.now(UTC) - timedelta(minutes=1)).isoformat()


REFUSED = [
    ("empty to", _payload(to=[]), "to"),
    ("to not a list", _payload(to=lambda bob: user(bob)), "to"),
    ("unknown user",
     _payload(to=lambda bob: [user(bob), {"kind": "user", "id": str(uuid.uuid4())}]), "to.1.id"),
    ("unknown group", _payload(to=[{"kind": "group", "id": str(uuid.uuid4())}]), "to.0.id"),
    ("a user named as a group", _payload(to=lambda bob: [{"kind": "group", "id": bob.id}]),
     "to.0.id"),
    ("unknown kind", _payload(to=lambda bob: [{"kind": "robot", "id": bob.id}]), "to.0.kind"),
    ("id not a uuid", _payload(to=[{"kind": "user", "id": "bob"}]), "to.0.id"),
    ("missing subject", _payload(subject=None), "subject"),
    ("empty subject", _payload(subject=""), "subject"),
    ("subject of 256", _payload(subject="s" * 256), "subject"),
    ("subject a number", _payload(subject=5), "subject"),
    ("body of 65537", _payload(body="b" * 65537), "body"),
    ("NUL in subject", _payload(subject="a\x00b"), "subject"),
    ("NUL in body", _payload(body="a\x00b"), "body"),
    ("expiry passed", _payload(expires_at=lambda bob: _past()), "expires_at"),
    ("expiry without zone", _payload(expires_at="2099-01-01T10:00:00"), "expires_at"),
    ("expiry not a time", _payload(expires_at="tomorrow"), "expires_at"),
    ("expiry out of range", _payload(expires_at="9999-12-31T23:59:59-14:00"), "expires_at"),
    ("high_priority yes", _payload(high_priority="yes"), "high_priority"),
    ("high_priority 1", _payload(high_priority=1), "high_priority"),
    ("reply_to not a uuid", _payload(reply_to="earlier"), "reply_to"),
    ("unknown field", _payload(cc=[]), "cc"),
    ("21 attachments", _payload(attachments=[CREDENTIAL] * 21), "attachments"),
]


@pytest.mark.parametrize(
    ("build", "field"), [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED]
)
async def test_bad_message_is_refused_naming_the_field(
    make_user: MakeUser,
    raw_db: asyncpg.Connection,
    build: Callable[[LoggedInUser], dict[str, Any]],
    field: str,
) -> None:
    """A bad field is answered 400 naming it, and nothing is kept, not even the Idempotency-Key."""
    alice = await make_user()
    answer = await alice.http.post(
        "/api/messages", json=build(alice), headers={"Idempotency-Key": "k1"}
    )
    assert_invalid(answer, field)
    assert await stored_counts(raw_db) == NOTHING_STORED
    assert await count_rows(raw_db, "idempotency_keys") == 0


async def test_longest_subject_and_body_are_kept_whole(make_user: MakeUser) -> None:
    """A subject of 255 characters (not bytes) and a body of 65,536 arrive unchanged."""
    alice, bob = await make_user(), await make_user()
    subject = "é" + "🔑" * 254
    body = "x" * 65535 + "🔒"
    message_id = await send_ok(alice, bob, subject=subject, body=body)
    opened = (await bob.http.get(f"/api/messages/{message_id}")).json()
    assert opened["subject"] == subject
    assert opened["body"] == body


async def test_body_not_json_is_refused(make_user: MakeUser, raw_db: asyncpg.Connection) -> None:
    """A body that is not a JSON object is a 400, never a 500."""
    alice = await make_user()
    for raw in (b"{", b"[]", b"null", b'{"subject": "\\ud800"}'):
        answer = await alice.http.post(
            "/api/messages", content=raw, headers={"Content-Type": "application/json"}
        )
        assert_error(answer, 400, "invalid")
    assert await count_rows(raw_db, "messages") == 0


# Rights


async def test_sender_without_can_send_is_forbidden(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """A user whose can_send is off gets 403 and sends nothing."""
    alice, bob = await make_user(can_send=False), await make_user()
    assert_error(await send(alice, [user(bob)]), 403, "forbidden")
    assert await stored_counts(raw_db) == NOTHING_STORED


async def test_attachments_without_can_attach_are_forbidden(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """A user whose can_attach is off gets 403 for a message with attachments."""
    alice, bob = await make_user(can_attach=False), await make_user()
    assert_error(await send(alice, [user(bob)], attachments=[CREDENTIAL]), 403, "forbidden")
    assert await stored_counts(raw_db) == NOTHING_STORED
    assert (await send(alice, [user(bob)])).status_code == 201


# Idempotency-Key


async def test_retry_with_the_same_key_sends_nothing_again(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Resending the same message under the same key returns the first answer and sends once."""
    alice, bob, carol = [await make_user() for _ in range(3)]
    first = await send(alice, [user(bob), user(carol)], key="retry-1", body="once")
    again = await send(alice, [user(bob), user(carol)], key="retry-1", body="once")
    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json()
    assert await count_rows(raw_db, "messages") == 1
    for person in (bob, carol):
        assert [e["type"] for e in await events_of(raw_db, person)] == ["message.new"]
        assert await box_ids(person) == [first.json()["id"]]


async def test_a_retry_after_the_expiry_time_still_gets_the_first_answer(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """A retry of a short-lived message arriving after its expiry gets the first answer, not 400."""
    alice, bob = await make_user(), await make_user()
    expires_at = soon()
    first = await send(alice, [user(bob)], key="short", expires_at=expires_at)
    assert first.status_code == 201, first.text
    async with expirer_held_off(raw_db, first.json()["id"]):
        await wait_until_past(raw_db, expires_at)
        again = await send(alice, [user(bob)], key="short", expires_at=expires_at)
        assert again.status_code == 201, again.text
        assert again.json() == first.json()
        assert await count_rows(raw_db, "messages") == 1


async def test_same_key_with_another_message_is_a_conflict(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """The same key with a different message is answered 409 and sends nothing."""
    alice, bob = await make_user(), await make_user()
    assert (await send(alice, [user(bob)], key="k", body="first")).status_code == 201
    assert_error(await send(alice, [user(bob)], key="k", body="second"), 409, "conflict")
    assert_error(await send(alice, [user(bob)], key="k", body="first", high_priority=True),
                 409, "conflict")
    assert await count_rows(raw_db, "messages") == 1
    assert len(await events_of(raw_db, bob)) == 1


async def test_keys_of_different_senders_are_independent(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Two senders using the same key both send their own message."""
    alice, bob, carol = [await make_user() for _ in range(3)]
    from_alice = await send(alice, [user(carol)], key="shared", body="same")
    from_bob = await send(bob, [user(carol)], key="shared", body="same")
    assert from_alice.status_code == from_bob.status_code == 201
    assert from_alice.json()["id"] != from_bob.json()["id"]
    assert await count_rows(raw_db, "messages") == 2
    assert len(await box_ids(carol)) == 2


async def test_simultaneous_retries_send_once(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Several requests under one key at the same moment all answer the same single message."""
    alice, bob = await make_user(), await make_user()
    answers = await asyncio.gather(
        *(send(alice, [user(bob)], key="burst", body="x") for _ in range(5))
    )
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert await count_rows(raw_db, "messages") == 1
    assert len(await events_of(raw_db, bob)) == 1


async def test_refused_send_does_not_use_up_its_key(make_user: MakeUser) -> None:
    """A send refused for an unknown recipient can be corrected and retried under the same key."""
    alice, bob = await make_user(), await make_user()
    wrong = await send(alice, [{"kind": "user", "id": str(uuid.uuid4())}], key="fix-me")
    assert_invalid(wrong, "to.0.id")
    fixed = await send(alice, [user(bob)], key="fix-me")
    assert fixed.status_code == 201, fixed.text
    assert await box_ids(bob) == [fixed.json()["id"]]


@pytest.mark.parametrize("key", ["", "k" * 256])
async def test_idempotency_key_of_bad_length_is_refused(
    make_user: MakeUser, raw_db: asyncpg.Connection, key: str
) -> None:
    """An empty Idempotency-Key or one over 255 characters is a 400 and sends nothing."""
    alice, bob = await make_user(), await make_user()
    assert_invalid(await send(alice, [user(bob)], key=key), "Idempotency-Key")
    assert await count_rows(raw_db, "messages") == 0


# reply_to


async def test_reply_to_a_received_or_sent_message_is_accepted(make_user: MakeUser) -> None:
    """A reply may point at a message one received or sent, and recipients see what it answers."""
    alice, bob = await make_user(), await make_user()
    original = await send_ok(alice, bob)
    reply = await send_ok(bob, alice, reply_to=original)
    follow_up = await send_ok(bob, alice, reply_to=reply)
    inbox = {m["id"]: m for m in (await alice.http.get("/api/messages")).json()["messages"]}
    assert inbox[reply]["reply_to"] == original
    assert inbox[follow_up]["reply_to"] == reply
    opened = (await alice.http.get(f"/api/messages/{reply}")).json()
    assert opened["reply_to"] == original


@pytest.mark.parametrize("case", ["someone else's", "deleted from inbox", "unknown"])
async def test_reply_to_a_message_one_cannot_see_is_not_found(
    make_user: MakeUser, raw_db: asyncpg.Connection, case: str
) -> None:
    """Replying to a message one cannot see is a 404, and nothing is sent."""
    alice, bob, mallory = [await make_user() for _ in range(3)]
    original = await send_ok(alice, bob)
    if case == "deleted from inbox":
        mallory = bob
        assert (await bob.http.delete(f"/api/messages/{original}")).status_code == 204
    elif case == "unknown":
        original = str(uuid.uuid4())
    before = await stored_counts(raw_db)
    answer = await send(mallory, [user(alice)], reply_to=original)
    assert_error(answer, 404, "not_found")
    assert await stored_counts(raw_db) == before
