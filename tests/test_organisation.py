"""The organisation's settings: what every user may send and share, the largest file and the
longest lifetime, taking effect at the next request of every user."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import LoggedInUser, MakeUser
from tests.live_server import LiveServer
from tests.messages_support import assert_error, assert_invalid, send, user
from tests.test_links_api import ahead, link_body
from tests.test_uploads import pieces, post_upload
from tests.ws_support import next_frame, open_socket

DEFAULTS = {"send_messages": "with_attachments", "share_links": True, "max_file_mb": 25,
            "max_lifetime": None}
CREDENTIAL = {"kind": "credential", "title": "wifi", "username": "guest", "password": "pw"}
MIB = 1024 * 1024


async def settings(admin: LoggedInUser) -> dict[str, Any]:
    answer = await admin.http.get("/api/admin/settings")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def change(admin: LoggedInUser, **fields: Any) -> dict[str, Any]:
    answer = await admin.http.patch("/api/admin/settings", json=fields)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def me(person: LoggedInUser) -> dict[str, Any]:
    answer = await person.http.get("/api/me")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def rights(person: dict[str, Any]) -> tuple[bool, bool, bool]:
    """can_send, can_attach and can_share_links, as /api/me or hello tell them."""
    return person["can_send"], person["can_attach"], person["can_share_links"]


async def test_the_defaults_restrict_nothing(admin: LoggedInUser) -> None:
    assert await settings(admin) == DEFAULTS


async def test_a_change_keeps_the_settings_left_out(admin: LoggedInUser) -> None:
    assert await change(admin, share_links=False) == {**DEFAULTS, "share_links": False}
    changed = await change(admin, max_lifetime=3600, max_file_mb=5)
    assert changed == {**DEFAULTS, "share_links": False, "max_lifetime": 3600, "max_file_mb": 5}
    assert await settings(admin) == changed
    assert await change(admin, max_lifetime=None) == {**changed, "max_lifetime": None}
    assert (await change(admin, max_lifetime=7200.0))["max_lifetime"] == 7200


@pytest.mark.parametrize(("fields", "field"), [
    ({"send_messages": "sometimes"}, "send_messages"),
    ({"max_file_mb": 0}, "max_file_mb"),
    ({"max_file_mb": 26}, "max_file_mb"),
    ({"max_file_mb": "5"}, "max_file_mb"),
    ({"max_lifetime": 59}, "max_lifetime"),
    ({"max_lifetime": 3600.5}, "max_lifetime"),
    ({"max_lifetime": "3600"}, "max_lifetime"),
    ({"max_lifetime": 3650 * 86400 + 1}, "max_lifetime"),
    ({"share_links": "no"}, "share_links"),
    ({"send_messages": "not_allowed", "colour": "red"}, "colour"),
])
async def test_a_setting_out_of_range_is_refused_and_changes_nothing(
    admin: LoggedInUser, fields: dict[str, Any], field: str
) -> None:
    assert_invalid(await admin.http.patch("/api/admin/settings", json=fields), field)
    assert await settings(admin) == DEFAULTS


async def test_only_administrators_read_or_change_the_settings(
    admin: LoggedInUser, make_user: MakeUser
) -> None:
    bob = await make_user()
    assert_error(await bob.http.get("/api/admin/settings"), 403, "forbidden")
    refused = await bob.http.patch("/api/admin/settings", json={"send_messages": "not_allowed"})
    assert_error(refused, 403, "forbidden")
    assert await settings(admin) == DEFAULTS


async def test_sending_not_allowed_refuses_the_next_send_at_once(
    admin: LoggedInUser, make_user: MakeUser
) -> None:
    """Bob sends; the organisation stops sending; his next send, with the same session and
    no restart, is refused, and /api/me says so; allowed again, he sends again."""
    bob, carol = await make_user(), await make_user()
    assert (await send(bob, [user(carol)])).status_code == 201
    await change(admin, send_messages="not_allowed")
    assert_error(await send(bob, [user(carol)]), 403, "forbidden")
    assert (await me(bob))["can_send"] is False
    await change(admin, send_messages="with_attachments")
    assert (await send(bob, [user(carol)])).status_code == 201
    assert (await me(bob))["can_send"] is True


async def test_without_attachments_refuses_attachments_only(
    admin: LoggedInUser, make_user: MakeUser
) -> None:
    bob, carol = await make_user(), await make_user()
    await change(admin, send_messages="without_attachments")
    assert_error(await send(bob, [user(carol)], attachments=[CREDENTIAL]), 403, "forbidden")
    assert (await send(bob, [user(carol)], body="plain")).status_code == 201
    rights = await me(bob)
    assert (rights["can_send"], rights["can_attach"]) == (True, False)


async def test_the_effective_right_is_the_lower_of_the_two(
    admin: LoggedInUser, make_user: MakeUser
) -> None:
    """A user the organisation lets send but whose own flag says no still may not; the
    organisation saying yes again gives back no more than the user's own flags."""
    bob, carol = await make_user(), await make_user()
    answer = await admin.http.patch(f"/api/admin/users/{bob.id}", json={"can_attach": False})
    assert answer.status_code == 200, answer.text
    assert (await me(bob))["can_attach"] is False
    await change(admin, send_messages="not_allowed", share_links=False)
    assert rights(await me(bob)) == (False, False, False)
    await change(admin, send_messages="with_attachments", share_links=True)
    assert rights(await me(bob)) == (True, False, True)
    assert_error(await send(bob, [user(carol)], attachments=[CREDENTIAL]), 403, "forbidden")
    listed = (await admin.http.get("/api/admin/users")).json()["users"]
    assert next(u for u in listed if u["id"] == bob.id)["can_attach"] is False


async def test_shareable_links_off_refuses_new_links(
    admin: LoggedInUser, make_user: MakeUser
) -> None:
    bob = await make_user()
    await change(admin, share_links=False)
    assert_error(await bob.http.post("/api/links", json=link_body()), 403, "forbidden")
    assert (await me(bob))["can_share_links"] is False
    await change(admin, share_links=True)
    assert (await bob.http.post("/api/links", json=link_body())).status_code == 201


async def test_a_maximum_lifetime_gives_every_send_an_expiry_and_refuses_a_later_one(
    admin: LoggedInUser, make_user: MakeUser
) -> None:
    bob, carol = await make_user(), await make_user()
    await change(admin, max_lifetime=3600)
    before = datetime.now(UTC)
    sent = await send(bob, [user(carol)], body="no expiry asked")
    assert sent.status_code == 201, sent.text
    message = (await carol.http.get(f"/api/messages/{sent.json()['id']}")).json()
    expires_at = datetime.fromisoformat(message["expires_at"])
    assert before + timedelta(hours=1) <= expires_at <= datetime.now(UTC) + timedelta(hours=1)
    later = await send(bob, [user(carol)], expires_at=ahead(hours=2))
    assert_invalid(later, "expires_at")
    assert later.json()["error"]["fields"]["expires_at"] == "at most 3600 seconds ahead"
    assert (await send(bob, [user(carol)], expires_at=ahead(minutes=30))).status_code == 201
    assert_invalid(
        await bob.http.post("/api/links", json=link_body(expires_at=ahead(hours=2))),
        "expires_at",
    )
    assert (await bob.http.post("/api/links", json=link_body(expires_at=ahead(minutes=59)))
            ).status_code == 201
    await change(admin, max_lifetime=None)
    plain = await send(bob, [user(carol)])
    assert (await carol.http.get(f"/api/messages/{plain.json()['id']}")).json()[
        "expires_at"] is None


async def test_the_largest_file_is_the_organisations(
    admin: LoggedInUser, make_user: MakeUser
) -> None:
    """At 1 MiB, a file of 1 MiB is kept; one byte more is refused, whether its length is
    declared or only found as it streams; back at 25 MiB, it is kept again."""
    bob = await make_user()
    await change(admin, max_file_mb=1)
    status, _ = await post_upload(bob, b"x" * MIB)
    assert status == 201
    status, body = await post_upload(bob, b"x" * (MIB + 1))
    assert (status, body["error"]["code"]) == (413, "too_large")
    assert str(MIB) in body["error"]["message"]
    status, body = await post_upload(bob, pieces(MIB + 1, b"y" * 65536))
    assert (status, body["error"]["code"]) == (413, "too_large")
    await change(admin, max_file_mb=25)
    status, _ = await post_upload(bob, b"x" * (MIB + 1))
    assert status == 201


async def test_hello_tells_the_effective_rights(
    live: LiveServer, admin: LoggedInUser, make_user: MakeUser
) -> None:
    bob = await make_user(on=live)
    await change(admin, send_messages="without_attachments", share_links=False)
    async with await open_socket(live, bob) as ws:
        hello = await next_frame(ws)
    assert hello["type"] == "hello"
    assert rights(hello["user"]) == (True, False, False)


async def test_the_login_answer_tells_the_effective_rights(
    admin: LoggedInUser, make_user: MakeUser
) -> None:
    """The client shows what the login answers before it asks /api/me: the organisation's
    settings lower it as they lower every request."""
    bob = await make_user()
    await change(admin, send_messages="without_attachments", share_links=False)
    answer = await bob.http.post(
        "/api/auth/login", json={"username": bob.username, "password": bob.password}
    )
    assert answer.status_code == 200, answer.text
    assert rights(answer.json()["user"]) == (True, False, False)
    assert answer.json()["user"]["can_email_links"] is False


async def test_me_tells_the_organisations_limits(
    admin: LoggedInUser, make_user: MakeUser
) -> None:
    """The client shows the largest file and the longest lifetime before a refusal does."""
    bob = await make_user()
    assert ((await me(bob))["max_file_mb"], (await me(bob))["max_lifetime"]) == (25, None)
    await change(admin, max_file_mb=4, max_lifetime=7200)
    assert ((await me(bob))["max_file_mb"], (await me(bob))["max_lifetime"]) == (4, 7200)


async def test_a_reply_gets_the_maximum_lifetime_too(
    admin: LoggedInUser, make_user: MakeUser
) -> None:
    bob, carol = await make_user(), await make_user()
    first = await send(bob, [user(carol)], body="no lifetime yet")
    assert first.status_code == 201, first.text
    await change(admin, max_lifetime=600)
    reply = await send(carol, [user(bob)], body="re", reply_to=first.json()["id"])
    assert reply.status_code == 201, reply.text
    message = (await bob.http.get(f"/api/messages/{reply.json()['id']}")).json()
    assert message["reply_to"] == first.json()["id"]
    expires_at = datetime.fromisoformat(message["expires_at"])
    assert expires_at <= datetime.now(UTC) + timedelta(seconds=600)
    later = await send(carol, [user(bob)], reply_to=first.json()["id"], expires_at=ahead(hours=1))
    assert_invalid(later, "expires_at")


async def test_a_change_on_one_node_holds_at_once_on_another(
    live: LiveServer, admin: LoggedInUser, make_user: MakeUser
) -> None:
    """The administrator changes the settings through one node; Bob's very next requests
    through another node (its own process state, the same database) are judged by them."""
    bob, carol = await make_user(on=live), await make_user(on=live)
    assert (await send(bob, [user(carol)])).status_code == 201
    await change(admin, send_messages="not_allowed", share_links=False, max_file_mb=1)
    assert_error(await send(bob, [user(carol)]), 403, "forbidden")
    assert_error(await bob.http.post("/api/links", json=link_body()), 403, "forbidden")
    status, body = await post_upload(bob, b"x" * (MIB + 1))
    assert (status, body["error"]["code"]) == (413, "too_large")
    assert rights(await me(bob)) == (False, False, False)
    await change(admin, send_messages="with_attachments", share_links=True, max_file_mb=25)
    assert (await send(bob, [user(carol)])).status_code == 201


@pytest.mark.parametrize("fields", [
    {"max_file_mb": 1}, {"max_file_mb": 25}, {"max_lifetime": 60},
    {"max_lifetime": 3650 * 86400}, {"send_messages": "without_attachments"},
])
async def test_the_edges_of_each_range_are_accepted(
    admin: LoggedInUser, fields: dict[str, Any]
) -> None:
    assert await change(admin, **fields) == {**DEFAULTS, **fields}
    assert await settings(admin) == {**DEFAULTS, **fields}


async def test_an_empty_change_or_nulls_keep_everything(admin: LoggedInUser) -> None:
    changed = await change(admin, share_links=False, max_lifetime=600)
    assert await change(admin) == changed
    assert await change(
        admin, send_messages=None, share_links=None, max_file_mb=None
    ) == changed


async def test_simultaneous_changes_of_different_settings_keep_both(admin: LoggedInUser) -> None:
    """Each change reads and writes the row under its lock: neither undoes the other."""
    for _ in range(5):
        await change(admin, share_links=True, max_file_mb=25)
        await asyncio.gather(change(admin, share_links=False), change(admin, max_file_mb=3))
        assert await settings(admin) == {**DEFAULTS, "share_links": False, "max_file_mb": 3}
