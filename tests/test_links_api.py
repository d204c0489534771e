"""Shareable links over HTTP: created by a user who may share, opened by anyone holding the
link, counted view by view, guarded by a passphrase that is part of the key, revoked by their
creator, and alike from outside whatever the reason they no longer open."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from starlette.applications import Starlette

from realtime import crypto
from tests.conftest import BASE_URL, LoggedInUser, MakeUser
from tests.messages_support import assert_error, assert_invalid


def ahead(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def link_body(**fields: Any) -> dict[str, Any]:
    return {"subject": "Wi-Fi", "body": "the office network", "expires_at": ahead(hours=1),
            **fields}


async def create(person: LoggedInUser, **fields: Any) -> dict[str, Any]:
    answer = await person.http.post("/api/links", json=link_body(**fields))
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def token_of(created: dict[str, Any]) -> str:
    url: str = created["url"]
    return url.split("#", 1)[1]


async def open_link(
    http: httpx.AsyncClient, token: str, passphrase: str | None = None
) -> httpx.Response:
    return await http.post("/api/links/open", json={"token": token, "passphrase": passphrase})


async def listed(person: LoggedInUser) -> list[dict[str, Any]]:
    answer = await person.http.get("/api/links")
    assert answer.status_code == 200, answer.text
    links: list[dict[str, Any]] = answer.json()["links"]
    return links


async def creator_events(raw_db: asyncpg.Connection, person: LoggedInUser) -> list[Any]:
    rows = await raw_db.fetch(
        "select type, payload from events where user_id = $1 order by seq", person.user.id
    )
    return [(row["type"], json.loads(row["payload"])) for row in rows]


async def test_a_link_opens_once_with_its_content_and_then_looks_unknown(
    make_user: MakeUser, client: httpx.AsyncClient, raw_db: asyncpg.Connection
) -> None:
    """A one-view link answers its URL once (the token in the fragment), opens for someone
    without an account with its subject, body and credential, says it was the last view, and
    then answers exactly as a token that never existed; the creator was told of the view and
    of the end, and its rows are gone."""
    alice = await make_user()
    credential = {"kind": "credential", "title": "router", "username": "admin",
                  "password": "s3cret!", "url": "http://192.168.0.1", "notes": "front desk"}
    created = await create(alice, attachments=[credential])
    assert created["url"].startswith(f"{BASE_URL}/s/#")
    assert created["max_views"] == 1
    answer = await open_link(client, token_of(created))
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    opened = answer.json()
    assert (opened["subject"], opened["body"], opened["views_left"]) == (
        "Wi-Fi", "the office network", 0
    )
    (attachment,) = opened["attachments"]
    assert {k: attachment[k] for k in credential} == credential
    again = await open_link(client, token_of(created))
    unknown = await open_link(client, "A" * 43)
    assert again.status_code == unknown.status_code == 404
    assert again.json() == unknown.json()
    assert await listed(alice) == []
    assert await raw_db.fetchval("select count(*) from links where creator_id = $1",
                                 alice.user.id) == 0
    events = await creator_events(raw_db, alice)
    assert [kind for kind, _ in events] == ["link.viewed", "link.deleted"]
    assert events[0][1]["views_left"] == 0 and events[0][1]["link_id"] == created["id"]
    assert events[1][1]["reason"] == "used"


async def test_twenty_simultaneous_opens_of_a_one_view_link_give_one_answer(
    make_user: MakeUser, app: Starlette
) -> None:
    """Twenty people opening a one-view link at the same moment: exactly one sees it, the
    others get the same 404."""
    alice = await make_user()
    token = token_of(await create(alice))
    transport = httpx.ASGITransport(app=app)
    clients = [httpx.AsyncClient(transport=transport, base_url=BASE_URL) for _ in range(20)]
    try:
        answers = await asyncio.gather(*(open_link(c, token) for c in clients))
    finally:
        for c in clients:
            await c.aclose()
    assert sorted(a.status_code for a in answers) == [200] + [404] * 19


async def test_a_link_of_three_views_counts_each_and_lists_them(
    make_user: MakeUser, client: httpx.AsyncClient
) -> None:
    """Each view counts down what is left; the creator's list shows the views and when the
    last one was taken; the third view is the last."""
    alice = await make_user()
    created = await create(alice, max_views=3)
    (before,) = await listed(alice)
    assert (before["views"], before["last_viewed_at"], before["subject"]) == (0, None, "Wi-Fi")
    lefts = [(await open_link(client, token_of(created))).json()["views_left"] for _ in range(2)]
    assert lefts == [2, 1]
    (after,) = await listed(alice)
    assert after["views"] == 2 and after["last_viewed_at"] is not None
    assert (await open_link(client, token_of(created))).json()["views_left"] == 0
    assert (await open_link(client, token_of(created))).status_code == 404


async def test_a_passphrase_is_asked_for_counted_when_wrong_and_the_fifth_destroys_it(
    make_user: MakeUser, client: httpx.AsyncClient, raw_db: asyncpg.Connection
) -> None:
    """Without the passphrase the link asks for it and counts nothing; each wrong one says how
    many attempts are left; the fifth destroys the link, and the right one then finds nothing;
    the creator hears it was burned."""
    alice = await make_user()
    created = await create(alice, passphrase="correct horse battery")
    token = token_of(created)
    asked = assert_error(await open_link(client, token), 401, "passphrase_required")
    assert "attempts_left" not in asked
    left = []
    for _ in range(5):
        error = assert_error(await open_link(client, token, "wrong guess!"), 401,
                             "passphrase_wrong")
        left.append(error["attempts_left"])
    assert left == [4, 3, 2, 1, 0]
    assert (await open_link(client, token, "correct horse battery")).status_code == 404
    assert ("link.deleted", "burned") in [
        (kind, payload.get("reason")) for kind, payload in await creator_events(raw_db, alice)
    ]


async def test_the_right_passphrase_opens_a_link_after_wrong_ones(
    make_user: MakeUser, client: httpx.AsyncClient
) -> None:
    """A wrong passphrase or two do not stop the right one, which opens the content; the
    creator's list shows the link has one."""
    alice = await make_user()
    created = await create(alice, passphrase="correct horse battery", max_views=2)
    assert (await listed(alice))[0]["has_passphrase"] is True
    token = token_of(created)
    assert (await open_link(client, token, "not it at all")).status_code == 401
    answer = await open_link(client, token, "correct horse battery")
    assert answer.status_code == 200 and answer.json()["body"] == "the office network"


async def test_expired_used_revoked_and_unknown_links_answer_alike(
    make_user: MakeUser, client: httpx.AsyncClient, raw_db: asyncpg.Connection
) -> None:
    """An expired, a used-up, a revoked and an unknown link get the same status and body."""
    alice = await make_user()
    expired, used, revoked = [token_of(await create(alice)) for _ in range(3)]
    await raw_db.execute(
        "update links set expires_at = now() - interval '1 second' where token_hash = $1",
        crypto.token_digest(expired),
    )
    assert (await open_link(client, used)).status_code == 200
    (revoked_link,) = await listed(alice)  # the expired one is listed no more
    assert (await alice.http.delete(f"/api/links/{revoked_link['id']}")).status_code == 204
    answers = [await open_link(client, token) for token in (expired, used, revoked, "B" * 43)]
    assert {a.status_code for a in answers} == {404}
    assert len({a.text for a in answers}) == 1


async def test_only_the_creator_revokes_a_link(
    make_user: MakeUser, client: httpx.AsyncClient
) -> None:
    """Another user revoking someone's link gets 404 and the link still opens; its creator's
    revoke ends it at once."""
    alice, mallory = await make_user(), await make_user()
    created = await create(alice, max_views=2)
    assert_error(await mallory.http.delete(f"/api/links/{created['id']}"), 404, "not_found")
    assert (await open_link(client, token_of(created))).status_code == 200
    assert (await alice.http.delete(f"/api/links/{created['id']}")).status_code == 204
    assert (await open_link(client, token_of(created))).status_code == 404
    assert_error(await alice.http.delete(f"/api/links/{created['id']}"), 404, "not_found")


async def test_without_the_right_to_share_no_link_is_created(
    make_user: MakeUser, admin: LoggedInUser, raw_db: asyncpg.Connection
) -> None:
    """A user whose can_share_links is off gets 403 and nothing is kept; /api/me says so; the
    admin turning it on lets them share."""
    bob = await make_user(can_share_links=False)
    me = (await bob.http.get("/api/me")).json()
    assert me["can_share_links"] is False and me["can_email_links"] is False
    assert_error(await bob.http.post("/api/links", json=link_body()), 403, "forbidden")
    assert await raw_db.fetchval("select count(*) from links where creator_id = $1",
                                 bob.user.id) == 0
    changed = await admin.http.patch(f"/api/admin/users/{bob.id}",
                                     json={"can_share_links": True})
    assert changed.status_code == 200 and changed.json()["can_share_links"] is True
    assert (await bob.http.post("/api/links", json=link_body())).status_code == 201


async def test_attachments_need_the_right_to_attach(make_user: MakeUser) -> None:
    """A user who may share links but not attach gets 403 for a link with a credential."""
    carol = await make_user(can_attach=False)
    credential = {"kind": "credential", "title": "t", "password": "p"}
    answer = await carol.http.post("/api/links", json=link_body(attachments=[credential]))
    assert_error(answer, 403, "forbidden")


async def test_a_link_draft_out_of_bounds_is_a_field_error(make_user: MakeUser) -> None:
    """No expiry, one in the past or over 30 days ahead, views outside 1..100, a short
    passphrase, and a vault entry as an attachment: each a 400 naming its field."""
    alice = await make_user()
    cases = [
        ({"expires_at": None}, "expires_at"),
        ({"expires_at": ahead(seconds=-5)}, "expires_at"),
        ({"expires_at": ahead(days=31)}, "expires_at"),
        ({"max_views": 0}, "max_views"),
        ({"max_views": 101}, "max_views"),
        ({"passphrase": "short"}, "passphrase"),
        ({"attachments": [{"kind": "entry", "entry_id": str(alice.user.id)}]}, "attachments.0"),
    ]
    for change, field in cases:
        answer = await alice.http.post("/api/links", json=link_body(**change))
        error = assert_error(answer, 400, "invalid")
        assert any(name.startswith(field) for name in error["fields"]), (change, error)
    assert await listed(alice) == []


async def test_email_without_a_relay_is_refused_and_keeps_nothing(make_user: MakeUser) -> None:
    """Asking for Send by email on a server with no mail relay is 409 email_unavailable, and
    no link is kept."""
    alice = await make_user()
    answer = await alice.http.post(
        "/api/links", json=link_body(email={"to": ["bob@example.com"], "note": "hi"})
    )
    assert_error(answer, 409, "email_unavailable")
    assert await listed(alice) == []
    assert (await alice.http.get("/api/me")).json()["can_email_links"] is False


async def test_a_malformed_open_request_is_a_clear_error(client: httpx.AsyncClient) -> None:
    """An open without a token is a field error; a token of the wrong shape is simply not
    found."""
    assert_invalid(await client.post("/api/links/open", json={"passphrase": None}), "token")
    assert_error(await open_link(client, "not a token at all"), 404, "not_found")
