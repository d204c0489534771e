"""Encryption at rest, checked against what PostgreSQL really stores."""

from __future__ import annotations

import base64
from uuid import UUID

import asyncpg
import pytest

from realtime.api.http import Services
from realtime.crypto import Keyring, generate_master_key
from realtime.errors import CryptoError
from realtime.models import Box
from tests.conftest import LoggedInUser, MakeUser, unique_name
from tests.messages_support import messaging_with


async def send(sender: LoggedInUser, recipient: LoggedInUser, subject: str, body: str) -> UUID:
    answer = await sender.http.post(
        "/api/messages",
        json={"to": [{"kind": "user", "id": recipient.id}], "subject": subject, "body": body},
    )
    assert answer.status_code == 201, answer.text
    return UUID(answer.json()["id"])


def forms(text: str) -> list[bytes]:
    """The ways a plaintext could show up in stored bytes."""
    raw = text.encode()
    return [
        raw,
        text.encode("utf-16-le"),
        raw.hex().encode(),
        base64.b64encode(raw),
        base64.b64encode(raw).rstrip(b"="),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
    ]


async def test_the_stored_row_holds_neither_subject_nor_body(
    raw_db: asyncpg.Connection, make_user: MakeUser
) -> None:
    """The messages row holds subject and body only as ciphertext, in no readable form."""
    alice, bob = await make_user(), await make_user()
    subject = unique_name("subject-plaintext")
    body = unique_name("body-plaintext") * 20
    message_id = await send(alice, bob, subject, body)
    row = await raw_db.fetchrow("select * from messages where id = $1", message_id)
    assert row is not None
    for column in ("subject", "body", "wrapped_key"):
        stored = bytes(row[column])
        for secret in (subject, body):
            for form in forms(secret):
                assert form not in stored, (column, form)
    dump = await raw_db.fetchval("select m::text from messages m where id = $1", message_id)
    for secret in (subject, body):
        for form in forms(secret):
            assert form.decode() not in dump
            assert form.decode().lower() not in dump.lower()
    assert len(bytes(row["body"])) >= len(body.encode())  # the body is really stored


async def test_no_table_holds_the_plaintext(
    raw_db: asyncpg.Connection, make_user: MakeUser
) -> None:
    """Nowhere in the database, events and addressees included, do subject or body appear."""
    alice, bob = await make_user(), await make_user()
    subject = unique_name("subject-everywhere")
    body = unique_name("body-everywhere")
    await send(alice, bob, subject, body)
    tables = [
        row["tablename"]
        for row in await raw_db.fetch(
            "select tablename from pg_tables where schemaname = 'public'"
        )
    ]
    assert "messages" in tables and "events" in tables
    for table in tables:
        # the table names come from pg_tables, not from input
        rows = await raw_db.fetch(f'select t::text as dump from "{table}" t')  # noqa: S608
        for row in rows:
            for secret in (subject, body):
                for form in forms(secret):
                    assert form.decode() not in row["dump"], table


async def test_a_subject_copied_from_another_message_does_not_open(
    raw_db: asyncpg.Connection, services: Services, make_user: MakeUser
) -> None:
    """A ciphertext moved to another row fails: the domain raises CryptoError."""
    alice, bob = await make_user(), await make_user()
    first = await send(alice, bob, "first subject", "first body")
    second = await send(alice, bob, "second subject", "second body")
    await raw_db.execute(
        "update messages set subject = (select subject from messages where id = $1)"
        " where id = $2",
        first, second,
    )
    assert (await services.messaging.get_message(bob.user, first)).subject == "first subject"
    with pytest.raises(CryptoError):
        await services.messaging.get_message(bob.user, second)


async def test_a_message_that_does_not_open_is_a_500_without_plaintext(
    raw_db: asyncpg.Connection, make_user: MakeUser
) -> None:
    """Over HTTP a ciphertext that does not open is the contract's 500, revealing nothing."""
    alice, bob = await make_user(), await make_user()
    first = await send(alice, bob, "moved subject", "moved body")
    second = await send(alice, bob, "victim subject", "victim body")
    await raw_db.execute(
        "update messages set subject = (select subject from messages where id = $1)"
        " where id = $2",
        first, second,
    )
    for person in (bob, alice):
        answer = await person.http.get(f"/api/messages/{second}")
        assert answer.status_code == 500
        assert answer.headers["content-type"].startswith("application/json")
        error = answer.json()["error"]
        assert error["code"] == "internal"
        assert error["message"] == "internal error"
        assert "messages/" not in answer.text and "subject" not in answer.text
        for secret in ("moved subject", "moved body", "victim subject", "victim body"):
            assert secret not in answer.text
    assert (await bob.http.get(f"/api/messages/{first}")).json()["subject"] == "moved subject"


@pytest.mark.parametrize("columns", [("key_id", "wrapped_key", "subject"),
                                     ("key_id", "wrapped_key", "subject", "body")])
async def test_a_subject_copied_with_its_wrapped_key_still_does_not_open(
    raw_db: asyncpg.Connection,
    services: Services,
    make_user: MakeUser,
    columns: tuple[str, ...],
) -> None:
    """A wrapped key is bound to its row: copying it along with the ciphertext fails too."""
    alice, bob = await make_user(), await make_user()
    first = await send(alice, bob, "key subject", "key body")
    second = await send(alice, bob, "other subject", "other body")
    assignments = ", ".join(f"{column} = source.{column}" for column in columns)
    await raw_db.execute(
        f"update messages set {assignments} from messages source"  # noqa: S608 (constant columns)
        " where source.id = $1 and messages.id = $2",
        first, second,
    )
    copied = await raw_db.fetchrow("select * from messages where id = $1", second)
    original = await raw_db.fetchrow("select * from messages where id = $1", first)
    assert copied["wrapped_key"] == original["wrapped_key"]
    with pytest.raises(CryptoError):
        await services.messaging.get_message(bob.user, second)
    answer = await bob.http.get(f"/api/messages/{second}")
    assert answer.status_code == 500 and "key subject" not in answer.text


async def test_another_master_key_opens_nothing(
    services: Services, make_user: MakeUser
) -> None:
    """Messaging with a different master key can read no message, one by one or listed."""
    alice, bob = await make_user(), await make_user()
    ids = [await send(alice, bob, f"subject {n}", f"body {n}") for n in range(3)]
    stranger = messaging_with(services.db, Keyring([generate_master_key()]))
    for message_id in ids:
        assert (await services.messaging.get_message(bob.user, message_id)).body is not None
        with pytest.raises(CryptoError):
            await stranger.get_message(bob.user, message_id)
    with pytest.raises(CryptoError):
        await stranger.list_messages(bob.user, Box.INBOX, 50, None)
    with pytest.raises(CryptoError):
        await stranger.list_messages(alice.user, Box.SENT, 50, None)
