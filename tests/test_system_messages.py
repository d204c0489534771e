"""System messages: an administrator's announcement every user sees, live and at sign-in,
until they dismiss it (a reminder: until their next sign-in), it is withdrawn or it ends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from realtime.api.http import Services
from realtime.crypto import Keyring, generate_master_key, master_key_id
from realtime.events import EventSink
from realtime.rotation import rotate_master_key
from realtime.system_messages import MAX_ACTIVE, MAX_BODY, MAX_SUBJECT, SystemMessages
from tests.conftest import TEST_MASTER_KEY, LoggedInUser, MakeUser
from tests.hostile_support import UNKNOWN_ID, assert_error
from tests.live_server import LiveServer
from tests.test_links_live import ON_TIME
from tests.timing import TIME_FACTOR, eventually
from tests.ws_support import frames_until, next_frame, no_more_frames, open_socket

ADMIN_URL = "/api/admin/system-messages"


def soon(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def post(admin: LoggedInUser, **fields: Any) -> dict[str, Any]:
    body = {"subject": "Maintenance tonight", "body": "From 22:00 to 23:00.",
            "mode": "dismissible", **fields}
    answer = await admin.http.post(ADMIN_URL, json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def shown(person: LoggedInUser) -> list[str]:
    """The subjects of the system messages the person is shown now."""
    answer = await person.http.get("/api/system-messages")
    assert answer.status_code == 200, answer.text
    return [m["subject"] for m in answer.json()["messages"]]


async def test_an_admin_posts_one_and_every_user_is_shown_it(
    admin: LoggedInUser, make_user: MakeUser
) -> None:
    """The answer holds the message; the admins' list and every user's list show it."""
    alice = await make_user()
    created = await post(admin, mode="reminder", ends_at=soon(3600))
    assert created["subject"] == "Maintenance tonight"
    assert created["body"] == "From 22:00 to 23:00."
    assert created["mode"] == "reminder" and created["ends_at"] is not None
    assert set(created) == {"id", "subject", "body", "mode", "created_at", "ends_at"}
    listed = (await admin.http.get(ADMIN_URL)).json()["messages"]
    assert listed == [created]
    assert (await alice.http.get("/api/system-messages")).json()["messages"] == [created]
    assert await shown(admin) == ["Maintenance tonight"]
    newcomer = await make_user()  # an account made afterwards is shown it too
    assert await shown(newcomer) == ["Maintenance tonight"]


async def test_subject_and_body_are_sealed_at_rest(
    admin: LoggedInUser, raw_db: asyncpg.Connection
) -> None:
    """Neither the subject nor the body is stored readable."""
    await post(admin, subject="the vault moves", body="to the new building")
    row = await raw_db.fetchrow("select subject, body from system_messages")
    assert b"vault" not in bytes(row["subject"]) and b"building" not in bytes(row["body"])


@pytest.mark.parametrize(("fields", "at_fault"), [
    ({"subject": ""}, "subject"),
    ({"subject": "x" * (MAX_SUBJECT + 1)}, "subject"),
    ({"subject": "nul \x00"}, "subject"),
    ({"body": "x" * (MAX_BODY + 1)}, "body"),
    ({"mode": "popup"}, "mode"),
    ({"mode": None}, "mode"),
    ({"ends_at": "2020-01-01T00:00:00Z"}, "ends_at"),
    ({"ends_at": "tomorrow"}, "ends_at"),
    ({"ends_at": "2030-01-01 10:00:00"}, "ends_at"),
    ({"priority": "high"}, "priority"),
])
async def test_a_bad_message_is_refused_naming_its_field(
    admin: LoggedInUser, raw_db: asyncpg.Connection, fields: dict[str, Any], at_fault: str
) -> None:
    """400 invalid with the field at fault, and nothing stored nor told to anyone."""
    body = {"subject": "s", "body": "", "mode": "dismissible", **fields}
    error = assert_error(await admin.http.post(ADMIN_URL, json=body), 400, "invalid")
    assert at_fault in error["fields"], error
    assert await raw_db.fetchval("select count(*) from system_messages") == 0
    assert await raw_db.fetchval(
        "select count(*) from events where type like 'system.%'"
    ) == 0


async def test_the_largest_message_is_accepted(admin: LoggedInUser) -> None:
    """A subject and a body at their limits go through."""
    created = await post(admin, subject="s" * MAX_SUBJECT, body="b" * MAX_BODY)
    assert len(created["subject"]) == MAX_SUBJECT and len(created["body"]) == MAX_BODY


async def test_ordinary_users_cannot_post_list_or_withdraw(
    admin: LoggedInUser, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """403 forbidden on every administrators' endpoint, and the message stays."""
    created = await post(admin)
    mallory = await make_user()
    assert_error(await mallory.http.post(ADMIN_URL, json={
        "subject": "fake", "mode": "dismissible"}), 403, "forbidden")
    assert_error(await mallory.http.get(ADMIN_URL), 403, "forbidden")
    assert_error(await mallory.http.delete(f"{ADMIN_URL}/{created['id']}"), 403, "forbidden")
    assert await raw_db.fetchval("select count(*) from system_messages") == 1
    assert await shown(mallory) == ["Maintenance tonight"]


async def test_at_most_the_limit_are_shown_at_once(
    admin: LoggedInUser, make_user: MakeUser
) -> None:
    """The one past the limit is 409, others are still served; withdrawing one makes room."""
    alice = await make_user()
    made = [await post(admin, subject=f"notice {n}") for n in range(MAX_ACTIVE)]
    assert_error(await admin.http.post(ADMIN_URL, json={
        "subject": "one too many", "mode": "dismissible"}), 409, "conflict")
    assert len(await shown(alice)) == MAX_ACTIVE
    assert (await alice.http.get("/api/me")).status_code == 200
    assert (await admin.http.delete(f"{ADMIN_URL}/{made[0]['id']}")).status_code == 204
    await post(admin, subject="now there is room")


async def test_simultaneous_posts_cannot_pass_the_limit_together(
    admin: LoggedInUser, raw_db: asyncpg.Connection
) -> None:
    """With room for two, eight posts at once (a user's requests in flight) keep exactly two;
    the other six are 409."""
    for n in range(MAX_ACTIVE - 2):
        await post(admin, subject=f"notice {n}")
    body = {"subject": "rush", "mode": "dismissible"}
    answers = await asyncio.gather(*(admin.http.post(ADMIN_URL, json=body) for _ in range(8)))
    assert sorted(a.status_code for a in answers) == [201] * 2 + [409] * 6
    assert await raw_db.fetchval("select count(*) from system_messages") == MAX_ACTIVE


async def test_dismissing_an_unknown_or_withdrawn_message_is_404(
    admin: LoggedInUser, make_user: MakeUser
) -> None:
    """An id that names no message shown now, or is no id, is the contract's 404."""
    alice = await make_user()
    created = await post(admin)
    assert (await admin.http.delete(f"{ADMIN_URL}/{created['id']}")).status_code == 204
    for name in (UNKNOWN_ID, created["id"], "not-an-id", created["id"].replace("-", "")):
        answer = await alice.http.post(f"/api/system-messages/{name}/dismiss")
        assert_error(answer, 404, "not_found")
    assert_error(await admin.http.delete(f"{ADMIN_URL}/{created['id']}"), 404, "not_found")
    assert_error(await admin.http.delete(f"{ADMIN_URL}/{UNKNOWN_ID}"), 404, "not_found")


async def test_a_dismissal_is_the_users_own(
    admin: LoggedInUser, make_user: MakeUser
) -> None:
    """Alice dismissing hides it from her, in every session, and never from Bob."""
    alice, bob = await make_user(), await make_user()
    created = await post(admin)
    alice_elsewhere = await make_user.another_session(alice)
    answer = await alice.http.post(f"/api/system-messages/{created['id']}/dismiss")
    assert answer.status_code == 204, answer.text
    assert await shown(alice) == [] and await shown(alice_elsewhere) == []
    assert await shown(await make_user.another_session(alice)) == []  # a later sign-in too
    assert await shown(bob) == ["Maintenance tonight"]
    again = await alice.http.post(f"/api/system-messages/{created['id']}/dismiss")
    assert again.status_code == 204


async def test_a_reminder_comes_back_at_each_sign_in(
    admin: LoggedInUser, make_user: MakeUser
) -> None:
    """Dismissed, a reminder leaves the sessions open then; each later sign-in shows it again."""
    alice = await make_user()
    other_device = await make_user.another_session(alice)
    created = await post(admin, mode="reminder", subject="Update your password")
    assert (await alice.http.post(
        f"/api/system-messages/{created['id']}/dismiss")).status_code == 204
    assert await shown(alice) == [] and await shown(other_device) == []
    await asyncio.sleep(0.01)  # a sign-in strictly after the dismissal
    tomorrow = await make_user.another_session(alice)
    assert await shown(tomorrow) == ["Update your password"]
    assert (await tomorrow.http.post(
        f"/api/system-messages/{created['id']}/dismiss")).status_code == 204
    assert await shown(tomorrow) == []
    await asyncio.sleep(0.01)
    assert await shown(await make_user.another_session(alice)) == ["Update your password"]


async def test_a_disabled_user_gets_no_event(
    admin: LoggedInUser, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Posting appends one event to each enabled user and none to a disabled one."""
    alice, gone = await make_user(), await make_user()
    patched = await admin.http.patch(f"/api/admin/users/{gone.id}", json={"disabled": True})
    assert patched.status_code == 200, patched.text
    await post(admin)
    rows = await raw_db.fetch("select user_id from events where type = 'system.message'")
    assert sorted(str(row["user_id"]) for row in rows) == sorted([admin.id, alice.id])


async def test_rotation_rewraps_system_messages(
    admin: LoggedInUser, services: Services, raw_db: asyncpg.Connection, make_user: MakeUser
) -> None:
    """`rotate-key` moves a system message's key to the new master key, which alone opens it."""
    alice = await make_user()
    await post(admin, subject="rotated")
    new_key = generate_master_key()
    assert await rotate_master_key(services.db, Keyring([new_key, TEST_MASTER_KEY])) >= 1
    assert await raw_db.fetchval("select key_id from system_messages") == master_key_id(new_key)
    new_only = SystemMessages(services.db, Keyring([new_key]), sink=EventSink())
    [message] = await new_only.shown_to(alice.user.id, None)
    assert message.subject == "rotated"


# Live: every session of every user, hello, resume.


async def test_every_open_session_of_every_user_gets_it_live(
    live: LiveServer, make_user: MakeUser
) -> None:
    """Many users, one with two devices: each socket gets `system.message` with its user's
    next seq; the message as posted."""
    admin = await make_user(is_admin=True, on=live)
    people = [await make_user(on=live) for _ in range(9)]
    second = await make_user.another_session(people[0], on=live)
    sockets = [await open_socket(live, p) for p in [*people, second]]
    hellos = [await next_frame(ws) for ws in sockets]
    assert all(h["type"] == "hello" and h["system"] == [] for h in hellos)
    created = await post(admin, subject="Fire drill at noon")
    for ws, hello in zip(sockets, hellos, strict=True):
        frame = await next_frame(ws)
        assert frame == {"type": "system.message", "seq": hello["seq"] + 1, "message": created}
    for ws in sockets:
        await ws.close()


async def test_a_user_away_gets_it_in_hello_and_by_resume(
    live: LiveServer, make_user: MakeUser
) -> None:
    """Posted while Alice had no socket: her next hello lists it; a resume from before it
    replays its frame."""
    admin = await make_user(is_admin=True, on=live)
    alice = await make_user(on=live)
    ws = await open_socket(live, alice)
    before = (await next_frame(ws))["seq"]
    await ws.close()
    created = await post(admin)
    ws = await open_socket(live, alice)
    hello = await next_frame(ws)
    assert hello["system"] == [created] and hello["seq"] == before + 1
    await ws.send(f'{{"type":"resume","after_seq":{before}}}')
    frames = await frames_until(ws, "resumed")
    assert frames[0] == {"type": "system.message", "seq": before + 1, "message": created}
    await ws.close()


async def test_a_dismissal_reaches_the_users_other_tabs(
    live: LiveServer, make_user: MakeUser
) -> None:
    """Dismissed on one device, every open tab of the user gets `system.dismissed`; another
    user's tab hears nothing; the next hello no longer lists it."""
    admin = await make_user(is_admin=True, on=live)
    alice, bob = await make_user(on=live), await make_user(on=live)
    phone = await make_user.another_session(alice, on=live)
    created = await post(admin)
    tabs = [await open_socket(live, alice), await open_socket(live, phone)]
    hellos = [await next_frame(ws) for ws in tabs]
    assert all(h["system"] == [created] for h in hellos)
    bobs = await open_socket(live, bob)
    await next_frame(bobs)
    assert (await phone.http.post(
        f"/api/system-messages/{created['id']}/dismiss")).status_code == 204
    for ws, hello in zip(tabs, hellos, strict=True):
        assert await next_frame(ws) == {
            "type": "system.dismissed", "seq": hello["seq"] + 1, "id": created["id"]}
    assert await no_more_frames(bobs) == []
    again = await open_socket(live, alice)
    assert (await next_frame(again))["system"] == []
    for ws in [*tabs, bobs, again]:
        await ws.close()


async def test_withdrawing_removes_it_live_everywhere(
    live: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """Every socket gets `system.withdrawn` (reason withdrawn); the row and its key are gone;
    nobody is shown it any more."""
    admin = await make_user(is_admin=True, on=live)
    people = [await make_user(on=live) for _ in range(8)]
    created = await post(admin)
    sockets = [await open_socket(live, p) for p in people]
    hellos = [await next_frame(ws) for ws in sockets]
    answer = await admin.http.delete(f"{ADMIN_URL}/{created['id']}")
    assert answer.status_code == 204, answer.text
    for ws, hello in zip(sockets, hellos, strict=True):
        assert await next_frame(ws) == {"type": "system.withdrawn", "seq": hello["seq"] + 1,
                                        "id": created["id"], "reason": "withdrawn"}
    assert await raw_db.fetchval("select count(*) from system_messages") == 0
    assert await shown(people[0]) == []
    assert (await admin.http.get(ADMIN_URL)).json()["messages"] == []
    for ws in sockets:
        await ws.close()


async def test_one_that_ends_leaves_open_tabs_on_time(
    live: LiveServer, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """At its end the expirer deletes it and every socket gets `system.withdrawn` (reason
    ended) within a second; no list shows it any more."""
    admin = await make_user(is_admin=True, on=live)
    alice = await make_user(on=live)
    ws = await open_socket(live, alice)
    await next_frame(ws)
    ends_at = datetime.now(UTC) + timedelta(seconds=1.5 * TIME_FACTOR)
    created = await post(admin, ends_at=ends_at.isoformat())
    assert (await next_frame(ws))["type"] == "system.message"
    frame = await next_frame(ws, wait=(1.5 + ON_TIME) * TIME_FACTOR + 2)
    assert frame["type"] == "system.withdrawn"
    assert (frame["id"], frame["reason"]) == (created["id"], "ended")
    assert datetime.now(UTC) - ends_at < timedelta(seconds=ON_TIME * TIME_FACTOR + 0.5)
    assert await shown(alice) == []
    await eventually(
        lambda: _none_left(raw_db), "the ended system message is deleted", within=2.0
    )
    await ws.close()


async def _none_left(raw_db: asyncpg.Connection) -> bool:
    return bool(await raw_db.fetchval("select count(*) = 0 from system_messages"))


async def test_an_ended_message_is_never_shown_even_before_its_deletion(
    admin: LoggedInUser, make_user: MakeUser, raw_db: asyncpg.Connection
) -> None:
    """With no expirer running (the in-process app), a message past its end is still hidden
    from every list and can be neither dismissed nor withdrawn."""
    alice = await make_user()
    created = await post(admin, ends_at=soon(0.3))
    await asyncio.sleep(0.4)
    assert await raw_db.fetchval("select count(*) from system_messages") == 1
    assert await shown(alice) == []
    assert (await admin.http.get(ADMIN_URL)).json()["messages"] == []
    answer = await alice.http.post(f"/api/system-messages/{created['id']}/dismiss")
    assert_error(answer, 404, "not_found")
    assert_error(await admin.http.delete(f"{ADMIN_URL}/{created['id']}"), 404, "not_found")


async def test_an_ended_message_is_not_replayed(
    live: LiveServer, make_user: MakeUser
) -> None:
    """A resume from before a message that has since been withdrawn replays its withdrawal
    but not the message."""
    admin = await make_user(is_admin=True, on=live)
    alice = await make_user(on=live)
    ws = await open_socket(live, alice)
    before = (await next_frame(ws))["seq"]
    await ws.close()
    created = await post(admin)
    assert (await admin.http.delete(f"{ADMIN_URL}/{created['id']}")).status_code == 204
    ws = await open_socket(live, alice)
    await next_frame(ws)
    await ws.send(f'{{"type":"resume","after_seq":{before}}}')
    frames = await frames_until(ws, "resumed")
    assert [f["type"] for f in frames] == ["system.withdrawn", "resumed"]
    await ws.close()



async def test_hello_follows_the_session_for_a_reminder_and_resume_skips_what_was_dismissed(
    live: LiveServer, make_user: MakeUser
) -> None:
    """A reminder dismissed: a new socket of the same session has it no more in hello, one of a
    later sign-in has it again; a resume from before it replays only the dismissal."""
    admin = await make_user(is_admin=True, on=live)
    alice = await make_user(on=live)
    ws = await open_socket(live, alice)
    before = (await next_frame(ws))["seq"]
    await ws.close()
    created = await post(admin, mode="reminder")
    assert (await alice.http.post(
        f"/api/system-messages/{created['id']}/dismiss")).status_code == 204
    ws = await open_socket(live, alice)
    hello = await next_frame(ws)
    assert hello["system"] == [] and hello["seq"] == before + 2
    await ws.send(f'{{"type":"resume","after_seq":{before}}}')
    frames = await frames_until(ws, "resumed")
    assert frames[:-1] == [{"type": "system.dismissed", "seq": before + 2, "id": created["id"]}]
    await ws.close()
    await asyncio.sleep(0.01)
    later = await make_user.another_session(alice, on=live)
    ws = await open_socket(live, later)
    assert (await next_frame(ws))["system"] == [created]
    await ws.close()
