"""The inbox and the sent box, opening, closing, deleting and recalling, and the unread count."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from realtime import codec
from tests.conftest import LoggedInUser, MakeUser, unique_name
from tests.messages_support import (
    assert_error,
    assert_invalid,
    box,
    box_ids,
    count_rows,
    events_of,
    group,
    make_group,
    send,
    send_ok,
    unread,
    user,
)

# An id no message has: fixed, so that parallel workers collect the same tests.
NO_SUCH_ID = "5f1c0e2a-7d0b-4a43-9a55-2f4d3c1b6e70"


async def pages(person: LoggedInUser, name: str, limit: int) -> list[list[str]]:
    """Walk a box page by page through its `next` cursors; return the ids of each page."""
    found: list[list[str]] = []
    params: dict[str, Any] = {"box": name, "limit": limit}
    while True:
        answer = await person.http.get("/api/messages", params=params)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        found.append([m["id"] for m in page["messages"]])
        if page["next"] is None:
            return found
        assert len(found) < 50, "the cursors never end"
        params["before"] = page["next"]


# Lists and pages


@pytest.mark.parametrize("name", ["inbox", "sent"])
async def test_boxes_list_newest_first_in_pages(make_user: MakeUser, name: str) -> None:
    """A box lists newest first, and its pages hold every message once, with no gap."""
    alice, bob = await make_user(), await make_user()
    sent = [await send_ok(alice, bob, subject=f"message {i}") for i in range(7)]
    owner = bob if name == "inbox" else alice
    assert await pages(owner, name, 3) == [sent[6:3:-1], sent[3:0:-1], sent[:1]]
    assert await box_ids(owner, name) == sent[::-1]


async def test_default_page_is_fifty(make_user: MakeUser) -> None:
    """Without a limit a page holds 50 messages, and `next` leads to the rest."""
    alice, bob = await make_user(), await make_user()
    sent = [await send_ok(alice, bob) for _ in range(52)]
    first = (await bob.http.get("/api/messages")).json()
    assert [m["id"] for m in first["messages"]] == sent[:1:-1]
    rest = (await bob.http.get("/api/messages", params={"before": first["next"]})).json()
    assert [m["id"] for m in rest["messages"]] == sent[1::-1]
    assert rest["next"] is None


async def test_messages_sent_at_the_same_instant_page_without_loss(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Messages with the same sending time are neither repeated nor skipped across pages."""
    alice, bob = await make_user(), await make_user()
    sent = [await send_ok(alice, bob) for _ in range(5)]
    await raw_db.execute("update messages set sent_at = '2026-01-02T03:04:05Z'")
    await raw_db.execute("update message_recipients set sent_at = '2026-01-02T03:04:05Z'")
    by_id = sorted(sent, key=uuid.UUID, reverse=True)
    for owner, name in ((bob, "inbox"), (alice, "sent")):
        assert await pages(owner, name, 2) == [by_id[:2], by_id[2:4], by_id[4:]]


async def test_new_messages_do_not_shift_the_next_page(make_user: MakeUser) -> None:
    """A message arriving while one pages through the inbox does not repeat or hide older ones."""
    alice, bob = await make_user(), await make_user()
    sent = [await send_ok(alice, bob) for _ in range(4)]
    first = (await bob.http.get("/api/messages", params={"limit": 2})).json()
    assert [m["id"] for m in first["messages"]] == [sent[3], sent[2]]
    newest = await send_ok(alice, bob)
    second = (
        await bob.http.get("/api/messages", params={"limit": 2, "before": first["next"]})
    ).json()
    assert [m["id"] for m in second["messages"]] == [sent[1], sent[0]]
    assert (await box_ids(bob))[0] == newest


BAD_LIST_PARAMETERS = [
    ({"box": "outbox"}, "box"),
    ({"box": ""}, "box"),
    ({"limit": "0"}, "limit"),
    ({"limit": "101"}, "limit"),
    ({"limit": "x"}, "limit"),
    ({"limit": "-1"}, "limit"),
    ({"limit": "2.5"}, "limit"),
    ({"limit": "²"}, "limit"),
    ({"limit": "1" * 5000}, "limit"),
    ({"before": "not a cursor"}, "before"),
    ({"before": codec.encode_cursor(["yesterday", str(uuid.uuid4())])}, "before"),
    ({"before": codec.encode_cursor(["2026-01-01T00:00:00Z", 5])}, "before"),
    ({"before": codec.encode_cursor(["2026-01-01T00:00:00Z"])}, "before"),
    ({"before": codec.encode_cursor(["2026-01-01T00:00:00", str(uuid.uuid4())])}, "before"),
    ({"before": codec.encode_cursor(["9999-12-31T23:59:59-14:00", str(uuid.uuid4())])},
     "before"),
    ({"before": codec.encode_cursor(["2026-01-01T00:00:00Z", "not-a-uuid"])}, "before"),
]


@pytest.mark.parametrize(("params", "field"), BAD_LIST_PARAMETERS)
async def test_bad_list_parameters_are_refused(
    make_user: MakeUser, params: dict[str, str], field: str
) -> None:
    """A bad box, limit or cursor is answered 400 naming it, never 500."""
    alice = await make_user()
    assert_invalid(await alice.http.get("/api/messages", params=params), field)


# What a summary shows


async def test_sent_summary_shows_the_to_field_and_receipts(
    make_user: MakeUser, admin: LoggedInUser
) -> None:
    """The sender sees the To field as written, with names, how many received and read it."""
    alice = await make_user(display_name="Alice Sender")
    bob = await make_user(display_name="Bob Reader")
    carol, dave = await make_user(), await make_user()
    team_name = unique_name("Team")
    team = await make_group(admin, carol, dave, name=team_name)
    message_id = (await send(alice, [user(bob), group(team)], high_priority=True)).json()["id"]
    (summary,) = await box(alice, "sent")
    assert summary["id"] == message_id
    assert summary["sender"] == {"id": alice.id, "display_name": "Alice Sender"}
    assert summary["recipients"] == [
        {"kind": "user", "id": bob.id, "name": "Bob Reader"},
        {"kind": "group", "id": team, "name": team_name},
    ]
    assert (summary["recipient_count"], summary["read_count"]) == (3, 0)
    assert summary["high_priority"] is True
    assert "body" not in summary
    for reader in (bob, carol):
        assert (await reader.http.post(f"/api/messages/{message_id}/read")).status_code == 200
    (summary,) = await box(alice, "sent")
    assert (summary["recipient_count"], summary["read_count"]) == (3, 2)


async def test_inbox_summary_is_unread_and_hides_the_to_field(make_user: MakeUser) -> None:
    """A recipient's summary has read_at null while unread and never shows the other recipients."""
    alice = await make_user(display_name="Alice Sender")
    bob, carol = await make_user(), await make_user()
    expires_at = "2099-05-06T07:08:09Z"
    answer = await send(alice, [user(bob), user(carol)], subject="Quarterly", body="secret",
                        expires_at=expires_at)
    receipt = answer.json()
    (summary,) = await box(bob)
    assert summary["id"] == receipt["id"]
    assert summary["sender"] == {"id": alice.id, "display_name": "Alice Sender"}
    assert summary["subject"] == "Quarterly"
    assert summary["sent_at"] == receipt["sent_at"]
    assert summary["expires_at"] == expires_at
    assert summary["high_priority"] is False
    assert summary["read_at"] is None
    assert summary["reply_to"] is None
    assert summary["attachments"] == []
    assert summary["recipients"] is None
    assert "body" not in summary


# Opening a message


async def test_opening_shows_the_body_and_does_not_mark_read(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Opening a message shows its body and leaves it unread until Close."""
    alice, bob = await make_user(), await make_user()
    message_id = await send_ok(alice, bob, subject="s", body="the body")
    for reader in (bob, alice):
        opened = await reader.http.get(f"/api/messages/{message_id}")
        assert opened.status_code == 200, opened.text
        assert opened.json()["body"] == "the body"
        assert opened.json()["subject"] == "s"
        assert opened.json()["read_at"] is None
    assert (await box(bob))[0]["read_at"] is None
    assert (await unread(bob))["count"] == 1
    assert [e["type"] for e in await events_of(raw_db, bob)] == ["message.new"]


@pytest.mark.parametrize("path", ["not-a-uuid", "12345", NO_SUCH_ID])
async def test_opening_a_malformed_or_unknown_id_is_not_found(
    make_user: MakeUser, path: str
) -> None:
    """An id that is not a UUID, or names no message, is a 404 for every message call."""
    alice = await make_user()
    assert_error(await alice.http.get(f"/api/messages/{path}"), 404, "not_found")
    assert_error(await alice.http.post(f"/api/messages/{path}/read"), 404, "not_found")
    assert_error(await alice.http.delete(f"/api/messages/{path}"), 404, "not_found")


async def test_a_stranger_gets_not_found_for_someone_elses_message(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Opening, closing, deleting or answering a message one did not get is 404; nothing changes."""
    alice, bob, mallory = [await make_user() for _ in range(3)]
    message_id = await send_ok(alice, bob, body="private")
    calls = [
        mallory.http.get(f"/api/messages/{message_id}"),
        mallory.http.post(f"/api/messages/{message_id}/read"),
        mallory.http.delete(f"/api/messages/{message_id}"),
        send(mallory, [user(alice)], reply_to=message_id),
    ]
    for call in calls:
        error = assert_error(await call, 404, "not_found")
        assert "private" not in str(error)
    assert await count_rows(raw_db, "messages") == 1
    assert await events_of(raw_db, mallory) == []
    assert await box_ids(bob) == [message_id]
    assert (await box(bob))[0]["read_at"] is None
    assert await box_ids(alice, "sent") == [message_id]


# Close


async def test_close_marks_read_once(make_user: MakeUser, raw_db: asyncpg.Connection) -> None:
    """Close answers the read time, the same one when repeated, and tells reader and sender once."""
    alice, bob = await make_user(), await make_user()
    message_id = await send_ok(alice, bob)
    first = await bob.http.post(f"/api/messages/{message_id}/read")
    assert first.status_code == 200, first.text
    read_at = first.json()["read_at"]
    assert first.json() == {"read_at": read_at} and read_at.endswith("Z")
    again = await bob.http.post(f"/api/messages/{message_id}/read")
    assert again.status_code == 200 and again.json() == {"read_at": read_at}
    assert (await box(bob))[0]["read_at"] == read_at
    assert (await bob.http.get(f"/api/messages/{message_id}")).json()["read_at"] == read_at
    assert (await unread(bob))["count"] == 0
    for person in (alice, bob):
        reads = [e for e in await events_of(raw_db, person) if e["type"] == "message.read"]
        assert len(reads) == 1


async def test_close_by_someone_who_did_not_receive_it_is_not_found(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Only a recipient can close a message: its sender and strangers get 404."""
    alice, bob, mallory = [await make_user() for _ in range(3)]
    message_id = await send_ok(alice, bob)
    assert_error(await alice.http.post(f"/api/messages/{message_id}/read"), 404, "not_found")
    assert_error(await mallory.http.post(f"/api/messages/{message_id}/read"), 404, "not_found")
    assert (await box(bob))[0]["read_at"] is None
    assert (await box(alice, "sent"))[0]["read_count"] == 0
    assert await count_rows(raw_db, "events") == 1


# Delete and recall


async def test_a_recipient_deletes_only_their_own_copy(make_user: MakeUser) -> None:
    """A recipient's delete empties their inbox only; others and the sender keep the message."""
    alice, bob, carol = [await make_user() for _ in range(3)]
    message_id = await send_ok(alice, bob, carol)
    deleted = await bob.http.delete(f"/api/messages/{message_id}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert await box_ids(bob) == []
    assert_error(await bob.http.get(f"/api/messages/{message_id}"), 404, "not_found")
    assert_error(await bob.http.post(f"/api/messages/{message_id}/read"), 404, "not_found")
    assert_error(await bob.http.delete(f"/api/messages/{message_id}"), 404, "not_found")
    assert await box_ids(carol) == [message_id]
    assert (await carol.http.get(f"/api/messages/{message_id}")).status_code == 200
    (sent,) = await box(alice, "sent")
    assert sent["id"] == message_id and sent["recipient_count"] == 2


async def test_the_sender_recalls_a_message_from_everyone(
    make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """The sender's delete removes the message from every inbox, the sent box and the database."""
    alice, bob, carol = [await make_user() for _ in range(3)]
    message_id = await send_ok(alice, bob, carol, body="oops")
    kept = await send_ok(alice, bob)
    assert (await alice.http.delete(f"/api/messages/{message_id}")).status_code == 204
    assert await box_ids(alice, "sent") == [kept]
    assert await box_ids(bob) == [kept]
    assert await box_ids(carol) == []
    for person in (alice, bob, carol):
        assert_error(await person.http.get(f"/api/messages/{message_id}"), 404, "not_found")
    assert_error(await alice.http.delete(f"/api/messages/{message_id}"), 404, "not_found")
    for query in (
        "select count(*) from messages where id = $1::uuid",
        "select count(*) from message_recipients where message_id = $1::uuid",
        "select count(*) from message_addressees where message_id = $1::uuid",
    ):
        assert await raw_db.fetchval(query, message_id) == 0


# Unread


async def test_unread_follows_reads_and_deletes(make_user: MakeUser) -> None:
    """The unread count and the unread high-priority list follow Close, delete and recall."""
    alice, bob = await make_user(), await make_user()
    plain = await send_ok(alice, bob, subject="plain")
    urgent = await send_ok(alice, bob, subject="urgent", high_priority=True)
    later = await send_ok(alice, bob, subject="urgent too", high_priority=True)
    recalled = await send_ok(alice, bob, subject="recalled", high_priority=True)
    state = await unread(bob)
    assert state["count"] == 4
    assert [m["id"] for m in state["high_priority"]] == [recalled, later, urgent]
    assert state["high_priority"][1]["subject"] == "urgent too"
    assert state["high_priority"][1]["read_at"] is None
    assert (await alice.http.delete(f"/api/messages/{recalled}")).status_code == 204
    assert (await bob.http.post(f"/api/messages/{urgent}/read")).status_code == 200
    state = await unread(bob)
    assert state["count"] == 2
    assert [m["id"] for m in state["high_priority"]] == [later]
    assert (await bob.http.delete(f"/api/messages/{later}")).status_code == 204
    assert await unread(bob) == {"count": 1, "high_priority": []}
    assert (await bob.http.post(f"/api/messages/{plain}/read")).status_code == 200
    assert await unread(bob) == {"count": 0, "high_priority": []}
    assert (await unread(alice))["count"] == 0


# Authentication


MESSAGE_CALLS = [
    ("GET", "/api/messages"),
    ("POST", "/api/messages"),
    ("GET", f"/api/messages/{NO_SUCH_ID}"),
    ("POST", f"/api/messages/{NO_SUCH_ID}/read"),
    ("DELETE", f"/api/messages/{NO_SUCH_ID}"),
    ("GET", "/api/unread"),
]


@pytest.mark.parametrize(("method", "path"), MESSAGE_CALLS)
async def test_message_calls_need_a_login(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    """Every message call without a session is a 401."""
    answer = await client.request(method, path, json={} if method == "POST" else None)
    assert_error(answer, 401, "unauthenticated")
