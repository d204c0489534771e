"""Who may call what: a matrix generated from the OpenAPI document, one row per operation.

Every operation the document lists gets its row, so a route added tomorrow is tried the day it
is added: without credentials it is 401 (unless listed in PUBLIC); as an ordinary user who is not
the owner or a recipient of what its path names it is 404, with the very status and body of an
id that names nothing; under `/api/admin/` as a non-admin it is 403. Path ids are filled with
real objects of another user, made by `owners_world`; an operation whose path parameter or
body the matrix does not know how to fill fails, so that its row must be written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from realtime import api
from realtime.app import package_version
from tests.conftest import LoggedInUser, MakeUser
from tests.hostile_support import UNKNOWN_ID, OwnersWorld, assert_error, owners_world
from tests.test_malformed import snapshot

DOCUMENT: dict[str, Any] = api.openapi_document(package_version())
ADMIN_PREFIX = "/api/admin/"
PARAMETER = re.compile(r"{(\w+)}")

# The operations that need no credentials, and what they answer to a stranger's plain request.
PUBLIC = {
    "POST /api/auth/login": 401,  # BODIES holds a wrong pair: refused as any wrong pair is
    "GET /healthz": 200,
    "GET /readyz": 200,
    "GET /metrics": 200,
    "GET /api/openapi.json": 200,
    # A link's holder needs no account: BODIES holds a token of no link.
    "POST /api/links/open": 404,
    "POST /api/links/open/attachments/{attachment_id}": 404,
}

# For each path, which object of the owner's world (`OwnersWorld.ids`) fills each parameter.
PATH_IDS: dict[str, dict[str, str]] = {
    "/api/messages/{id}": {"id": "message"},
    "/api/messages/{id}/read": {"id": "message"},
    "/api/messages/{id}/save": {"id": "message"},
    "/api/messages/{id}/attachments/{attachment_id}": {
        "id": "message", "attachment_id": "attachment"},
    "/api/messages/{id}/attachments/{attachment_id}/entries/{entry_id}/file": {
        "id": "message", "attachment_id": "folder_attachment", "entry_id": "copied_entry"},
    "/api/vault/folders/{id}": {"id": "folder"},
    "/api/vault/entries/{id}": {"id": "entry"},
    "/api/vault/entries/{id}/file": {"id": "entry"},
    "/api/admin/users/{id}": {"id": "user"},
    "/api/admin/groups/{id}": {"id": "group"},
    "/api/admin/groups/{id}/members": {"id": "group"},
    "/api/links/{id}": {"id": "link"},
    "/api/links/open/attachments/{attachment_id}": {"attachment_id": "link_attachment"},
    "/api/admin/system-messages/{id}": {"id": "system_message"},
    "/api/system-messages/{id}/dismiss": {"id": "system_message"},
}
# Paths naming what every user sees by design (an administrator's system message): no owner.
EVERYONES = ("/api/system-messages/",)

LINK_EXPIRY = (datetime.now(UTC) + timedelta(days=1)).isoformat()
# A body each operation with a body would accept, so that only the caller's rights are at stake.
BODIES: dict[str, Any] = {
    "POST /api/auth/login": {"username": "nobody-at-all", "password": "not a password"},
    "POST /api/messages": {"to": [{"kind": "user", "id": UNKNOWN_ID}], "subject": "hi"},
    "POST /api/messages/{id}/save": {"folder_id": None},
    "POST /api/vault/folders": {"name": "a folder"},
    "POST /api/vault/entries": {"kind": "note", "title": "a note"},
    "PATCH /api/vault/entries/{id}": {"title": "taken over", "password": "stolen"},
    "POST /api/admin/users": {"username": "intruder-made", "password": "a long password"},
    "PATCH /api/admin/users/{id}": {"display_name": "Taken Over", "is_admin": True},
    "POST /api/admin/groups": {"name": "intruders", "member_ids": []},
    "PUT /api/admin/groups/{id}/members": {"member_ids": []},
    "POST /api/links": {"subject": "s", "expires_at": LINK_EXPIRY},
    "POST /api/links/open": {"token": "A" * 43, "passphrase": None},
    "POST /api/links/open/attachments/{attachment_id}": {"token": "A" * 43, "passphrase": None},
    "POST /api/admin/system-messages": {"subject": "taken over", "mode": "reminder"},
    "PATCH /api/admin/settings": {"send_messages": "not_allowed", "share_links": False},
}


@dataclass(frozen=True)
class Row:
    """One operation of the document, as the matrix tries it."""

    method: str
    path: str
    secured: bool
    has_body: bool

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def parameters(self) -> list[str]:
        return PARAMETER.findall(self.path)

    @property
    def admin(self) -> bool:
        return self.path.startswith(ADMIN_PREFIX)

    def body(self) -> Any:
        if not self.has_body:
            return None
        assert self.label in BODIES, f"no matrix body for {self.label}: add one to BODIES"
        return BODIES[self.label]

    def url(self, ids: dict[str, str], fill: dict[str, str] | None = None) -> str:
        """The path with each parameter filled from `ids` (or from `fill`, by parameter)."""
        names = PATH_IDS.get(self.path, {})
        values = {}
        for parameter in self.parameters:
            assert parameter in names, (
                f"no matrix entry for {{{parameter}}} of {self.label}: add it to PATH_IDS")
            values[parameter] = (fill or {}).get(parameter) or ids[names[parameter]]
        return self.path.format(**values)

    async def call(self, http: httpx.AsyncClient, url: str, **options: Any) -> httpx.Response:
        body = self.body()
        if body is None:
            return await http.request(self.method, url, **options)
        return await http.request(self.method, url, json=body, **options)


def rows() -> list[Row]:
    return [
        Row(method.upper(), path, "security" in item, "requestBody" in item)
        for path, methods in DOCUMENT["paths"].items()
        for method, item in methods.items()
    ]


ROWS = rows()
OWNED = [row for row in ROWS
         if row.parameters and not row.admin and not row.path.startswith(EVERYONES)]
ADMIN = [row for row in ROWS if row.admin]


@pytest.fixture
async def world(make_user: MakeUser, admin: LoggedInUser) -> OwnersWorld:
    """The owner's objects, and a system message of the admin's (everyone's to see)."""
    return await owners_world(make_user, admin)


@pytest.fixture
async def intruder(make_user: MakeUser, admin: LoggedInUser) -> OwnersWorld:
    """An ordinary user with objects of every kind of their own (`intruder.owner`)."""
    return await owners_world(make_user, admin, system_message=False)


async def assert_untouched(world: OwnersWorld, admin: LoggedInUser) -> None:
    """The owner's message, attachments, vault, account and group are as they were made."""
    alice, ids = world.owner, world.ids
    message = await world.recipient.http.get(f"/api/messages/{ids['message']}")
    assert message.status_code == 200 and message.json()["read_at"] is None, message.text
    opened = await alice.http.get(f"/api/messages/{ids['message']}/attachments/{ids['attachment']}")
    assert opened.json()["password"] == "alice's secret", opened.text
    entry = await alice.http.get(f"/api/vault/entries/{ids['entry']}")
    assert entry.status_code == 200 and entry.json()["title"] == "alice's file", entry.text
    vault = (await alice.http.get("/api/vault")).json()
    assert [f["id"] for f in vault["folders"]] == [ids["folder"]]
    me = (await alice.http.get("/api/me")).json()
    assert me["display_name"] == alice.user.display_name and not me["is_admin"]
    groups = (await admin.http.get("/api/admin/groups")).json()["groups"]
    [group] = [g for g in groups if g["id"] == ids["group"]]
    assert sorted(group["member_ids"]) == sorted([alice.id, world.recipient.id])


def test_every_operation_is_in_the_matrix() -> None:
    """Each operation is public by name or secured, and its path ids and body can be filled."""
    public = {row.label for row in ROWS if not row.secured}
    assert public == set(PUBLIC), "an operation without credentials must be listed in PUBLIC"
    for row in ROWS:
        for parameter in row.parameters:
            assert parameter in PATH_IDS.get(row.path, {}), (
                f"no matrix entry for {{{parameter}}} of {row.label}: add it to PATH_IDS")
        if row.has_body:
            row.body()


async def test_the_matrix_is_built_from_the_served_document(client: httpx.AsyncClient) -> None:
    """The document the matrix was generated from is the one GET /api/openapi.json serves."""
    served = await client.get("/api/openapi.json")
    assert served.status_code == 200
    listed = {f"{m.upper()} {p}" for p, item in served.json()["paths"].items() for m in item}
    assert listed == {row.label for row in ROWS}


async def test_without_credentials_every_secured_operation_is_401(
    world: OwnersWorld, client: httpx.AsyncClient, admin: LoggedInUser
) -> None:
    """A stranger with no cookie and no token is told to log in, on the owner's real ids."""
    wrong = {}
    for row in ROWS:
        answer = await row.call(client, row.url(world.ids))
        expected = PUBLIC[row.label] if not row.secured else 401
        if answer.status_code != expected:
            wrong[row.label] = (answer.status_code, answer.text[:200])
        elif row.secured:
            assert_error(answer, 401, "unauthenticated")
            assert answer.headers["www-authenticate"] == "Bearer", row.label
            assert "set-cookie" not in answer.headers, row.label
    assert wrong == {}
    await assert_untouched(world, admin)


@pytest.mark.parametrize("row", OWNED, ids=[row.label for row in OWNED])
async def test_another_users_object_is_404_like_one_that_does_not_exist(
    row: Row, world: OwnersWorld, intruder: OwnersWorld, admin: LoggedInUser
) -> None:
    """An ordinary user naming someone else's object gets the very 404 of an unknown id."""
    http = intruder.owner.http
    nothing = dict.fromkeys(row.parameters, UNKNOWN_ID)
    names = PATH_IDS[row.path]
    upper = {p: world.ids[names[p]].upper() for p in row.parameters}
    # (what is tried, what it must look exactly like)
    tries = {
        "theirs": (row.url(world.ids), row.url(world.ids, nothing)),
        "theirs, in upper case": (row.url(world.ids, upper), row.url(world.ids, nothing)),
    }
    if len(row.parameters) > 1:  # the intruder's own message, the owner's attachment
        own = {row.parameters[0]: intruder.ids[names[row.parameters[0]]]}
        tries["own message, their attachment"] = (
            row.url(world.ids, own), row.url(world.ids, {**nothing, **own}))
    for kind, (url, unknown_url) in tries.items():
        unknown = await row.call(http, unknown_url)
        assert_error(unknown, 404, "not_found")
        answer = await row.call(http, url)
        assert (answer.status_code, answer.content) == (unknown.status_code, unknown.content), (
            kind, answer.text)
    await assert_untouched(world, admin)


async def test_every_admin_operation_is_403_to_an_ordinary_user(
    world: OwnersWorld, intruder: OwnersWorld, admin: LoggedInUser
) -> None:
    """A non-admin gets 403 on every admin operation, on real ids and unknown ones alike."""
    assert ADMIN, "the document lists admin operations"
    for row in ADMIN:
        http = intruder.owner.http
        real = await row.call(http, row.url(world.ids))
        assert_error(real, 403, "forbidden")
        nothing = dict.fromkeys(row.parameters, UNKNOWN_ID)
        unknown = await row.call(http, row.url(world.ids, nothing))
        assert (unknown.status_code, unknown.content) == (real.status_code, real.content)
        by_recipient = await row.call(world.recipient.http, row.url(world.ids))
        assert (by_recipient.status_code, by_recipient.content) == (
            real.status_code, real.content), row.label
    await assert_untouched(world, admin)


async def test_a_system_message_dismissed_by_one_user_stays_for_the_others(
    world: OwnersWorld, intruder: OwnersWorld, admin: LoggedInUser
) -> None:
    """A system message is everyone's: another user's dismissal hides it from them only, and
    no ordinary user can withdraw it."""
    message_id = world.ids["system_message"]
    dismissed = await intruder.owner.http.post(f"/api/system-messages/{message_id}/dismiss")
    assert dismissed.status_code == 204, dismissed.text
    for person, expected in ((intruder.owner, []), (world.owner, [message_id])):
        listed = (await person.http.get("/api/system-messages")).json()["messages"]
        assert [m["id"] for m in listed] == expected
    listed = (await admin.http.get("/api/admin/system-messages")).json()["messages"]
    assert [m["id"] for m in listed] == [message_id]
    await assert_untouched(world, admin)


# Objects every user may see by design: users and groups are public within the organisation,
# and a system message is shown to everyone.
PUBLIC_IDS = {"user", "group", "system_message"}
LISTS = [row for row in ROWS
         if row.secured and row.method == "GET" and not row.parameters and not row.admin]


async def test_no_list_shows_an_intruder_anything_of_the_owners(
    world: OwnersWorld, intruder: OwnersWorld
) -> None:
    """No list an ordinary user reads holds an id of another user's messages, vault or uploads."""
    assert LISTS, "the document lists operations to read"
    mine = {key: value for key, value in intruder.ids.items() if key not in PUBLIC_IDS}
    theirs = {key: value for key, value in world.ids.items() if key not in PUBLIC_IDS}
    for row in LISTS:
        for params in ({}, {"box": "sent"}, {"q": ""}):
            answer = await intruder.owner.http.get(row.path, params=params)
            if answer.status_code != 200:
                continue
            for key, value in theirs.items():
                assert value not in answer.text, f"{row.label} {params} shows their {key}"
    inbox = await intruder.recipient.http.get("/api/messages")
    assert mine["message"] in inbox.text, "the check would see an object that leaked"


# Ids in bodies: (method, path with the intruder's own ids, body naming one of the owner's).
BODY_REFERENCES: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/api/messages", {"attachments": [{"kind": "entry", "entry_id": "{entry}"}]}, ""),
    ("POST", "/api/messages", {"attachments": [{"kind": "folder", "folder_id": "{folder}"}]},
     ""),
    ("POST", "/api/messages", {"attachments": [{"kind": "file", "upload_id": "{upload}"}]}, ""),
    ("POST", "/api/messages", {"reply_to": "{message}"}, ""),
    ("POST", "/api/vault/folders", {"name": "inside theirs", "parent_id": "{folder}"}, ""),
    ("POST", "/api/vault/entries", {"kind": "note", "title": "t", "folder_id": "{folder}"}, ""),
    ("POST", "/api/vault/entries", {"kind": "file", "title": "t", "upload_id": "{upload}"}, ""),
    ("PATCH", "/api/vault/entries/{id}", {"folder_id": "{folder}"}, "entry"),
    ("PATCH", "/api/vault/entries/{id}", {"upload_id": "{upload}"}, "entry"),
    ("POST", "/api/messages/{id}/save", {"folder_id": "{folder}"}, "message"),
    ("POST", "/api/links", {"attachments": [{"kind": "file", "upload_id": "{upload}"}]}, ""),
]


def naming(body: dict[str, Any], ids: dict[str, str] | None) -> Any:
    """The body with each `{name}` placeholder replaced by that id, or by the unknown one."""
    text = json.dumps(body)
    for name in re.findall(r'"{(\w+)}"', text):
        text = text.replace(f'"{{{name}}}"', json.dumps(ids[name] if ids else UNKNOWN_ID))
    return json.loads(text)


@pytest.mark.parametrize(
    ("method", "path", "body", "own"), BODY_REFERENCES,
    ids=[f"{m} {p} {next(iter(b))}:{json.dumps(b)[-12:-3]}" for m, p, b, _ in BODY_REFERENCES])
async def test_another_users_object_named_in_a_body_is_404_like_an_unknown_one(
    method: str, path: str, body: dict[str, Any], own: str, world: OwnersWorld,
    intruder: OwnersWorld, admin: LoggedInUser, raw_db: asyncpg.Connection,
) -> None:
    """Naming the owner's entry, folder, upload or message in a body is the 404 of no object."""
    http = intruder.owner.http
    url = path.format(id=intruder.ids[own]) if own else path
    if path == "/api/messages":
        body = {"to": [{"kind": "user", "id": intruder.recipient.id}], "subject": "s", **body}
    if path == "/api/links":
        body = {"subject": "s", "expires_at": LINK_EXPIRY, **body}
    before = await snapshot(raw_db)
    unknown = await http.request(method, url, json=naming(body, None))
    assert_error(unknown, 404, "not_found")
    answer = await http.request(method, url, json=naming(body, world.ids))
    assert (answer.status_code, answer.content) == (unknown.status_code, unknown.content)
    assert await snapshot(raw_db) == before
    await assert_untouched(world, admin)


MESSAGE_ROWS = [row for row in OWNED if row.path.startswith("/api/messages/{id}")]


@pytest.mark.parametrize("ended_by", ["recipient", "owner"])
async def test_a_former_recipient_is_a_stranger_to_the_message(
    world: OwnersWorld, ended_by: str
) -> None:
    """Once Carol deleted Alice's message, or Alice recalled it, its paths are the 404 of none."""
    carol, ids = world.recipient, world.ids
    deleter = carol if ended_by == "recipient" else world.owner
    assert (await deleter.http.delete(f"/api/messages/{ids['message']}")).status_code == 204
    assert MESSAGE_ROWS, "the document lists operations on a message"
    for row in MESSAGE_ROWS:
        unknown = await row.call(carol.http, row.url(ids, {"id": UNKNOWN_ID}))
        assert_error(unknown, 404, "not_found")
        answer = await row.call(carol.http, row.url(ids))
        assert (answer.status_code, answer.content) == (unknown.status_code, unknown.content), (
            row.label, answer.text)
    kept = await world.owner.http.get(f"/api/messages/{ids['message']}")
    assert kept.status_code == (200 if ended_by == "recipient" else 404), kept.text
