"""Helpers shared by the tests of messages: sending, groups, and looking at what is stored."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from realtime.attachments import Attachments
from realtime.budgets import Budgets
from realtime.config import Settings
from realtime.crypto import Keyring
from realtime.db import Database
from realtime.events import EventSink
from realtime.files import Files
from realtime.messaging import Messaging
from realtime.vault import Vault
from tests.conftest import LoggedInUser, unique_name
from tests.timing import TIME_FACTOR

EXPIRES_IN = timedelta(seconds=1.5 * TIME_FACTOR)


def user(person: LoggedInUser) -> dict[str, str]:
    """One user in the To field."""
    return {"kind": "user", "id": person.id}


def group(group_id: str) -> dict[str, str]:
    """One group in the To field."""
    return {"kind": "group", "id": group_id}


async def send(
    sender: LoggedInUser,
    to: list[dict[str, str]],
    *,
    subject: str = "a subject",
    key: str | None = None,
    **fields: Any,
) -> httpx.Response:
    """POST /api/messages; the answer is returned as is, whatever its status."""
    headers = {"Idempotency-Key": key} if key is not None else {}
    payload = {"to": to, "subject": subject, **fields}
    return await sender.http.post("/api/messages", json=payload, headers=headers)


async def send_ok(sender: LoggedInUser, *to: LoggedInUser, **fields: Any) -> str:
    """Send to these users, insist on 201 and return the new message's id."""
    answer = await send(sender, [user(p) for p in to], **fields)
    assert answer.status_code == 201, answer.text
    message_id: str = answer.json()["id"]
    return message_id


async def make_group(admin: LoggedInUser, *members: LoggedInUser, name: str | None = None) -> str:
    """Create a group through the admin API and return its id."""
    answer = await admin.http.post(
        "/api/admin/groups",
        json={"name": name or unique_name("group"), "member_ids": [m.id for m in members]},
    )
    assert answer.status_code == 201, answer.text
    group_id: str = answer.json()["id"]
    return group_id


async def disable(admin: LoggedInUser, person: LoggedInUser) -> None:
    answer = await admin.http.patch(f"/api/admin/users/{person.id}", json={"disabled": True})
    assert answer.status_code == 200, answer.text


async def box(person: LoggedInUser, name: str = "inbox", **params: Any) -> list[dict[str, Any]]:
    """The first page of a box, up to 100 summaries."""
    answer = await person.http.get("/api/messages", params={"box": name, "limit": 100, **params})
    assert answer.status_code == 200, answer.text
    messages: list[dict[str, Any]] = answer.json()["messages"]
    return messages


async def box_ids(person: LoggedInUser, name: str = "inbox") -> list[str]:
    return [m["id"] for m in await box(person, name)]


async def unread(person: LoggedInUser) -> dict[str, Any]:
    answer = await person.http.get("/api/unread")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def assert_error(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The contract's error shape with this status and code; return its `error` object."""
    assert answer.status_code == status, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    return error


def assert_invalid(answer: httpx.Response, field: str) -> None:
    """A 400 `invalid` whose `fields` names `field`."""
    error = assert_error(answer, 400, "invalid")
    assert field in error["fields"], error


_COUNT = {
    "messages": "select count(*) from messages",
    "message_recipients": "select count(*) from message_recipients",
    "message_addressees": "select count(*) from message_addressees",
    "events": "select count(*) from events",
    "idempotency_keys": "select count(*) from idempotency_keys",
}


async def count_rows(raw_db: asyncpg.Connection, table: str) -> int:
    """How many rows one of the tables a send writes to holds."""
    return int(await raw_db.fetchval(_COUNT[table]))


async def stored_counts(raw_db: asyncpg.Connection) -> dict[str, int]:
    """Rows of every table a send writes to."""
    tables = ("messages", "message_recipients", "message_addressees", "events")
    return {table: await count_rows(raw_db, table) for table in tables}


async def events_of(raw_db: asyncpg.Connection, person: LoggedInUser) -> list[dict[str, Any]]:
    """A user's event log in seq order: {seq, type, payload}."""
    rows = await raw_db.fetch(
        "select seq, type, payload from events where user_id = $1 order by seq",
        person.user.id,
    )
    return [
        {"seq": row["seq"], "type": row["type"], "payload": json.loads(row["payload"])}
        for row in rows
    ]


async def recipients_of(raw_db: asyncpg.Connection, message_id: str) -> set[str]:
    rows = await raw_db.fetch(
        "select user_id from message_recipients where message_id = $1::uuid", message_id
    )
    return {str(row["user_id"]) for row in rows}


def soon() -> str:
    """An expiry time EXPIRES_IN from now, as RFC 3339."""
    return (datetime.now(UTC) + EXPIRES_IN).isoformat()


async def wait_until_past(raw_db: asyncpg.Connection, moment: str) -> None:
    """Wait until the database's clock, which expiry is judged by, has passed `moment`."""
    deadline = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    give_up = asyncio.get_running_loop().time() + 10 * TIME_FACTOR + EXPIRES_IN.total_seconds()
    while not await raw_db.fetchval("select statement_timestamp() > $1", deadline):
        assert asyncio.get_running_loop().time() < give_up, "the database clock stands still"
        await asyncio.sleep(0.05 * TIME_FACTOR)


@contextlib.asynccontextmanager
async def expirer_held_off(raw_db: asyncpg.Connection, *message_ids: str) -> AsyncIterator[None]:
    """Lock the messages' rows, so that the expirer (which skips locked rows) leaves them be:
    what is read meanwhile shows that reads hide an expired message by themselves."""
    async with raw_db.transaction():
        locked = await raw_db.fetch(
            "select id from messages where id = any($1::uuid[]) for update", list(message_ids)
        )
        assert len(locked) == len(message_ids)
        yield


def messaging_with(db: Database, keyring: Keyring) -> Messaging:
    """The messaging domain of a node holding `keyring`, over the test database (no live wing:
    its events stay in the log)."""
    files = Files(db, keyring)
    return Messaging(
        db, keyring, Attachments(db, keyring, Vault(db, keyring, files), files), sink=EventSink(),
        budgets=Budgets(db), sends_per_minute=Settings().sends_per_minute,
        copies_per_minute=Settings().copies_per_minute,
    )
