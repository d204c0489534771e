"""The administrators' list of users for organisations of thousands: paged, searched by prefix,
filtered, and telling who is online on any node and when each was last seen."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

import asyncpg
import pytest

from realtime import codec
from realtime.api.http import Services
from realtime.presence import Presence
from tests.conftest import LoggedInUser, MakeUser, unique_name
from tests.live_server import LiveServer
from tests.timing import eventually
from tests.ws_support import open_socket


async def listed(viewer: LoggedInUser, **query: Any) -> dict[str, Any]:
    answer = await viewer.http.get(f"/api/admin/users?{urlencode(query)}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def every_page(admin: LoggedInUser, **query: Any) -> list[list[str]]:
    """The usernames of each page, following `next` to the end."""
    pages = []
    while True:
        body = await listed(admin, **query)
        pages.append([user["username"] for user in body["users"]])
        if body["next"] is None:
            return pages
        query["after"] = body["next"]


async def the_user(admin: LoggedInUser, person: LoggedInUser) -> dict[str, Any]:
    users = (await listed(admin, q=person.user.username))["users"]
    found: dict[str, Any] = next(u for u in users if u["id"] == person.id)
    return found


async def test_pages_follow_each_other_in_username_order_and_hold_everyone_once(
    make_user: MakeUser, admin: LoggedInUser
) -> None:
    team = unique_name("team")
    names = [f"{team}-{letter}" for letter in "ecadb"]
    for name in names:
        await make_user(name)
    pages = await every_page(admin, q=team, limit=2)
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [name for page in pages for name in page] == sorted(names)
    # A page that ends exactly at the last user says there is no next one.
    assert (await listed(admin, q=team, limit=5))["next"] is None
    everyone = [name for page in await every_page(admin, limit=3) for name in page]
    assert sorted(everyone) == sorted([*names, admin.user.username])


async def test_a_prefix_of_the_username_or_display_name_finds_a_user_in_any_case(
    make_user: MakeUser, admin: LoggedInUser
) -> None:
    dana = await make_user(unique_name("dscully"), display_name="Dana Scully")
    await make_user(unique_name("fmulder"), display_name="Fox Mulder")
    for query in (dana.user.username[:5].upper(), "dana", "DANA SC"):
        found = [u["username"] for u in (await listed(admin, q=query))["users"]]
        assert found == [dana.user.username], query
    # LIKE's wildcards are letters like any other.
    assert (await listed(admin, q="%"))["users"] == []
    assert (await listed(admin, q="d_na"))["users"] == []


async def test_filters_pick_admins_disabled_and_those_who_cannot_send(
    make_user: MakeUser, admin: LoggedInUser, services: Services
) -> None:
    team = unique_name("crew")
    mute = await make_user(f"{team}-mute", can_send=False)
    gone = await make_user(f"{team}-gone")
    await services.accounts.update_user(gone.user.id, {"disabled": True})
    boss = await make_user(f"{team}-boss", is_admin=True)
    plain = await make_user(f"{team}-plain")

    async def names(**flags: str) -> set[str]:
        return {u["username"] for u in (await listed(admin, q=team, **flags))["users"]}

    assert await names(admin="1") == {boss.user.username}
    assert await names(admin="0") == {mute.user.username, gone.user.username,
                                      plain.user.username}
    assert await names(disabled="true") == {gone.user.username}
    assert await names(can_send="0") == {mute.user.username}
    assert await names(can_send="1", disabled="0", admin="0") == {plain.user.username}


@pytest.mark.parametrize("query", [
    {"q": "a\x00b"}, {"q": "tab\there"}, {"q": "x" * 101}, {"limit": "0"}, {"limit": "101"},
    {"limit": "ten"}, {"online": "maybe"}, {"admin": ""}, {"after": "not a cursor"},
    {"after": codec.encode_cursor([7])},
])
async def test_a_bad_query_is_a_field_error(admin: LoggedInUser, query: dict[str, str]) -> None:
    answer = await admin.http.get(f"/api/admin/users?{urlencode(query)}")
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]


async def test_a_user_with_an_open_socket_is_online_and_seen_when_it_closes(
    make_user: MakeUser, admin: LoggedInUser, live: LiveServer
) -> None:
    person = await make_user()
    before = await the_user(admin, person)
    assert before["online"] is False
    ws = await open_socket(live, person)

    async def online() -> bool:
        return bool((await the_user(admin, person))["online"])

    await eventually(online, "the user is listed online")
    online_only = {u["id"] for u in (await listed(admin, online="1"))["users"]}
    assert person.id in online_only and admin.id not in online_only
    assert admin.id in {u["id"] for u in (await listed(admin, online="0"))["users"]}
    seen_online = (await the_user(admin, person))["last_seen_at"]
    assert seen_online is not None

    await ws.close()

    async def offline() -> bool:
        return not await online()

    await eventually(offline, "the user is listed offline once the socket closed")
    after = await the_user(admin, person)
    assert after["last_seen_at"] >= seen_online


async def test_the_users_of_a_node_that_died_stop_being_online_when_its_entry_expires(
    make_user: MakeUser, admin: LoggedInUser, services: Services, raw_db: asyncpg.Connection
) -> None:
    """A node that stops without a word (killed, cut off) leaves an entry that expires; the
    next node to sweep records when its users were last seen."""
    person = await make_user()
    dying = Presence(services.db, lambda: {person.user.id}, lifetime=1.0)
    await dying.write_once()
    assert (await the_user(admin, person))["online"] is True
    written_at = await raw_db.fetchval(
        "select refreshed_at from presence_nodes where node_id = $1", dying.node_id
    )
    # It never writes again. Past its lifetime the user is offline, swept or not.
    await asyncio.sleep(1.2)
    assert (await the_user(admin, person))["online"] is False
    await Presence(services.db, set).write_once()  # another node's routine write sweeps
    assert await raw_db.fetchval(
        "select count(*) from presence where node_id = $1", dying.node_id
    ) == 0
    assert await raw_db.fetchval(
        "select last_seen_at from users where id = $1", person.user.id
    ) == written_at


async def test_a_node_swept_while_silent_writes_its_users_again(
    make_user: MakeUser, admin: LoggedInUser, services: Services, raw_db: asyncpg.Connection
) -> None:
    """A node that was only slow (its entry swept meanwhile) puts its users back at its next
    write, not just the ones that changed."""
    person = await make_user()
    slow = Presence(services.db, lambda: {person.user.id})
    await slow.write_once()
    await raw_db.execute("delete from presence_nodes where node_id = $1", slow.node_id)
    await raw_db.execute("delete from presence where node_id = $1", slow.node_id)
    assert (await the_user(admin, person))["online"] is False
    await slow.write_once()
    assert (await the_user(admin, person))["online"] is True
    await slow.close()
    assert (await the_user(admin, person))["online"] is False


async def test_a_group_names_its_members(make_user: MakeUser, admin: LoggedInUser) -> None:
    """The group editor shows members by name without fetching every user."""
    ann = await make_user(display_name="Ann Example")
    bob = await make_user(display_name="Bob Example")
    made = await admin.http.post("/api/admin/groups", json={
        "name": unique_name("group"), "member_ids": [ann.id, bob.id]})
    assert made.status_code == 201, made.text
    groups = (await admin.http.get("/api/admin/groups")).json()["groups"]
    group = next(g for g in groups if g["id"] == made.json()["id"])
    assert [m["id"] for m in group["members"]] == group["member_ids"]
    assert {(m["username"], m["display_name"]) for m in group["members"]} == {
        (ann.user.username, "Ann Example"), (bob.user.username, "Bob Example")}
