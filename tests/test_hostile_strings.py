"""Hostile strings in every text field: refused in the contract's shape, or kept byte for byte.

For each field a person can fill (subject, body, a credential's fields, vault folders and entries,
display names, group names) every hostile value is sent as escaped JSON (so that lone surrogates
travel as `\\ud800`): what the contract refuses is a 400 naming the field that neither echoes the
value nor changes any table; what it accepts reads back exactly as sent. Then the same for the
other ways text comes in: nesting and numbers in bodies, directory queries, idempotency keys,
cursors and upload names.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import LoggedInUser, MakeUser, unique_name
from tests.hostile_support import assert_error, assert_not_echoed
from tests.test_malformed import snapshot
from tests.vault_support import new_entry
from tests.ws_support import frames_until, next_frame, of_type, open_socket

# Kept by every text field: anything but NUL and unpaired surrogates.
ACCEPTED_EVERYWHERE = {
    "right-to-left override": "invoice\u202etxt.exe\u202c",
    "zero-width": "\u200ba\u200cb\u200dc\ufeff\u2060",
    "only a zero-width space": "\u200b",
    "SQL": "'; drop table users; -- \" or 1=1",
    "HTML": "<script>alert(1)</script><img src=x onerror=alert(document.cookie)>",
    "LIKE wildcards": "%_%\\_\\%",
    "backslashes": "\\\\server\\share\\",
    "JSON-looking": '{"error": {"code": "ok"}}',
    "emoji sequence": "\U0001f469\u200d\U0001f469\u200d\U0001f467\ufe0f",
    "noncharacters": "\ufffe\uffff\U0010ffff",
    "combining marks": "e" + "\u0301" * 30,
}
# Kept in text fields, refused in names shown to people (docs/api.md, General: Text).
CONTROLS = {
    "escape sequence": "red\x1b[31mtext\x1b[0m",
    "bell and backspace": "a\x07b\x08c",
    "tab and newlines": "a\tb\nc\r\nd",
    "DEL": "a\x7fb",
}
C1_CONTROLS = {"C1 controls": "a\x85b\x9b31mc\x9d"}
REFUSED_EVERYWHERE = {
    "NUL": "before\x00after",
    "lone high surrogate": "before\ud800after",
    "lone low surrogate": "before\udfffafter",
    "reversed pair": "\ude00\ud83d",
}
NOT_JSON = {"lone high surrogate", "lone low surrogate", "reversed pair"}


@dataclass
class World:
    alice: LoggedInUser
    bob: LoggedInUser
    admin: LoggedInUser
    entry_id: str


@dataclass(frozen=True)
class TextField:
    """One field: how to submit a value, how to read back what was kept, and its limits."""

    name: str
    error_field: str
    limit: int
    submit: Callable[[World, str], Awaitable[httpx.Response]]
    read: Callable[[World, httpx.Response], Awaitable[str]]
    shown_name: bool = False
    minimum: int = 1


def escaped(body: Any) -> bytes:
    """JSON with every character beyond ASCII escaped, lone surrogates included."""
    return json.dumps(body, ensure_ascii=True).encode()


async def post(person: LoggedInUser, path: str, body: Any, method: str = "POST") -> httpx.Response:
    return await person.http.request(method, path, content=escaped(body), headers=JSON)


async def fetched(person: LoggedInUser, path: str) -> Any:
    answer = await person.http.get(path)
    assert answer.status_code == 200, answer.text
    return answer.json()


JSON = {"Content-Type": "application/json"}


def to_member(member: Any, subject: str) -> dict[str, Any]:
    return {"to": [{"kind": "user", "id": member.id}], "subject": subject}


def to_bob(w: World, **fields: Any) -> dict[str, Any]:
    return {"to": [{"kind": "user", "id": w.bob.id}], "subject": "s", **fields}


async def message_of(w: World, answer: httpx.Response) -> Any:
    return await fetched(w.bob, f"/api/messages/{answer.json()['id']}")


def credential_field(name: str, limit: int) -> TextField:
    async def submit(w: World, value: str) -> httpx.Response:
        credential = {"kind": "credential", "title": "t", name: value}
        return await post(w.alice, "/api/messages", to_bob(w, attachments=[credential]))

    async def read(w: World, answer: httpx.Response) -> str:
        message = await message_of(w, answer)
        opened = await fetched(
            w.bob, f"/api/messages/{message['id']}/attachments/{message['attachments'][0]['id']}")
        return str(opened[name])

    return TextField(f"credential {name}", f"attachments.0.{name}", limit, submit, read,
                     minimum=1 if name == "title" else 0)


def entry_field(name: str, limit: int, *, patch: bool = False) -> TextField:
    async def submit(w: World, value: str) -> httpx.Response:
        if patch:
            return await post(w.alice, f"/api/vault/entries/{w.entry_id}", {name: value}, "PATCH")
        return await post(w.alice, "/api/vault/entries",
                          {"kind": "credential", "title": "t", name: value})

    async def read(w: World, answer: httpx.Response) -> str:
        return str((await fetched(w.alice, f"/api/vault/entries/{answer.json()['id']}"))[name])

    return TextField(f"entry {name}{' (patch)' if patch else ''}", name, limit, submit, read,
                     minimum=1 if name == "title" else 0)


async def _folder(w: World, value: str) -> httpx.Response:
    return await post(w.alice, "/api/vault/folders", {"name": value})


async def _folder_name(w: World, answer: httpx.Response) -> str:
    folders = (await fetched(w.alice, "/api/vault"))["folders"]
    return str(next(f["name"] for f in folders if f["id"] == answer.json()["id"]))


async def _new_user(w: World, value: str) -> httpx.Response:
    return await post(w.admin, "/api/admin/users", {
        "username": unique_name(), "password": "a long password", "display_name": value})


async def _listed_user(w: World, answer: httpx.Response) -> str:
    users = (await fetched(w.admin, "/api/admin/users"))["users"]
    return str(next(u["display_name"] for u in users if u["id"] == answer.json()["id"]))


async def _renamed(w: World, value: str) -> httpx.Response:
    return await post(w.admin, f"/api/admin/users/{w.bob.id}", {"display_name": value}, "PATCH")


async def _own_name(w: World, answer: httpx.Response) -> str:
    return str((await fetched(w.bob, "/api/me"))["display_name"])


async def _group(w: World, value: str) -> httpx.Response:
    return await post(w.admin, "/api/admin/groups", {"name": value, "member_ids": [w.bob.id]})


async def _group_name(w: World, answer: httpx.Response) -> str:
    groups = (await fetched(w.admin, "/api/admin/groups"))["groups"]
    return str(next(g["name"] for g in groups if g["id"] == answer.json()["id"]))


async def _subject(w: World, value: str) -> httpx.Response:
    return await post(w.alice, "/api/messages", to_bob(w, subject=value))


async def _body(w: World, value: str) -> httpx.Response:
    return await post(w.alice, "/api/messages", to_bob(w, body=value))


async def _read_subject(w: World, answer: httpx.Response) -> str:
    return str((await message_of(w, answer))["subject"])


async def _read_body(w: World, answer: httpx.Response) -> str:
    return str((await message_of(w, answer))["body"])


FIELDS = [
    TextField("subject", "subject", 255, _subject, _read_subject),
    TextField("body", "body", 65536, _body, _read_body, minimum=0),
    credential_field("title", 255), credential_field("username", 1024),
    credential_field("password", 4096), credential_field("url", 4096),
    credential_field("notes", 65536),
    TextField("folder name", "name", 255, _folder, _folder_name),
    entry_field("title", 255), entry_field("username", 1024), entry_field("password", 4096),
    entry_field("url", 4096), entry_field("notes", 65536),
    entry_field("title", 255, patch=True), entry_field("notes", 65536, patch=True),
    TextField("display name", "display_name", 100, _new_user, _listed_user, shown_name=True),
    TextField("display name (patch)", "display_name", 100, _renamed, _own_name,
              shown_name=True),
    TextField("group name", "name", 100, _group, _group_name, shown_name=True),
]
NAMES = [f for f in FIELDS if f.shown_name]


def hostile_values(field: TextField) -> tuple[dict[str, str], dict[str, str]]:
    """The values this field must keep, and those it must refuse."""
    kept = {**ACCEPTED_EVERYWHERE, "at the limit": "x" * field.limit,
            "at the limit, 4-byte characters": "\U0001f600" * field.limit}
    refused = {**REFUSED_EVERYWHERE, "one over the limit": "x" * (field.limit + 1),
               "one over, 4-byte characters": "\U0001f600" * (field.limit + 1)}
    if field.minimum:
        refused["empty"] = ""
    else:
        kept["empty"] = ""
    (refused if field.shown_name else kept).update(CONTROLS)
    if not field.shown_name:
        kept.update(C1_CONTROLS)
    return kept, refused


@pytest.fixture
async def world(make_user: MakeUser, admin: LoggedInUser) -> World:
    alice, bob = await make_user(), await make_user()
    entry = await new_entry(alice, title="to be patched")
    return World(alice, bob, admin, entry["id"])


async def assert_refused(
    answer: httpx.Response, field: TextField, kind: str, value: str
) -> None:
    error = assert_error(answer, 400, "invalid")
    if kind not in NOT_JSON:
        assert set(error.get("fields", {})) == {field.error_field}, (kind, error)
    assert_not_echoed(answer, value)


@pytest.mark.parametrize("field", FIELDS, ids=[f.name for f in FIELDS])
async def test_hostile_text_is_refused_cleanly_or_kept_byte_for_byte(
    field: TextField, world: World, raw_db: asyncpg.Connection
) -> None:
    """Each hostile value is a clean 400 that changes nothing, or reads back exactly as sent."""
    kept, refused = hostile_values(field)
    for kind, value in refused.items():
        before = await snapshot(raw_db)
        answer = await field.submit(world, value)
        await assert_refused(answer, field, kind, value)
        assert await snapshot(raw_db) == before, f"{kind}: a refused value changed a table"
    for kind, value in kept.items():
        answer = await field.submit(world, value)
        assert answer.status_code in (200, 201), (kind, answer.text[:300])
        assert await field.read(world, answer) == value, kind


@pytest.mark.parametrize("field", NAMES, ids=[f.name for f in NAMES])
async def test_names_shown_to_people_refuse_c1_controls(
    field: TextField, world: World, raw_db: asyncpg.Connection
) -> None:
    """A display or group name holding U+009B (a terminal's CSI) is refused like other controls."""
    value = C1_CONTROLS["C1 controls"]
    before = await snapshot(raw_db)
    answer = await field.submit(world, value)
    await assert_refused(answer, field, "C1 controls", value)
    assert await snapshot(raw_db) == before


async def test_hostile_usernames_are_refused_and_case_twins_conflict(
    world: World, raw_db: asyncpg.Connection
) -> None:
    """Look-alike, padded, multi-line or marked-up usernames are 400; another case is 409."""
    taken = world.bob.user.username
    hostile = [f"{taken}\n", f" {taken}", f"{taken} ", f"{taken}\x00", "\u0430dmin",
               "adm\u0131n", "\u212aelvin", "admin\u200b", "<script>", "a" * 65, "", ".hidden",
               "-dash", "a/b", "a\\b", "a%b", "a'b", "\ud800"]
    before = await snapshot(raw_db)
    for username in hostile:
        answer = await post(world.admin, "/api/admin/users",
                            {"username": username, "password": "a long password"})
        error = assert_error(answer, 400, "invalid")
        if username != "\ud800":
            assert set(error["fields"]) == {"username"}, (username, error)
        assert_not_echoed(answer, username)
    for twin in (taken.upper(), taken.capitalize()):
        answer = await post(world.admin, "/api/admin/users",
                            {"username": twin, "password": "a long password"})
        assert_error(answer, 409, "conflict")
    assert await snapshot(raw_db) == before


async def test_hostile_subjects_reach_the_socket_byte_for_byte(
    live: Any, make_user: MakeUser
) -> None:
    """What the server keeps, it also delivers live unchanged: every accepted hostile subject."""
    alice, bob = await make_user(on=live), await make_user(on=live)
    subjects = [*ACCEPTED_EVERYWHERE.values(), *CONTROLS.values(), *C1_CONTROLS.values(),
                "\U0001f600" * 255]
    async with await open_socket(live, bob) as ws:
        assert (await next_frame(ws))["type"] == "hello"
        for subject in subjects:
            answer = await alice.http.post(
                "/api/messages", content=escaped(to_member(bob, subject)), headers=JSON)
            assert answer.status_code == 201, answer.text
            [new] = of_type(await frames_until(ws, "message.new"), "message.new")
            assert new["message"]["subject"] == subject
